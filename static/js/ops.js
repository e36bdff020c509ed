// The operations view, for staff: the numbers the server computes once per interval for every staff tab
// (ops.subscribe → ops.stats: workers, queues, jobs by kind, the last hour per minute, drawn with uPlot),
// and everyone's jobs with the history's filters (and an owner filter) and bulk actions (scope "all").
import uPlot from "../vendor/uplot-1.6.32/uPlot.esm.js";
import { announce, h, setText } from "./dom.js";
import { formatDuration, formatNumber, formatTime, setKinds } from "./format.js";
import { History } from "./history.js";
import { JobList } from "./joblist.js";
import { showConnectionOf, showNotice } from "./page.js";
import { Requests } from "./requests.js";
import { JobSocket, socketUrl } from "./socket.js";
import { JobStore } from "./store.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const JOB_EVENTS = new Set(["job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"]);
const root = document.getElementById("ops");
const socket = new JobSocket(socketUrl());
const requests = new Requests(socket);
const store = new JobStore();
const kinds = JSON.parse(document.getElementById("kinds-data").textContent);
setKinds(kinds);
let me = null;
let chart = null;
let statsSeen = 0;
const REFRESH_LIST_EVERY = 5; // ops.stats frames between two listings of the newest jobs

const everyone = new History(document.getElementById("history"), {
  request: (message) => requests.send(message, { resend: message.type !== "job.bulk" }),
  store,
  onChange: () => jobList.refresh(store),
  scope: "all",
  kinds: () => kinds,
});
store.kept = (id) => everyone.listed.has(id);
const jobList = new JobList(document.getElementById("job-list"), {
  flowerUrl: root.dataset.flowerUrl || "",
  onCancel: (jobId) => socket.send({ type: "job.cancel", job_id: jobId }),
  onRetry: (jobId, { resendUnknown = false } = {}) => socket.send({ type: "job.retry", job_id: jobId, ...(resendUnknown ? { resend_unknown: true } : {}) }),
  onChange: showCount,
  // Only the listed jobs: this page hears live events of its own user's jobs only.
  shows: (job) => everyone.listed.has(job.id),
  // Cancel and Retry act on one's own jobs; everyone's go through the bulk actions.
  mine: (job) => !job.owner || job.owner === me,
});
store.subscribe((changed, removed) => jobList.render(store, changed, removed));

socket.addEventListener("message", (event) => onMessage(event.detail));

function onMessage(message) {
  switch (message.type) {
    case "hello":
      me = message.user.username;
      requests.reconnected();
      socket.send({ type: "ops.subscribe" });
      everyone.restart();
      break;
    case "ops.stats":
      showStats(message);
      statsSeen += 1;
      if (statsSeen % REFRESH_LIST_EVERY === 0) everyone.refreshTop();
      break;
    case "job.progress":
      store.applyProgress(message.job_id, message.seq, message.progress, message.batch);
      break;
    default:
      if (JOB_EVENTS.has(message.type) || message.type === "job.accepted") store.applyJob(message.job);
      if (!requests.handle(message) && message.type === "error") showNotice(message.message);
  }
}

function showStats(stats) {
  setText(document.getElementById("ops-updated"), `Updated ${formatTime(stats.at)}, every few seconds.`);
  setText(document.getElementById("ops-workers"), formatNumber(stats.workers.length));
  document.getElementById("ops-worker-names").replaceChildren(...stats.workers.map((name) => h("li", { text: name })));
  showQueues(stats.queues);
  showKinds(stats.kinds);
  showControls(stats.controls || []);
  showChart(stats.per_minute);
}

/** Each kind's limit, held jobs and state, with a button that pauses or resumes it (ops.kind.pause|resume). */
function showControls(controls) {
  const rows = controls.map((control) => {
    const button = h("button", {
      className: "secondary",
      attrs: { type: "button" },
      dataset: { kind: control.kind },
      text: control.paused ? "Resume" : "Pause",
    });
    button.addEventListener("click", () => setPaused(button, control.kind, !control.paused));
    return h(
      "tr",
      { dataset: { kind: control.kind, paused: String(control.paused) } },
      h("th", { attrs: { scope: "row" }, text: control.kind }),
      h("td", { className: "num", text: control.limit === null ? "—" : formatNumber(control.limit) }),
      h("td", { className: "num", text: formatNumber(control.held) }),
      h("td", { text: control.paused ? "Paused" : "Running" }),
      h("td", {}, button),
    );
  });
  document.querySelector("#ops-controls tbody").replaceChildren(...rows);
}

async function setPaused(button, kind, paused) {
  button.disabled = true;
  const reply = await requests.send({ type: paused ? "ops.kind.pause" : "ops.kind.resume", kind }, { resend: false });
  if (reply.type === "error") {
    button.disabled = false;
    showNotice(reply.message);
    return;
  }
  // The server sends every staff tab fresh numbers at once, which redraw the row (and enable its button).
  announce(`${kind} ${reply.paused ? "paused" : "resumed"}.`);
}

function showQueues(queues) {
  const rows = queues.map((queue) =>
    h(
      "tr",
      { dataset: { queue: queue.queue } },
      h("th", { attrs: { scope: "row" }, text: queue.queue }),
      h("td", { className: "num", text: queue.waiting === null ? "?" : formatNumber(queue.waiting) }),
      h("td", { className: "num", text: queue.oldest_age_seconds === null ? "—" : formatDuration(queue.oldest_age_seconds * 1000) }),
    ),
  );
  document.querySelector("#ops-queues tbody").replaceChildren(...rows);
}

function showKinds(byKind) {
  const names = Object.keys(byKind).sort();
  const rows = names.map((name) =>
    h(
      "tr",
      { dataset: { kind: name } },
      h("th", { attrs: { scope: "row" }, text: name }),
      ...STATUSES.map((status) => h("td", { className: "num", dataset: { status }, text: formatNumber(byKind[name][status] ?? 0) })),
    ),
  );
  const body = document.querySelector("#ops-kinds tbody");
  body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { attrs: { colspan: STATUSES.length + 1 }, className: "muted", text: "No jobs in the last hour." }))]));
}

function showChart(series) {
  const times = series.minutes.map((minute) => Date.parse(minute) / 1000);
  const data = [times, series.finished, series.failed];
  const box = document.getElementById("ops-chart");
  if (!chart) {
    const width = Math.max(280, box.clientWidth);
    chart = new uPlot(
      {
        width,
        height: 220,
        series: [{}, { label: "finished", stroke: "#2f6fdf", width: 2 }, { label: "failed", stroke: "#c0392b", width: 2 }],
        axes: [{}, { label: "jobs per minute" }],
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      },
      data,
      box,
    );
    new ResizeObserver(() => chart.setSize({ width: Math.max(280, box.clientWidth), height: 220 })).observe(box);
  } else {
    chart.setData(data);
  }
  box.dataset.points = String(times.length);
  box.dataset.finished = String(series.finished.reduce((sum, n) => sum + n, 0));
}

function showCount() {
  const shown = store.list().filter((job) => everyone.listed.has(job.id)).length;
  setText(document.getElementById("job-count"), shown ? `${formatNumber(shown)} shown` : "");
  const empty = document.getElementById("jobs-empty");
  empty.hidden = shown > 0;
  setText(empty, "No jobs match this view.");
}

showConnectionOf(socket, root.dataset.loginUrl);
socket.connect();

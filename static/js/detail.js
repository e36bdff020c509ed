// A job's own page: its params, result, files, error, attempts and timeline (job.get), and its log lines,
// following live while it runs (job.logs.follow). Its events keep the page current; merged by seq.
// A batch's page shows its counts and lists its jobs, live (batches.js), each linking to its own page;
// a job of a batch links back to its batch, and follows it so that its own events reach this page.
import { Batches } from "./batches.js";
import { announce, h, setAttr, setText } from "./dom.js";
import { BATCH, batchTitle, formatDuration, formatNumber, formatTime, kindName, resendUnknownWords, setKinds, STATUS_NAMES } from "./format.js";
import { BatchCounts } from "./joblist.js";
import { showConnectionOf, showNotice } from "./page.js";
import { Requests } from "./requests.js";
import { renderArtifacts, renderResult } from "./results.js";
import { JobSocket, socketUrl } from "./socket.js";

const root = document.getElementById("job-page");
const jobId = root.dataset.jobId;
const socket = new JobSocket(socketUrl());
const requests = new Requests(socket);
const JOB_EVENTS = new Set(["job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"]);
const UNFINISHED = new Set(["queued", "running"]);
let job = null;
let events = [];
const lines = new Map(); // log lines by n
const batches = new Batches({
  request: (message) => requests.send(message),
  send: (message) => socket.send(message),
  flowerUrl: root.dataset.flowerUrl || "",
});
const batchCounts = new BatchCounts();
let batchJobs = null; // this batch's jobs, once listed
window.setInterval(() => batchJobs?.tick(Date.now()), 1000); // their "running 0:12"

setKinds(JSON.parse(document.getElementById("kinds-data").textContent));
const el = (id) => document.getElementById(id);

socket.addEventListener("message", (event) => onMessage(event.detail));

function onMessage(message) {
  if (message.type === "hello") return onHello();
  if (message.type === "job.progress" && message.job_id === jobId) return onProgress(message);
  if (message.type === "job.log" && message.job_id === jobId) return addLines(message.lines, true);
  if (JOB_EVENTS.has(message.type) && message.job?.id === jobId) return onJobEvent(message);
  if (batches.handle(message)) return undefined; // a job of the batch this page shows
  if (!requests.handle(message) && message.type === "error") showNotice(message.message);
  return undefined;
}

async function onHello() {
  requests.reconnected();
  batches.reconnected();
  const detail = await requests.send({ type: "job.get", job_id: jobId });
  if (detail.type !== "job.detail") return missing(detail);
  events = detail.events;
  apply(detail.job);
  addLines(detail.logs, false);
  showDropped(detail.logs_dropped);
  following = false;
  if (detail.job.kind === BATCH) showBatch();
  else if (UNFINISHED.has(detail.job.status)) follow();
  else setText(el("logs-state"), "");
  if (detail.job.parent_id) showParent(detail.job.parent_id);
  return undefined;
}

/** A batch: its jobs listed (and followed) below its counts; a batch writes no log of its own. */
function showBatch() {
  el("batch-section").hidden = false;
  el("result-section").hidden = true;
  el("logs-section").hidden = true;
  el("batch-counts").replaceChildren(batchCounts.el);
  if (!batchJobs) batchJobs = batches.show(job, el("batch-jobs"));
}

/** A job of a batch: a link to the batch, and the batch followed, since only followers hear of its jobs. */
async function showParent(parentId) {
  const link = el("job-parent");
  link.hidden = false;
  setAttr(link, "href", `/jobs/${encodeURIComponent(parentId)}/`);
  if (!link.textContent) setText(link, `Its batch ${parentId.slice(0, 8)}`);
  requests.send({ type: "batch.follow", job_id: parentId });
  const parent = await requests.send({ type: "job.get", job_id: parentId });
  if (parent.type === "job.detail") setText(link, `Its batch: ${batchTitle(parent.job)}`);
}

let following = false;

async function follow() {
  following = true;
  setText(el("logs-state"), "Following live…");
  const reply = await requests.send({ type: "job.logs.follow", job_id: jobId });
  if (reply.type === "job.logs") {
    addLines(reply.lines, false);
    showDropped(reply.logs_dropped);
  }
}

function missing(error) {
  el("job-missing").hidden = false;
  el("job-sheet").hidden = true;
  setText(el("job-missing"), error.code === "not_found" ? "No such job." : error.message);
}

function onProgress(message) {
  if (!job || !(message.seq > job.seq)) return;
  const batch = message.batch ? { batch: message.batch } : {};
  apply({ ...job, seq: message.seq, progress: message.progress, eta_seconds: message.eta_seconds, ...batch });
}

function onJobEvent(message) {
  if (job && !(message.job.seq > job.seq)) return;
  events = [...events.filter((event) => event.seq < message.job.seq), { seq: message.job.seq, event: message.type, at: new Date().toISOString(), note: "" }];
  apply(message.job);
  if (message.job.kind === BATCH) {
    if (!UNFINISHED.has(message.job.status)) announce(`This batch ${message.job.status === "cancelled" ? "was cancelled" : message.job.status}.`);
  } else if (!UNFINISHED.has(message.job.status)) {
    following = false; // the server stops sending lines after the last ones
    setText(el("logs-state"), "");
    announce(`This job ${message.job.status === "cancelled" ? "was cancelled" : message.job.status}.`);
  } else if (!following) {
    follow(); // retried: a new attempt writes new lines
  }
}

function apply(next) {
  const previous = job;
  job = next;
  el("job-sheet").hidden = false;
  el("job-missing").hidden = true;
  const name = job.kind === BATCH ? `Batch ${batchTitle(job)}` : `${kindName(job.kind)} ${job.id.slice(0, 8)}`;
  document.title = `${job.kind === BATCH ? batchTitle(job) : kindName(job.kind)} · Jobs`;
  setText(el("job-title"), name);
  if (job.kind === BATCH) batchCounts.update(job);
  setText(el("job-badge"), STATUS_NAMES[job.status] || job.status);
  el("job-badge").className = `badge badge-${job.status}`;
  showProgress();
  el("job-cancel").hidden = !UNFINISHED.has(job.status);
  el("job-retry").hidden = !(job.status === "failed" || job.status === "cancelled");
  const unknown = job.unknown_outcome || 0;
  el("job-resend-unknown").hidden = el("job-retry").hidden || unknown < 1;
  if (unknown > 0) setText(el("job-resend-unknown"), resendUnknownWords(unknown).label);
  const flower = el("job-flower");
  flower.hidden = !(root.dataset.flowerUrl && job.task_id);
  if (!flower.hidden) setAttr(flower, "href", `${root.dataset.flowerUrl}/task/${encodeURIComponent(job.task_id)}`);
  if (!previous || previous.result !== job.result || previous.error !== job.error || previous.artifacts !== job.artifacts) showOutcome();
  if (!previous || previous.params !== job.params) showParams();
  showTimeline();
}

function showProgress() {
  const progress = job.progress || {};
  const percent = typeof progress.percent === "number" ? progress.percent : job.status === "succeeded" ? 100 : 0;
  const bar = document.querySelector("#job-sheet [role=progressbar]");
  bar.classList.toggle("done", !UNFINISHED.has(job.status));
  bar.querySelector(".bar-fill").style.width = `${percent}%`;
  setAttr(bar, "aria-valuenow", Math.floor(percent));
  setText(el("job-percent"), `${Math.floor(percent)}%`);
  const counted = typeof progress.total === "number" ? `${formatNumber(progress.current ?? 0)} of ${formatNumber(progress.total)}` : "";
  setText(el("job-words"), [progress.stage, progress.message || counted].filter(Boolean).join(" · "));
  const eta = job.status === "running" && typeof job.eta_seconds === "number" ? `about ${formatDuration(job.eta_seconds * 1000)} left` : "";
  setText(el("job-eta"), eta);
}

function showOutcome() {
  const error = el("job-error");
  error.replaceChildren(job.error ? h("p", { className: "job-error", attrs: { role: "note" } }, h("strong", { text: "Error: " }), `${job.error.message} (${job.error.code})`) : "");
  const result = el("job-result");
  const shown = job.status === "succeeded" ? renderResult(job.kind, job.result) : null;
  result.replaceChildren(shown || h("p", { className: "muted", text: job.status === "succeeded" ? "No result." : "None yet." }));
  const files = renderArtifacts(job.artifacts);
  if (files) result.append(files);
}

function showParams() {
  const list = el("job-params");
  list.replaceChildren();
  for (const [key, value] of Object.entries(job.params || {})) {
    list.append(h("dt", { text: key }), h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value)));
  }
}

function showTimeline() {
  setText(el("job-attempts"), `Attempt ${job.attempt}; created ${formatTime(job.created_at)}${job.finished_at ? `, finished ${formatTime(job.finished_at)}` : ""}.`);
  el("job-timeline").replaceChildren(
    ...events.map((event) =>
      h("li", {}, h("time", { attrs: { datetime: event.at }, text: formatTime(event.at) }), " ", h("strong", { text: event.event.replace("job.", "") }), event.note ? ` (${event.note})` : ""),
    ),
  );
}

/** Merge log lines by n (a line seen twice, from the tail and live, shows once), in order. */
function addLines(incoming, live) {
  const list = el("job-logs");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  for (const line of incoming) lines.set(line.n, line);
  const ordered = [...lines.values()].sort((a, b) => a.n - b.n);
  list.replaceChildren(
    ...ordered.map((line) =>
      h("li", { className: `log-line log-${line.level}`, dataset: { n: line.n } }, h("span", { className: "log-time muted", text: formatTime(line.at) }), " ", h("span", { className: "log-level", text: line.level }), " ", h("span", { className: "log-text", text: line.text })),
    ),
  );
  if (live && atBottom) list.scrollTop = list.scrollHeight;
}

function showDropped(dropped) {
  el("logs-dropped").hidden = !dropped;
  setText(el("logs-dropped"), dropped ? `${formatNumber(dropped)} older lines are no longer kept.` : "");
}

el("job-cancel").addEventListener("click", () => socket.send({ type: "job.cancel", job_id: jobId }));
el("job-retry").addEventListener("click", () => socket.send({ type: "job.retry", job_id: jobId }));
el("job-resend-unknown").addEventListener("click", () => {
  // The owner's explicit choice, once the risk is stated: these recipients may get the message twice.
  if (window.confirm(resendUnknownWords(job.unknown_outcome).question)) socket.send({ type: "job.retry", job_id: jobId, resend_unknown: true });
});
showConnectionOf(socket, root.dataset.loginUrl);
socket.connect();

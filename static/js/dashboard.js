// The dashboard: one WebSocket (socket.js), the jobs it reports merged by seq
// (store.js), shown live (joblist.js), and a form per job kind built from its
// JSON Schema (forms.js).
import { announce, h, setText } from "./dom.js";
import { KindForm, uploadFile } from "./forms.js";
import { kindName, setKinds } from "./format.js";
import { JobList } from "./joblist.js";
import { NotificationCenter } from "./notifications.js";
import { JobSocket, socketUrl } from "./socket.js";
import { JobStore } from "./store.js";

const TERMINAL_EVENTS = { "job.succeeded": "succeeded", "job.failed": "failed", "job.cancelled": "was cancelled" };
const JOB_EVENTS = new Set(["job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"]);

const root = document.getElementById("dashboard");
const store = new JobStore();
const socket = new JobSocket(socketUrl());
// job.submit messages waiting for their job.accepted or error, by request_id.
// They are sent again after a reconnect: the same request_id never starts a second job.
const pending = new Map();
let helloSeen = false;

const jobList = new JobList(document.getElementById("job-list"), {
  flowerUrl: root.dataset.flowerUrl || "",
  onCancel: (jobId) => socket.send({ type: "job.cancel", job_id: jobId }),
  onRetry: (jobId) => socket.send({ type: "job.retry", job_id: jobId }),
  onChange: showCounts,
});
store.subscribe((changed, removed) => jobList.render(store, changed, removed));
// Notices, the bell and browser notifications (the protocol's extension messages).
const notifications = new NotificationCenter((message) => socket.send(message));

// The kinds as kind.list describes them: first from the page, then from the server after each hello.
let forms = [];
let kindsShown = "";
showKinds(JSON.parse(document.getElementById("kinds-data").textContent));

/** (Re)build the forms when the kinds changed; a form being filled in is kept when its kind did not. */
function showKinds(kinds) {
  const text = JSON.stringify(kinds);
  if (text === kindsShown) return;
  kindsShown = text;
  setKinds(kinds);
  const old = new Map(forms.map((form) => [form.kind, form]));
  forms = kinds.map((kind) => {
    const kept = old.get(kind.name);
    return kept && JSON.stringify(kept.described) === JSON.stringify(kind) ? kept : Object.assign(new KindForm(kind, submit, uploadFile), { described: kind });
  });
  document.getElementById("job-forms").replaceChildren(...forms.map((form) => form.form));
  document.getElementById("no-kinds").hidden = forms.length > 0;
  for (const form of forms) form.setConnected(socket.state === "live");
}

function requestId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address is not one.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Send job.submit; resolves with {job} on job.accepted or {error} on an error reply. */
function submit(kind, params) {
  const message = { type: "job.submit", request_id: requestId(), kind, params };
  return new Promise((resolve) => {
    pending.set(message.request_id, { message, resolve });
    socket.send(message);
  });
}

socket.addEventListener("message", (event) => onMessage(event.detail));
socket.addEventListener("state", (event) => showConnection(event.detail.state));

function onMessage(message) {
  if (notifications.handle(message)) return;
  switch (message.type) {
    case "hello":
      onHello(message);
      break;
    case "job.accepted":
      store.applyJob(message.job);
      settle(message.request_id, { job: message.job });
      announce(`${kindName(message.job.kind)} job submitted.`);
      break;
    case "job.progress":
      store.applyProgress(message.job_id, message.seq, message.progress);
      break;
    case "kind.list":
      showKinds(message.kinds || []);
      break;
    case "error":
      onError(message);
      break;
    default:
      if (JOB_EVENTS.has(message.type)) onJobEvent(message);
  }
}

function onHello(hello) {
  helloSeen = true;
  store.applySnapshot(hello.jobs || []);
  notifications.onHello(hello);
  // The kinds may have changed since the page was made (a deploy): their forms follow kind.list.
  socket.send({ type: "kind.list" });
  showCounts();
  for (const { message } of pending.values()) socket.send(message);
}

function onJobEvent(message) {
  const applied = store.applyJob(message.job);
  const outcome = TERMINAL_EVENTS[message.type];
  if (applied && outcome) {
    const error = message.job.error?.message;
    announce(`${kindName(message.job.kind)} job ${outcome}${error ? `: ${error}` : "."}`);
  }
}

function onError(message) {
  if (message.request_id && pending.has(message.request_id)) {
    settle(message.request_id, { error: message });
    return;
  }
  // Errors to cancel and retry carry no request_id: show them above the list.
  jobList.releaseActions();
  showNotice(message.message);
}

function settle(requestId, answer) {
  const entry = pending.get(requestId);
  if (!entry) return;
  pending.delete(requestId);
  entry.resolve(answer);
}

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  throttled: "Paused: too many requests",
  "logged-out": "Logged out",
};

function showConnection(state) {
  const indicator = document.getElementById("connection");
  indicator.dataset.state = state;
  setText(indicator.querySelector(".conn-text"), CONNECTION_TEXT[state] || state);
  indicator.querySelector(".conn-retry").hidden = state !== "reconnecting";
  for (const form of forms) form.setConnected(state === "live");
  notifications.setConnected(state === "live");
  if (state === "logged-out") {
    const link = h("a", { text: "Log in again", attrs: { href: root.dataset.loginUrl || "/accounts/login/" } });
    showNotice(["You are logged out. ", link, " to see your jobs."], "warning");
  } else if (state === "throttled") {
    showNotice("Too many requests: the connection is paused for a minute, then resumes by itself.", "warning");
  } else if (state === "live") {
    hideNotice("warning");
  }
}

function showNotice(content, tone = "error") {
  const notice = document.getElementById("notice");
  const text = notice.querySelector(".notice-text");
  text.replaceChildren(...[content].flat());
  notice.dataset.tone = tone;
  notice.hidden = false;
}

function hideNotice(tone) {
  const notice = document.getElementById("notice");
  if (!tone || notice.dataset.tone === tone) notice.hidden = true;
}

function showCounts() {
  const jobs = store.list();
  const running = jobs.filter((job) => job.status === "running").length;
  const queued = jobs.filter((job) => job.status === "queued").length;
  const parts = [`${jobs.length} ${jobs.length === 1 ? "job" : "jobs"}`];
  if (running) parts.push(`${running} running`);
  if (queued) parts.push(`${queued} queued`);
  setText(document.getElementById("job-count"), jobs.length ? parts.join(" · ") : "");
  const empty = document.getElementById("jobs-empty");
  empty.hidden = jobs.length > 0;
  setText(empty, helloSeen ? "No jobs yet. Start one with a form." : "Loading your jobs…");
}

document.querySelector("#connection .conn-retry").addEventListener("click", () => socket.reconnectNow());
document.querySelector("#notice .notice-close").addEventListener("click", () => hideNotice());
// The socket announces only changes: show where it starts, so nothing looks usable before the first hello.
showConnection(socket.state);
socket.connect();

// The dashboard: one WebSocket (socket.js), the jobs it reports merged by seq
// (store.js), shown live (joblist.js) under the history's filter and paged as
// the list scrolls (history.js), a form per job kind built from its JSON
// Schema (forms.js), batches: built and submitted (batchforms.js), their
// jobs listed and followed while a batch is expanded (batches.js), and
// schedules: made, listed, paused, resumed and deleted (schedules.js).
import { BatchBuilder, FileThenEmail } from "./batchforms.js";
import { Batches } from "./batches.js";
import { announce, setText } from "./dom.js";
import { KindForm, uploadFile } from "./forms.js";
import { BATCH, batchTitle, kindName, setKinds } from "./format.js";
import { History } from "./history.js";
import { JobList } from "./joblist.js";
import { NotificationCenter } from "./notifications.js";
import { showConnectionOf, showNotice } from "./page.js";
import { Requests } from "./requests.js";
import { Schedules } from "./schedules.js";
import { JobSocket, socketUrl } from "./socket.js";
import { JobStore } from "./store.js";

const TERMINAL_EVENTS = { "job.succeeded": "succeeded", "job.failed": "failed", "job.cancelled": "was cancelled" };
const JOB_EVENTS = new Set(["job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"]);

const root = document.getElementById("dashboard");
const store = new JobStore();
const socket = new JobSocket(socketUrl());
// Messages waiting for their answer, by request_id. A job.submit is sent again after a
// reconnect: the same request_id never starts a second job.
const requests = new Requests(socket);
let helloSeen = false;
let kinds = JSON.parse(document.getElementById("kinds-data").textContent);

const jobHistory = new History(document.getElementById("history"), {
  request: (message) => requests.send(message, { resend: message.type !== "job.bulk" }),
  store,
  onChange: () => jobList.refresh(store),
  kinds: () => kinds,
});
store.kept = (id) => jobHistory.listed.has(id);
// The jobs of the batches expanded in the list: their events go there, never to the list itself.
const batches = new Batches({
  request: (message) => requests.send(message),
  send: (message) => socket.send(message),
  flowerUrl: root.dataset.flowerUrl || "",
});
const jobList = new JobList(document.getElementById("job-list"), {
  flowerUrl: root.dataset.flowerUrl || "",
  onCancel: (jobId) => socket.send({ type: "job.cancel", job_id: jobId }),
  onRetry: (jobId, { resendUnknown = false } = {}) => socket.send({ type: "job.retry", job_id: jobId, ...(resendUnknown ? { resend_unknown: true } : {}) }),
  onChange: showCounts,
  shows: (job) => !job.parent_id && jobHistory.shows(job),
  batchJobs: (batch, container) => batches.show(batch, container),
});
store.subscribe((changed, removed) => jobList.render(store, changed, removed));
// Notices, the bell and browser notifications (the protocol's extension messages).
const notifications = new NotificationCenter((message) => socket.send(message));
const schedules = new Schedules(document.getElementById("schedules"), {
  request: (message, options) => requests.send(message, options),
  upload: uploadFile,
  jobStatus: (id) => store.get(id)?.status,
});
// A schedule's last job moves on after the schedule's own frame: its row follows the job's events.
store.subscribe((changed) => schedules.jobsChanged(changed));

// The kinds as kind.list describes them: first from the page, then from the server after each hello.
let forms = [];
let kindsShown = "";
const builder = new BatchBuilder(submitBatch, uploadFile);
const fileThenEmail = new FileThenEmail(submitBatch, uploadFile);
document.getElementById("batch-forms").replaceChildren(builder.el, fileThenEmail.el);
showKinds(kinds);

/** (Re)build the forms when the kinds changed; a form being filled in is kept when its kind did not. */
function showKinds(described) {
  const text = JSON.stringify(described);
  if (text === kindsShown) return;
  kindsShown = text;
  kinds = described;
  setKinds(kinds);
  jobHistory.setKinds(kinds);
  const old = new Map(forms.map((form) => [form.kind, form]));
  forms = kinds.map((kind) => {
    const kept = old.get(kind.name);
    return kept && JSON.stringify(kept.described) === JSON.stringify(kind) ? kept : Object.assign(new KindForm(kind, submit, uploadFile, { priority: true }), { described: kind });
  });
  document.getElementById("job-forms").replaceChildren(...forms.map((form) => form.form));
  document.getElementById("no-kinds").hidden = forms.length > 0;
  builder.setKinds(kinds);
  fileThenEmail.setKinds(kinds);
  schedules.setKinds(kinds);
  document.getElementById("new-batch").hidden = forms.length === 0;
  for (const form of forms) form.setConnected(socket.state === "live");
}

/** Send job.submit; resolves with {job} on job.accepted or {error} on an error reply. */
async function submit(kind, params, priority = "normal") {
  // The default is left out: a server without priorities never sees the field.
  const reply = await requests.send({ type: "job.submit", kind, params, ...(priority === "normal" ? {} : { priority }) });
  return reply.type === "error" ? { error: reply } : { job: reply.job };
}

/**
 * Send batch.submit ({title, mode, jobs}, and request_id when the caller chose it); resolves like submit().
 * A part of a batch sent in parts (batchforms.js: with `offset`) resolves with {received} on batch.part,
 * and is never sent again after a reconnect: the server dropped the parts, so the batch starts over.
 */
async function submitBatch(batch) {
  const reply = await requests.send({ type: "batch.submit", ...batch }, { resend: batch.offset === undefined });
  if (reply.type === "batch.part") return { received: reply.received };
  return reply.type === "error" ? { error: reply } : { job: reply.job };
}

socket.addEventListener("message", (event) => onMessage(event.detail));

function onMessage(message) {
  if (notifications.handle(message)) return;
  if (batches.handle(message)) return; // a batch's own job: shown under its batch, if expanded
  switch (message.type) {
    case "hello":
      onHello(message);
      break;
    case "job.accepted":
      store.applyJob(message.job);
      requests.handle(message);
      announce(`${jobName(message.job)} submitted.`);
      break;
    case "job.progress":
      store.applyProgress(message.job_id, message.seq, message.progress, message.batch);
      break;
    case "kind.list":
      showKinds(message.kinds || []);
      break;
    case "schedule.created":
    case "schedule.changed":
    case "schedule.list":
      // Applied whoever asked: the tab that asked gets only its answer, the others the same frame.
      schedules.handle(message);
      requests.handle(message);
      break;
    case "error":
      onError(message);
      break;
    default:
      if (JOB_EVENTS.has(message.type)) onJobEvent(message);
      else requests.handle(message); // job.list, job.bulk: answers to this page's requests
  }
}

function onHello(hello) {
  helloSeen = true;
  store.applySnapshot(hello.jobs || []);
  notifications.onHello(hello);
  // The kinds may have changed since the page was made (a deploy): their forms follow kind.list.
  socket.send({ type: "kind.list" });
  showCounts();
  requests.reconnected();
  batches.reconnected();
  jobHistory.restart();
  // After requests.reconnected(), which settles the listing a lost connection asked for.
  schedules.reload();
}

function onJobEvent(message) {
  const applied = store.applyJob(message.job);
  const outcome = TERMINAL_EVENTS[message.type];
  if (applied && outcome) {
    const error = message.job.error?.message;
    announce(`${jobName(message.job)} ${outcome}${error ? `: ${error}` : "."}`);
  }
}

/** "Countdown job", or "Batch Nightly checks". */
function jobName(job) {
  return job.kind === BATCH ? `Batch ${batchTitle(job)}` : `${kindName(job.kind)} job`;
}

function onError(message) {
  if (requests.handle(message)) return;
  // Errors to cancel and retry carry no request_id: show them above the list.
  jobList.releaseActions();
  showNotice(message.message);
}

function onState(state) {
  for (const form of forms) form.setConnected(state === "live");
  builder.setConnected(state === "live");
  fileThenEmail.setConnected(state === "live");
  notifications.setConnected(state === "live");
  schedules.setConnected(state === "live");
}

function showCounts() {
  const jobs = store.list().filter((job) => jobHistory.shows(job));
  const running = jobs.filter((job) => job.status === "running").length;
  const queued = jobs.filter((job) => job.status === "queued").length;
  const parts = [`${jobs.length} ${jobs.length === 1 ? "job" : "jobs"}`];
  if (running) parts.push(`${running} running`);
  if (queued) parts.push(`${queued} queued`);
  setText(document.getElementById("job-count"), jobs.length ? parts.join(" · ") : "");
  const empty = document.getElementById("jobs-empty");
  empty.hidden = jobs.length > 0;
  const none = jobHistory.filtered ? "No jobs match this view." : "No jobs yet. Start one with a form.";
  setText(empty, helloSeen ? none : "Loading your jobs…");
}

showConnectionOf(socket, root.dataset.loginUrl, onState);
socket.connect();

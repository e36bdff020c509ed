// The live job list: one <li> per job, created once and updated in place, so
// focus, selection and screen-reader position survive the frequent updates.
// A batch is one row with its counts; expanded, it lists its own jobs (static/js/batches.js).
import { h, setAttr, setText } from "./dom.js";
import { BATCH, batchTitle, formatDuration, formatNumber, formatTime, kindName, paramsSummary, resendUnknownWords, STATUS_NAMES } from "./format.js";
import { renderArtifacts, renderResult } from "./results.js";
import { FINISHED, UNFINISHED } from "./store.js";

export class JobList {
  /**
   * @param list the <ol> to fill
   * @param options {flowerUrl, onCancel(id), onRetry(id, {resendUnknown}), onChange(count), shows(job) (default: every job),
   *   mine(job) (default: every job: whether to offer Cancel and Retry),
   *   batchJobs(batch, container) (shows a batch's jobs in `container`, live; returns {close(), tick(now)};
   *   without it a batch cannot be expanded)}
   */
  constructor(list, options) {
    this.list = list;
    this.options = options;
    this.views = new Map();
    window.setInterval(() => this.tick(), 1000);
  }

  /** Bring the list in line with the store: update changed jobs, drop removed ones, keep newest first. */
  render(store, changed, removed) {
    const shows = this.options.shows || (() => true);
    for (const id of removed) this._drop(id);
    for (const id of changed) {
      const job = store.get(id);
      if (!job || !shows(job)) {
        this._drop(id);
        continue;
      }
      let view = this.views.get(id);
      if (!view) {
        view = job.kind === BATCH ? new BatchView(job, this.options) : new JobView(job, this.options);
        this.views.set(id, view);
      }
      view.update(job);
    }
    this._order(store.list().filter(shows));
    this.options.onChange?.(this.views.size);
  }

  /** Judge every job again (the filter changed). */
  refresh(store) {
    this.render(store, [...new Set([...this.views.keys(), ...store.jobs.keys()])], []);
  }

  _drop(id) {
    const view = this.views.get(id);
    if (!view) return;
    view.destroy();
    view.el.remove();
    this.views.delete(id);
  }

  /** A user action was refused (e.g. conflict): let the buttons be used again. */
  releaseActions() {
    for (const view of this.views.values()) view.setBusy(false);
  }

  tick() {
    const now = Date.now();
    for (const view of this.views.values()) view.tick(now);
  }

  _order(jobs) {
    // Move only what is out of place: moving a node that holds focus would drop it.
    let expected = this.list.firstElementChild;
    for (const job of jobs) {
      const el = this.views.get(job.id)?.el;
      if (!el) continue;
      if (el === expected) {
        expected = el.nextElementSibling;
      } else {
        this.list.insertBefore(el, expected);
      }
    }
  }
}

/** One job's row: its bar, status, outcome and actions. Exported for the rows of a batch's jobs. */
export class JobView {
  constructor(job, options) {
    this.options = options;
    this.job = job;
    this.busy = false;

    const labelId = `job-${job.id}-title`;
    this.title = h("span", { className: "job-kind", attrs: { id: labelId }, text: kindName(job.kind) });
    this.badge = h("span", { className: "badge" });
    // Only a priority other than normal is worth a word on the row.
    this.priority = h("span", { className: "job-priority" });
    this.summary = h("span", { className: "job-params" });
    this.fill = h("span", { className: "bar-fill" });
    this.bar = h(
      "div",
      { className: "bar", attrs: { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-labelledby": labelId } },
      this.fill,
    );
    this.percent = h("span", { className: "job-percent" });
    this.stage = h("span", { className: "job-stage" });
    this.message = h("span", { className: "job-message" });
    this.elapsed = h("span", { className: "job-elapsed" });
    this.detail = h("div", { className: "job-detail" });
    this.cancelButton = h("button", { className: "secondary", text: "Cancel", attrs: { type: "button" }, on: { click: () => this._act("cancel") } });
    this.retryButton = h("button", { className: "secondary", text: "Retry", attrs: { type: "button" }, on: { click: () => this._act("retry") } });
    // Only on a failed or cancelled job with parts of unknown outcome (an email's interrupted recipients).
    this.resendButton = h("button", { className: "secondary resend-unknown", attrs: { type: "button" }, on: { click: () => this._resendUnknown() } });
    this.flower = options.flowerUrl ? h("a", { className: "flower-link", text: "Flower", attrs: { target: "_blank", rel: "noopener" } }) : null;
    this.details = h("a", { className: "detail-link", text: "Details", attrs: { href: `/jobs/${encodeURIComponent(job.id)}/` } });
    this.owner = h("span", { className: "job-owner muted" });
    this.meta = h("span", { className: "job-meta muted" });
    this.statusLine = h("div", { className: "job-status-line" }, h("span", { className: "job-words" }, this.stage, this.message), this.elapsed);
    this.actions = h("div", { className: "job-actions" }, this.cancelButton, this.retryButton, this.resendButton, this.details, this.flower);

    this.el = h(
      "li",
      { className: "job card", dataset: { jobId: job.id, kind: job.kind }, attrs: { "aria-labelledby": labelId } },
      h("div", { className: "job-head" }, h("div", { className: "job-title" }, this.title, this.priority, this.summary), this.badge),
      h("div", { className: "job-progress" }, this.bar, this.percent),
      this.statusLine,
      this.detail,
      h("div", { className: "job-foot" }, this.actions, this.owner, this.meta),
    );
  }

  /** The row leaves the list. */
  destroy() {}

  update(job) {
    const previous = this.job;
    this.job = job;
    this.el.dataset.status = job.status;
    this.el.dataset.seq = job.seq;
    setText(this.badge, STATUS_NAMES[job.status] || job.status);
    this.badge.className = `badge badge-${job.status}`;
    const priority = job.priority && job.priority !== "normal" ? job.priority : "";
    setText(this.priority, priority ? `${priority} priority` : "");
    this.priority.hidden = !priority;
    this.el.dataset.priority = job.priority || "normal";
    setText(this.summary, paramsSummary(job.kind, job.params));
    this._progress(job);
    this._detail(job, previous);
    const mine = this.options.mine ? this.options.mine(job) : true;
    this.cancelButton.hidden = !mine || !UNFINISHED.has(job.status);
    this.retryButton.hidden = !mine || !(job.status === "failed" || job.status === "cancelled");
    const unknown = job.unknown_outcome || 0;
    this.resendButton.hidden = this.retryButton.hidden || unknown < 1;
    if (unknown > 0) setText(this.resendButton, resendUnknownWords(unknown).label);
    setAttr(this.details, "aria-label", `Details of this ${kindName(job.kind)} job`);
    setText(this.owner, job.owner ? job.owner : "");
    setAttr(this.cancelButton, "aria-label", `Cancel ${kindName(job.kind)} job`);
    setAttr(this.retryButton, "aria-label", `Retry ${kindName(job.kind)} job`);
    if (this.flower) {
      this.flower.hidden = !job.task_id;
      if (job.task_id) setAttr(this.flower, "href", `${this.options.flowerUrl}/task/${encodeURIComponent(job.task_id)}`);
      setAttr(this.flower, "aria-label", `This job's Celery task in Flower`);
    }
    const attempt = job.attempt > 1 ? ` · attempt ${job.attempt}` : "";
    setText(this.meta, `${formatTime(job.created_at)} · ${job.id.slice(0, 8)}${attempt}`);
    setAttr(this.meta, "title", `Job ${job.id}, created ${job.created_at}`);
    this.setBusy(false);
    this.tick(Date.now());
  }

  setBusy(busy) {
    this.busy = busy;
    this.cancelButton.disabled = busy;
    this.retryButton.disabled = busy;
    this.resendButton.disabled = busy;
  }

  tick(now) {
    const job = this.job;
    const created = Date.parse(job.created_at);
    const started = job.started_at ? Date.parse(job.started_at) : null;
    const finished = job.finished_at ? Date.parse(job.finished_at) : null;
    let text = "";
    if (job.status === "queued") text = `waiting ${formatDuration(now - created)}`;
    else if (job.status === "running") text = `running ${formatDuration(now - (started ?? created))}`;
    else if (finished !== null && started !== null) text = `took ${formatDuration(finished - started)}`;
    else if (finished !== null) text = `never started`;
    setText(this.elapsed, text);
  }

  _act(action) {
    this.setBusy(true);
    const send = action === "cancel" ? this.options.onCancel : this.options.onRetry;
    if (!send(this.job.id)) this.setBusy(false);
  }

  /** Retry, sending again to the recipients whose outcome is unknown: only once the risk is confirmed. */
  _resendUnknown() {
    if (!window.confirm(resendUnknownWords(this.job.unknown_outcome).question)) return;
    this.setBusy(true);
    if (!this.options.onRetry(this.job.id, { resendUnknown: true })) this.setBusy(false);
  }

  _progress(job) {
    const progress = job.progress || {};
    const percent = typeof progress.percent === "number" ? Math.max(0, Math.min(100, progress.percent)) : null;
    const indeterminate = percent === null && job.status === "running";
    const shown = percent !== null ? percent : job.status === "succeeded" ? 100 : 0;
    this.bar.classList.toggle("indeterminate", indeterminate);
    this.bar.classList.toggle("done", FINISHED.has(job.status));
    this.fill.style.width = indeterminate ? "" : `${shown}%`;
    const whole = Math.floor(shown);
    setAttr(this.bar, "aria-valuenow", indeterminate ? null : whole);
    setText(this.percent, indeterminate ? "" : `${whole}%`);
    const counted = typeof progress.total === "number"
      ? `${formatNumber(progress.current ?? 0)} of ${formatNumber(progress.total)}`
      : progress.current ? `${formatNumber(progress.current)} done` : "";
    const words = [indeterminate ? "In progress" : `${whole}%`, counted, STATUS_NAMES[job.status] || job.status];
    setAttr(this.bar, "aria-valuetext", words.filter(Boolean).join(", "));
    setText(this.stage, progress.stage || "");
    const waiting = job.status === "queued" ? "Waiting for a worker" : "";
    setText(this.message, progress.message || waiting);
  }

  _detail(job, previous) {
    // Rebuilt only when the outcome changes, not on every progress event.
    const same = previous.result === job.result && previous.error === job.error && previous.artifacts === job.artifacts;
    if (previous !== job && same && this.detail.dataset.built) return;
    this.detail.dataset.built = "1";
    this.detail.replaceChildren();
    if (job.error) {
      this.detail.append(h("p", { className: "job-error", attrs: { role: "note" } }, h("strong", { text: "Error: " }), job.error.message || job.error.code));
    }
    const result = job.status === "succeeded" ? renderResult(job.kind, job.result) : null;
    if (result) this.detail.append(result);
    const files = renderArtifacts(job.artifacts);
    if (files) this.detail.append(files);
    this.detail.hidden = !this.detail.childElementCount;
  }
}

const COUNTED = ["queued", "running", "succeeded", "failed", "cancelled"];

/** A batch's counts (its `batch` field): how many of its jobs are finished, and how many are in each state. */
export class BatchCounts {
  constructor() {
    this.finished = h("li", { className: "batch-finished", dataset: { count: "finished" } });
    this.counts = new Map(COUNTED.map((status) => [status, h("li", { className: `batch-count count-${status}`, dataset: { count: status } })]));
    this.el = h("ul", { className: "batch-counts", attrs: { "aria-label": "Jobs of the batch by status" } }, this.finished, ...this.counts.values());
  }

  update(job) {
    const counts = job.batch || {};
    const total = counts.total ?? job.params?.size ?? 0;
    const finished = (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
    setText(this.finished, `${formatNumber(finished)}/${formatNumber(total)} finished`);
    this.finished.dataset.n = String(finished);
    for (const [status, item] of this.counts) {
      const n = counts[status] ?? 0;
      setText(item, `${formatNumber(n)} ${status}`);
      item.dataset.n = String(n);
      item.classList.toggle("zero", n === 0);
    }
  }
}

/** A batch's row: one bar for the whole batch, its counts, and a disclosure button that lists its jobs. */
class BatchView extends JobView {
  constructor(job, options) {
    super(job, options);
    this.el.classList.add("batch");
    this.counts = new BatchCounts();
    this.jobs = null;
    const boxId = `batch-${job.id}-jobs`;
    this.toggle = h("button", {
      className: "secondary batch-toggle",
      text: "Expand",
      attrs: { type: "button", "aria-expanded": "false", "aria-controls": boxId },
      on: { click: () => this.setExpanded(!this.jobs) },
    });
    this.toggle.hidden = !options.batchJobs;
    this.box = h("div", { className: "batch-jobs", attrs: { id: boxId }, hidden: true });
    this.statusLine.after(this.counts.el);
    this.actions.prepend(this.toggle);
    this.el.append(this.box);
  }

  update(job) {
    super.update(job);
    const title = batchTitle(job);
    setText(this.title, title);
    this.counts.update(job);
    setAttr(this.details, "aria-label", `Details of batch ${title}`);
    setAttr(this.cancelButton, "aria-label", `Cancel batch ${title}`);
    setAttr(this.retryButton, "aria-label", `Retry batch ${title}`);
    setAttr(this.toggle, "aria-label", `${this.jobs ? "Collapse" : "Expand"} batch ${title}: its ${formatNumber(job.params?.size ?? 0)} jobs`);
  }

  /** Expanded, the batch's jobs are listed and followed; collapsed, they are gone and no longer followed. */
  setExpanded(expanded) {
    if (expanded === Boolean(this.jobs)) return;
    if (expanded) {
      this.jobs = this.options.batchJobs(this.job, this.box);
    } else {
      this.jobs.close();
      this.jobs = null;
      this.box.replaceChildren();
    }
    this.box.hidden = !expanded;
    setText(this.toggle, expanded ? "Collapse" : "Expand");
    setAttr(this.toggle, "aria-expanded", String(expanded));
    this.update(this.job);
  }

  tick(now) {
    super.tick(now);
    this.jobs?.tick(now);
  }

  destroy() {
    this.setExpanded(false);
  }
}

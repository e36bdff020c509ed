// A batch's own jobs (protocol 1.1 Batches), shown only while asked for and live only while followed.
//
// Showing a batch's jobs sends batch.follow (from then on its jobs' own events reach this socket), then
// lists them with job.list + parent_id, 50 at a time in their order in the batch ("More" for the next
// page). Events may come before the page that lists their job: both merge by seq (store.js), and a job
// heard of before it is listed waits at the end until its page says where it goes. Hiding them sends
// batch.unfollow. A batch's jobs never join the page's own list of jobs: their events come here.
import { h, setText } from "./dom.js";
import { formatNumber } from "./format.js";
import { JobView } from "./joblist.js";
import { JobStore } from "./store.js";

const PAGE = 50;
const JOB_EVENTS = new Set(["job.queued", "job.started", "job.succeeded", "job.failed", "job.cancelled"]);

export class Batches {
  /**
   * @param options {request(message) → Promise<reply> (a message that waits for its answer),
   *   send(message) (one that does not), flowerUrl}
   */
  constructor(options) {
    this.options = options;
    this.shown = new Map(); // batch id → BatchJobs
  }

  /** List `batch`'s jobs in `container` and follow them; close() the answer to stop. */
  show(batch, container) {
    this.shown.get(batch.id)?.close();
    const jobs = new BatchJobs(batch, container, this.options, () => this.shown.delete(batch.id));
    this.shown.set(batch.id, jobs);
    jobs.load();
    return jobs;
  }

  /**
   * A job event or job.progress of a batch's job (it names its batch): applied where that batch is shown,
   * dropped otherwise. True when the message was one; the page's own list never sees it.
   */
  handle(message) {
    if (message.type === "job.progress") {
      if (!message.parent_id) return false;
      this.shown.get(message.parent_id)?.store.applyProgress(message.job_id, message.seq, message.progress);
      return true;
    }
    if (!JOB_EVENTS.has(message.type) || !message.job?.parent_id) return false;
    this.shown.get(message.job.parent_id)?.store.applyJob(message.job);
    return true;
  }

  /** A new connection follows nothing yet: follow each shown batch again and list its jobs afresh. */
  reconnected() {
    for (const jobs of this.shown.values()) jobs.load();
  }
}

/** The jobs of one batch, in its order, each with its own bar and status. */
class BatchJobs {
  constructor(batch, container, options, onClose) {
    this.batchId = batch.id;
    this.sequence = batch.params?.mode === "sequence";
    this.size = batch.params?.size ?? 0;
    this.options = options;
    this.onClose = onClose;
    this.store = new JobStore();
    this.store.kept = () => true; // never pruned: the user asked for these
    this.views = new Map();
    this.positions = new Map(); // job id → its index in the batch, from the pages
    this.heard = new Map(); // job id → when an event brought it before its page did
    this.generation = 0;
    this.listed = 0;
    this.pages = 0;
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.closed = false;
    const noun = this.sequence ? "Steps" : "Jobs";
    this.list = h("ol", { className: "job-list batch-job-list", attrs: { "aria-label": `${noun} of this batch` } });
    this.state = h("p", { className: "batch-jobs-state muted", attrs: { "aria-live": "polite" } });
    this.moreButton = h("button", { className: "secondary batch-more", text: "More", attrs: { type: "button" }, hidden: true, on: { click: () => this.more() } });
    this.el = h("div", { className: "batch-jobs-list" }, this.list, this.state, this.moreButton);
    container.replaceChildren(this.el);
    this.store.subscribe((changed) => this.render(changed));
  }

  /** Follow the batch, then list its jobs from the first (again after a reconnect: as many pages as before). */
  async load() {
    this.generation += 1;
    const generation = this.generation;
    const pages = Math.max(1, this.pages);
    Object.assign(this, { listed: 0, pages: 0, cursor: null, done: false, loading: false });
    setText(this.state, "Loading…");
    const followed = await this.options.request({ type: "batch.follow", job_id: this.batchId });
    if (generation !== this.generation) return;
    // Not followed (e.g. too many batches followed at once): the list still shows them, as they are now.
    const notLive = followed.type === "error" ? `${followed.message} ` : "";
    while (this.pages < pages && !this.done && generation === this.generation) {
      if (!(await this._page(generation))) return;
    }
    if (generation === this.generation && notLive) setText(this.state, `${notLive}${this.state.textContent}`);
  }

  /** The next page ("More"). */
  async more() {
    if (this.loading || this.done || this.closed) return;
    await this._page(this.generation);
  }

  async _page(generation) {
    this.loading = true;
    this.moreButton.disabled = true;
    setText(this.state, "Loading…");
    const message = { type: "job.list", filter: { parent_id: this.batchId }, limit: PAGE };
    if (this.cursor) message.cursor = this.cursor;
    const reply = await this.options.request(message);
    if (generation !== this.generation) return false; // closed, or a reconnect started again
    this.loading = false;
    this.moreButton.disabled = false;
    if (reply.type !== "job.list") {
      setText(this.state, reply.message || "Could not list the jobs of this batch.");
      return false;
    }
    reply.jobs.forEach((job, index) => this.positions.set(job.id, this.listed + index));
    this.listed += reply.jobs.length;
    this.pages += 1;
    this.cursor = reply.next_cursor;
    this.done = !reply.next_cursor;
    this.store.applyPage(reply.jobs);
    this._order(); // a job heard of before its page has a place now, even when the page held nothing newer
    const shown = `${formatNumber(this.listed)} of ${formatNumber(Math.max(this.size, this.listed))} shown.`;
    setText(this.state, this.done ? "" : shown);
    this.moreButton.hidden = this.done;
    return true;
  }

  render(changed) {
    if (this.closed) return;
    for (const id of changed) {
      const job = this.store.get(id);
      let view = this.views.get(id);
      if (!view) {
        if (!this.positions.has(id)) this.heard.set(id, this.heard.size);
        view = new BatchJobView(job, { flowerUrl: this.options.flowerUrl, mine: () => false });
        this.views.set(id, view);
      }
      view.update(job);
    }
    this._order();
  }

  _order() {
    const place = (id) => this.positions.get(id) ?? Number.MAX_SAFE_INTEGER - 100_000 + (this.heard.get(id) ?? 0);
    const ids = [...this.views.keys()].sort((a, b) => place(a) - place(b));
    // Move only what is out of place: moving a node that holds focus would drop it.
    let expected = this.list.firstElementChild;
    for (const id of ids) {
      const view = this.views.get(id);
      view.setPosition(this.positions.get(id), this.sequence);
      if (view.el === expected) expected = view.el.nextElementSibling;
      else this.list.insertBefore(view.el, expected);
    }
  }

  tick(now) {
    for (const view of this.views.values()) view.tick(now);
  }

  /** Stop following the batch and take its jobs off the page. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.generation += 1;
    this.options.send({ type: "batch.unfollow", job_id: this.batchId });
    this.el.remove();
    this.onClose();
  }
}

/** A job of a batch: its row, with its place in the batch ("Step 2" in a sequence). */
class BatchJobView extends JobView {
  constructor(job, options) {
    super(job, options);
    this.el.classList.remove("card");
    this.el.classList.add("batch-job");
    this.place = h("span", { className: "batch-job-place muted" });
    this.title.prepend(this.place, " ");
  }

  setPosition(index, sequence) {
    const known = typeof index === "number";
    this.el.dataset.position = known ? String(index) : "";
    setText(this.place, known ? (sequence ? `Step ${index + 1}:` : `${index + 1}.`) : "");
  }
}

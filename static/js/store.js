// The jobs this page knows, merged by seq (shared/protocol.md, "Job object").
//
// Every job event and snapshot entry carries the job's seq, which grows with
// each of its events across all server processes. Per job we keep the highest
// seq applied and ignore anything not higher, so events that arrive late, twice
// or out of order (several tabs, a reconnect racing its snapshot) never move a
// job backwards.

export const UNFINISHED = new Set(["queued", "running"]);
export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

// Finished jobs kept beyond the snapshot's, so a long-open tab stays small (those the history
// listed stay: the user scrolled to them).
const MAX_FINISHED = 100;

export class JobStore {
  constructor() {
    this.jobs = new Map();
    this.listeners = [];
    this.kept = () => false;
  }

  /** Call `listener(changedIds, removedIds)` after every change. */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  get(id) {
    return this.jobs.get(id);
  }

  /** All jobs, newest first. */
  list() {
    return [...this.jobs.values()].sort(newestFirst);
  }

  /** A full Job object (job.accepted, job.queued … job.cancelled). True if applied. */
  applyJob(job) {
    if (!this._put(job)) return false;
    const removed = this._prune();
    this._emit([job.id], removed);
    return true;
  }

  /** The small form of job.progress (a batch's carries its counts, `batch`). A job this page does not know is skipped. */
  applyProgress(jobId, seq, progress, batch) {
    const held = this.jobs.get(jobId);
    if (!held || !(seq > held.seq)) return false;
    this.jobs.set(jobId, batch ? { ...held, seq, progress, batch } : { ...held, seq, progress });
    this._emit([jobId], []);
    return true;
  }

  /**
   * The hello snapshot: every unfinished job of the user plus recent finished ones.
   * Entries merge by seq; a job held as unfinished but missing from the snapshot
   * has finished (or is gone) since, and its held state is stale: it is dropped.
   * Finished jobs missing from the snapshot may stay.
   */
  applySnapshot(jobs) {
    const changed = [];
    const inSnapshot = new Set();
    for (const job of jobs) {
      inSnapshot.add(job.id);
      if (this._put(job)) changed.push(job.id);
    }
    const removed = [];
    for (const [id, held] of this.jobs) {
      if (!inSnapshot.has(id) && UNFINISHED.has(held.status)) {
        this.jobs.delete(id);
        removed.push(id);
      }
    }
    removed.push(...this._prune());
    this._emit(changed, removed);
  }

  /** A page of job.list: merged by seq like any snapshot, and never dropped for being old. */
  applyPage(jobs) {
    const changed = jobs.filter((job) => this._put(job)).map((job) => job.id);
    this._emit(changed, []);
  }

  _put(job) {
    const held = this.jobs.get(job.id);
    if (held && !(job.seq > held.seq)) return false;
    // Only staff's listings of everyone's jobs name the owner; the job's later events do not.
    this.jobs.set(job.id, held?.owner && !job.owner ? { ...job, owner: held.owner } : job);
    return true;
  }

  _prune() {
    const finished = this.list().filter((job) => FINISHED.has(job.status) && !this.kept(job.id));
    const removed = [];
    for (const job of finished.slice(MAX_FINISHED)) {
      this.jobs.delete(job.id);
      removed.push(job.id);
    }
    return removed;
  }

  _emit(changed, removed) {
    if (!changed.length && !removed.length) return;
    for (const listener of this.listeners) listener(changed, removed);
  }
}

function newestFirst(a, b) {
  // ISO timestamps of one format compare as strings.
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

// Job history (protocol 1.1 job.list): the filter bar, its state in the page's URL, pages loaded as the
// list scrolls, and the bulk actions over what the filter matches (job.bulk, counted first with dry_run).
//
// Which jobs show: every job the server listed for the current filter (they stay, and update in place,
// even when a change takes them out of it), and every other job the page hears of (the hello snapshot,
// live events) that the filter's fields would match. A search can only be judged by the server, so
// with one, only listed jobs show. A batch is listed like a job (its jobs are not: they show under it).
import { announce, h, setText } from "./dom.js";
import { BATCH, kindName } from "./format.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;

/** The filter a URL's query holds: ?status=failed&status=running&kind=email.send&q=…&after=…&before=…&owner=… */
export function filterFromUrl(search = window.location.search) {
  const query = new URLSearchParams(search);
  return {
    status: query.getAll("status").filter((status) => STATUSES.includes(status)),
    kind: query.getAll("kind"),
    search: query.get("q") || "",
    after: query.get("after") || "",
    before: query.get("before") || "",
    owner: query.get("owner") || "",
  };
}

function urlOf(filter) {
  const query = new URLSearchParams();
  for (const status of filter.status) query.append("status", status);
  for (const kind of filter.kind) query.append("kind", kind);
  for (const [key, name] of [["search", "q"], ["after", "after"], ["before", "before"], ["owner", "owner"]]) {
    if (filter[key]) query.set(name, filter[key]);
  }
  const text = query.toString();
  return `${window.location.pathname}${text ? `?${text}` : ""}`;
}

/** The protocol's Filter of the bar's state. Days are the user's calendar days, sent as instants. */
export function protocolFilter(filter) {
  const wanted = {};
  if (filter.status.length) wanted.status = filter.status;
  if (filter.kind.length) wanted.kind = filter.kind;
  if (filter.search) wanted.search = filter.search;
  if (filter.after) wanted.created_after = new Date(`${filter.after}T00:00:00`).toISOString();
  if (filter.before) wanted.created_before = new Date(new Date(`${filter.before}T00:00:00`).getTime() + 86_400_000).toISOString();
  if (filter.owner) wanted.owner = [filter.owner];
  return wanted;
}

function isEmpty(filter) {
  return !filter.status.length && !filter.kind.length && !filter.search && !filter.after && !filter.before && !filter.owner;
}

export class History {
  /**
   * @param root the element holding the filter bar (.history-filters), the bulk buttons and the list's sentinel
   * @param options {request(message) → Promise<reply>, store, onChange(), scope: "own" | "all", kinds()}
   */
  constructor(root, options) {
    this.root = root;
    this.options = options;
    this.scope = options.scope || "own";
    this.filter = filterFromUrl();
    this.listed = new Set();
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.generation = 0;
    this.form = root.querySelector(".history-filters");
    this.sentinel = root.querySelector(".history-more");
    this.dialog = root.querySelector(".bulk-dialog");
    this._fillForm();
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.apply();
    });
    this.form.addEventListener("change", (event) => {
      if (event.target.name !== "q") this.apply();
    });
    this.form.querySelector(".history-clear")?.addEventListener("click", () => {
      this.form.reset();
      this.apply();
    });
    for (const button of root.querySelectorAll("[data-bulk]")) button.addEventListener("click", () => this.bulk(button.dataset.bulk));
    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.more();
    }).observe(this.sentinel);
  }

  /** Whether a job shows under the current filter. */
  shows(job) {
    if (this.listed.has(job.id)) return true;
    const f = this.filter;
    if (f.search || f.owner) return false;
    if (f.status.length && !f.status.includes(job.status)) return false;
    if (f.kind.length && !f.kind.includes(job.kind)) return false;
    if (f.after && job.created_at < new Date(`${f.after}T00:00:00`).toISOString()) return false;
    if (f.before && job.created_at >= new Date(new Date(`${f.before}T00:00:00`).getTime() + 86_400_000).toISOString()) return false;
    return true;
  }

  get filtered() {
    return !isEmpty(this.filter);
  }

  /** Read the bar, put its state in the URL, and list from the newest again. */
  apply() {
    const data = new FormData(this.form);
    this.filter = {
      status: data.getAll("status").map(String),
      kind: data.getAll("kind").map(String).filter(Boolean),
      search: String(data.get("q") || "").trim(),
      after: String(data.get("after") || ""),
      before: String(data.get("before") || ""),
      owner: String(data.get("owner") || "").trim(),
    };
    window.history.replaceState(null, "", urlOf(this.filter));
    this.restart();
  }

  /** After a hello or a new filter: forget the pages, load the first. */
  restart() {
    this.generation += 1;
    this.listed.clear();
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.options.onChange();
    this.more();
  }

  async more() {
    if (this.loading || this.done) return;
    this.loading = true;
    const generation = this.generation;
    setText(this.sentinel, "Loading…");
    const message = { type: "job.list", filter: protocolFilter(this.filter), limit: PAGE, scope: this.scope };
    if (this.cursor) message.cursor = this.cursor;
    const reply = await this.options.request(message);
    if (generation !== this.generation) return; // a newer filter or hello took over
    this.loading = false;
    if (reply.type !== "job.list") {
      setText(this.sentinel, reply.message || "Could not load the history.");
      return;
    }
    for (const job of reply.jobs) this.listed.add(job.id);
    this.options.store.applyPage(reply.jobs);
    this.cursor = reply.next_cursor;
    this.done = !reply.next_cursor;
    setText(this.sentinel, this.done ? "" : "Loading more…");
    this.options.onChange();
    if (!this.done && this._sentinelInView()) this.more();
  }

  /** List the newest page again and merge it (the operations view: others' jobs send this page no events). */
  async refreshTop() {
    if (this.loading) return;
    const generation = this.generation;
    const reply = await this.options.request({ type: "job.list", filter: protocolFilter(this.filter), limit: PAGE, scope: this.scope });
    if (generation !== this.generation || reply.type !== "job.list") return;
    for (const job of reply.jobs) this.listed.add(job.id);
    this.options.store.applyPage(reply.jobs);
    this.options.onChange();
  }

  _sentinelInView() {
    const box = this.sentinel.getBoundingClientRect();
    return box.top < window.innerHeight && box.bottom >= 0;
  }

  /** Count, confirm, then act on every job the filter matches. */
  async bulk(action) {
    const filter = protocolFilter(this.filter);
    const counted = await this.options.request({ type: "job.bulk", action, filter, scope: this.scope, dry_run: true });
    if (counted.type !== "job.bulk") return this._bulkDone(counted.message);
    const what = action === "retry" ? "failed or cancelled" : "queued or running";
    const verb = action === "retry" ? "Retry" : "Cancel";
    if (!counted.changed) return this._bulkDone(`No ${what} jobs match this view.`);
    const jobs = counted.changed === 1 ? "job" : "jobs";
    const question = `${verb} ${counted.changed} ${what} ${jobs} of the ${counted.matched} this view shows?`;
    if (!(await this._confirm(question, `${verb} ${counted.changed} ${jobs}`))) return null;
    const done = await this.options.request({ type: "job.bulk", action, filter, scope: this.scope });
    if (done.type !== "job.bulk") return this._bulkDone(done.message);
    const past = action === "retry" ? "queued again" : "cancelled";
    return this._bulkDone(`${done.changed} ${done.changed === 1 ? "job" : "jobs"} ${past}.`);
  }

  _bulkDone(text) {
    const status = this.root.querySelector(".bulk-status");
    setText(status, text);
    announce(text);
    return null;
  }

  /** The page's <dialog>, with the question and the button's words; true when confirmed. */
  _confirm(question, yes) {
    setText(this.dialog.querySelector(".bulk-question"), question);
    setText(this.dialog.querySelector(".bulk-yes"), yes);
    return new Promise((resolve) => {
      this.dialog.addEventListener("close", () => resolve(this.dialog.returnValue === "yes"), { once: true });
      this.dialog.returnValue = "";
      this.dialog.showModal();
    });
  }

  _fillForm() {
    const f = this.filter;
    for (const box of this.form.querySelectorAll('input[name="status"]')) box.checked = f.status.includes(box.value);
    this.form.elements.namedItem("q").value = f.search;
    this.form.elements.namedItem("after").value = f.after;
    this.form.elements.namedItem("before").value = f.before;
    const owner = this.form.elements.namedItem("owner");
    if (owner) owner.value = f.owner;
    this.setKinds(this.options.kinds());
  }

  /** The kind select's options: every kind the server offers, batches, and any kind the URL names. */
  setKinds(kinds) {
    const select = this.form.elements.namedItem("kind");
    const names = [...new Set([...kinds.map((kind) => kind.name), BATCH, ...this.filter.kind])].sort();
    const titles = new Map([[BATCH, kindName(BATCH)], ...kinds.map((kind) => [kind.name, kind.title])]);
    select.replaceChildren(
      h("option", { attrs: { value: "" }, text: "All kinds" }),
      ...names.map((name) => h("option", { attrs: { value: name }, text: titles.get(name) || name })),
    );
    select.value = this.filter.kind[0] || "";
  }
}
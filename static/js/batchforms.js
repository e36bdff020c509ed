// Submitting batches (protocol 1.1 batch.submit) from the dashboard:
//   - a builder: pick a kind, fill in its own form (forms.js) and "Add to batch" (as many copies as
//     asked), again for as many jobs as wanted, then start them all side by side (mode "parallel");
//   - a two-step sequence: process a file (the file.process form, its upload included), then email its
//     result to an address the user types (email.send, its message made of {{ steps.0.result.KEY }}).
// The server's invalid_params details name a bad job as jobs.<index>.<field>: each is shown beside the
// job it names. A batch too large for one frame goes in parts (docs/protocol.md, "Extension: a batch in
// parts"), one after another, each once the server has answered the one before.
import { announce, h, setAttr, setText } from "./dom.js";
import { KindForm, KindPicker, slug } from "./forms.js";
import { formatNumber, kindName, operationName, paramsSummary, uploadNames } from "./format.js";
import { requestId } from "./requests.js";

// A client frame holds at most 64 KiB, measured in UTF-8 bytes (docs/protocol.md, "Frames").
const MAX_FRAME_BYTES = 64 * 1024;
// A parallel batch holds 1 to 10,000 jobs (docs/protocol.md, "Batches and sequences").
const MAX_BATCH = 10_000;
const MAX_COPIES = MAX_BATCH;
const JOB_PATH = /^jobs\.(\d+)\.(.+)$/;

/** Words for one detail of a job ("steps", "to.1") under the titles of its kind's fields. */
function describeField(kinds, kind, path, message) {
  const [field, ...rest] = path.split(".");
  const properties = kinds.find((candidate) => candidate.name === kind)?.params_schema?.properties || {};
  const title = field === "params" || field === "kind" ? "" : properties[field]?.title || field;
  const within = rest.length && /^\d+$/.test(rest[0]) ? ` (item ${Number(rest[0]) + 1})` : rest.length ? ` (${rest.join(".")})` : "";
  return title ? `${title}${within}: ${message}` : message;
}

/** The message's size as the socket sends it (JSON.stringify), in UTF-8 bytes, as the server measures frames. */
function frameBytes(message) {
  return new TextEncoder().encode(JSON.stringify(message)).length;
}

/**
 * The part of `batch` (its request_id, title, mode and jobs) that starts at job `offset`: as many jobs
 * as one frame holds, with `offset`, and `"continues": true` unless it holds the last job. `sizes`:
 * each job's bytes as JSON. Null when job `offset` alone does not fit in a frame.
 */
function batchPart(batch, sizes, offset) {
  const { request_id, title, mode, jobs } = batch;
  let bytes = frameBytes({ type: "batch.submit", request_id, title, mode, jobs: [], offset, continues: true });
  let end = offset;
  while (end < jobs.length) {
    const more = sizes[end] + (end > offset ? 1 : 0); // and the comma before it
    if (bytes + more > MAX_FRAME_BYTES) break;
    bytes += more;
    end += 1;
  }
  if (end === offset) return null;
  const part = { request_id, title, mode, jobs: jobs.slice(offset, end), offset };
  if (end < jobs.length) part.continues = true;
  return part;
}

function sleep(ms) {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

/** A batch of jobs of any kinds, side by side. */
export class BatchBuilder {
  /**
   * @param submitBatch async ({title, mode, jobs, request_id}) → {job} | {error}: sends batch.submit and waits
   *   for its answer; a part (with `offset` and maybe `continues`) → {received} | {job} | {error}, and it is
   *   not sent again after a reconnect
   * @param upload as for KindForm: a file field uploads when its job is added
   */
  constructor(submitBatch, upload) {
    this.submitBatch = submitBatch;
    this.upload = upload;
    this.kinds = [];
    this.entries = []; // {kind, params, copies}
    this.connected = false;
    this.connections = 0; // live connections so far: a batch in parts starts over on a new one
    this.pending = false;
    this.sending = null; // while a batch goes in parts: how far it got, instead of the count of jobs

    this.kindSelect = h("select", { attrs: { id: "batch-kind", name: "kind" }, on: { change: () => this.picker.show() } });
    this.formBox = h("div", { className: "batch-kind-form" });
    this.copies = h("input", { attrs: { id: "batch-copies", name: "copies", type: "number", inputmode: "numeric", min: 1, max: MAX_COPIES, step: 1, value: 1, "aria-describedby": "batch-copies-error" } });
    this.copiesField = h(
      "div",
      { className: "field batch-copies", dataset: { field: "copies" } },
      h("label", { attrs: { for: "batch-copies" }, text: "Copies" }),
      this.copies,
      h("p", { className: "field-error", attrs: { id: "batch-copies-error" } }),
    );
    // The chosen kind's own form, its button adding to the batch.
    this.picker = new KindPicker(this.kindSelect, this.formBox, this.copiesField, (kind) => {
      const form = new KindForm(kind, (name, params) => this._add(name, params), this.upload, {
        idPrefix: `batch-${slug(kind.title || kind.name)}`,
        submitLabel: "Add to batch",
        heading: false,
        check: () => this._checkCopies(),
      });
      form.setConnected(true); // adding sends nothing over the socket (a file is uploaded over HTTP)
      return form;
    });
    this.title = h("input", { attrs: { id: "batch-title", name: "title", type: "text", maxlength: 200, autocomplete: "off", "aria-describedby": "batch-title-hint" } });
    this.count = h("p", { className: "batch-entries-count muted", attrs: { id: "batch-entries-heading", "aria-live": "polite" } });
    this.list = h("ol", { className: "batch-entries", attrs: { "aria-labelledby": "batch-entries-heading" } });
    this.error = h("p", { className: "form-error", attrs: { role: "alert" } });
    this.button = h("button", { className: "primary", attrs: { type: "submit" } });
    this.submitForm = h(
      "form",
      { className: "batch-submit", attrs: { novalidate: true, "aria-label": "Start the batch" } },
      h(
        "div",
        { className: "field" },
        h("label", { attrs: { for: "batch-title" } }, "Batch title", h("span", { className: "visually-hidden", text: " (optional)" })),
        this.title,
        h("p", { className: "hint", attrs: { id: "batch-title-hint" }, text: "Names the batch in the list of jobs." }),
      ),
      this.count,
      this.list,
      this.error,
      this.button,
    );
    this.submitForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.onSubmit();
    });
    this.el = h(
      "section",
      { className: "card batch-builder", attrs: { id: "batch-builder", "aria-labelledby": "batch-builder-heading" } },
      h("h3", { attrs: { id: "batch-builder-heading" }, text: "Batch of jobs" }),
      h("p", { className: "hint", text: "Add jobs of any kind, then start them together: they run side by side as workers are free." }),
      h("div", { className: "field" }, h("label", { attrs: { for: "batch-kind" }, text: "Kind of job" }), this.kindSelect),
      this.formBox,
      this.submitForm,
    );
    this._showEntries();
  }

  /** The kinds the server offers (kind.list): one choice each; a form being filled in stays when its kind did not change. */
  setKinds(kinds) {
    this.kinds = kinds;
    this.picker.setKinds(kinds);
  }

  setConnected(connected) {
    if (connected && !this.connected) this.connections += 1;
    this.connected = connected;
    this._updateButton();
  }

  _checkCopies() {
    const copies = Number(this.copies.value);
    const error = this.copiesField.querySelector(".field-error");
    const fine = Number.isInteger(copies) && copies >= 1 && copies <= MAX_COPIES;
    setText(error, fine ? "" : `Give a whole number from 1 to ${formatNumber(MAX_COPIES)}.`);
    this.copiesField.classList.toggle("invalid", !fine);
    setAttr(this.copies, "aria-invalid", fine ? null : "true");
    if (!fine) this.copies.focus();
    return fine;
  }

  /** The kind form's "submit": the job joins the batch, `copies` times. */
  async _add(kind, params) {
    const copies = Number(this.copies.value);
    this.entries.push({ kind, params, copies });
    this.copies.value = "1"; // copies are asked for each time, never carried over to the next job
    this._showEntries();
    setText(this.error, "");
    announce(`Added ${copies === 1 ? "a" : formatNumber(copies)} ${kindName(kind)} ${copies === 1 ? "job" : "jobs"} to the batch.`);
    return { job: null };
  }

  get size() {
    return this.entries.reduce((sum, entry) => sum + entry.copies, 0);
  }

  _showEntries() {
    const size = this.size;
    this._showCount();
    this.list.replaceChildren(...this.entries.map((entry, index) => this._entry(entry, index)));
    this.list.hidden = !this.entries.length;
    setText(this.button, size ? `Start batch of ${formatNumber(size)} ${size === 1 ? "job" : "jobs"}` : "Start batch");
    this._updateButton();
  }

  /** How many jobs the batch holds; while a batch goes in parts, how far it got. */
  _showCount() {
    const size = this.size;
    setText(this.count, this.sending ?? (size ? `${formatNumber(size)} ${size === 1 ? "job" : "jobs"} in this batch` : "No jobs added yet."));
  }

  _entry(entry, index) {
    const what = `${kindName(entry.kind)}${entry.copies > 1 ? ` × ${formatNumber(entry.copies)}` : ""}`;
    const remove = h("button", {
      className: "link batch-entry-remove",
      text: "Remove",
      attrs: { type: "button", "aria-label": `Remove ${what} (entry ${index + 1})` },
      on: { click: () => this._remove(index) },
    });
    const errorId = `batch-entry-${index}-error`;
    return h(
      "li",
      { className: "batch-entry", dataset: { index }, attrs: { tabindex: -1, "aria-describedby": errorId } },
      h("span", { className: "batch-entry-text" }, h("strong", { text: what }), " ", h("span", { className: "muted", text: paramsSummary(entry.kind, entry.params) })),
      remove,
      h("p", { className: "field-error batch-entry-error", attrs: { id: errorId } }),
    );
  }

  _remove(index) {
    this.entries.splice(index, 1);
    this._showEntries();
    (this.list.querySelector(`[data-index="${Math.min(index, this.entries.length - 1)}"] button`) || this.kindSelect).focus();
  }

  _updateButton() {
    this.button.disabled = this.pending || !this.connected || !this.entries.length;
  }

  async onSubmit() {
    if (this.pending || !this.connected || !this.entries.length) return;
    // The entries sent: jobs may be added or removed while a batch in parts goes.
    const entries = [...this.entries];
    const jobs = entries.flatMap((entry) => Array.from({ length: entry.copies }, () => ({ kind: entry.kind, params: entry.params })));
    const batch = { request_id: requestId(), title: this.title.value.trim(), mode: "parallel", jobs };
    this._clearErrors();
    if (jobs.length > MAX_BATCH) {
      setText(this.error, `A batch holds at most ${formatNumber(MAX_BATCH)} jobs: remove some jobs or copies.`);
      return;
    }
    // One frame when it holds the whole batch; otherwise parts, each job in one of them.
    const whole = frameBytes({ type: "batch.submit", ...batch }) <= MAX_FRAME_BYTES;
    const entrySizes = whole ? [] : entries.map((entry) => frameBytes({ kind: entry.kind, params: entry.params }));
    const room = MAX_FRAME_BYTES - frameBytes({ type: "batch.submit", ...batch, jobs: [], offset: jobs.length, continues: true });
    const tooLarge = entrySizes.findIndex((size) => size > room);
    if (tooLarge >= 0) {
      const kb = formatNumber(Math.ceil(entrySizes[tooLarge] / 1024));
      setText(this.error, `One ${kindName(entries[tooLarge].kind)} job of this batch is too large to send (${kb} KB of at most 64 KB): remove it.`);
      return;
    }
    const sizes = whole ? [] : entries.flatMap((entry, index) => Array(entry.copies).fill(entrySizes[index]));
    this.pending = true;
    this.submitForm.setAttribute("aria-busy", "true");
    this._updateButton();
    try {
      const answer = whole ? await this.submitBatch(batch) : await this._sendInParts(batch, sizes);
      if (answer.error) {
        this._showError(answer.error, entries);
      } else {
        this.entries = this.entries.filter((entry) => !entries.includes(entry));
        this.title.value = "";
        this._showEntries();
      }
    } finally {
      this.pending = false;
      this.sending = null;
      this._showCount();
      this.submitForm.setAttribute("aria-busy", "false");
      this._updateButton();
    }
  }

  /**
   * The batch in parts with its one request_id: each part once the one before it is received (its
   * batch.part answer says from where the next starts). After a reconnect the server has dropped what it
   * received: the batch starts over from its first job (the request_id never makes a second batch). A
   * part refused for the rate goes again after the wait the server asks for. Resolves with the last
   * part's answer ({job} or {error}), or the error of any part.
   */
  async _sendInParts(batch, sizes) {
    const total = batch.jobs.length;
    let connection = this.connections;
    let offset = 0;
    for (;;) {
      if (this.connections !== connection) {
        connection = this.connections;
        offset = 0;
      }
      const part = batchPart(batch, sizes, offset);
      if (!part) return { error: { code: "too_large", message: "A job of this batch is too large to send: remove it." } };
      const upTo = offset + part.jobs.length;
      this._progress(`Sending ${formatNumber(upTo)} of ${formatNumber(total)} jobs…`);
      const answer = await this.submitBatch(part);
      if (this.connections !== connection) continue; // the answer was lost with its connection
      if (answer.error?.code === "rate_limited") {
        const wait = Math.max(Number(answer.error.details?.retry_after) || 1, 0.1);
        this._progress(`Sending ${formatNumber(upTo)} of ${formatNumber(total)} jobs… (waiting ${formatNumber(Math.ceil(wait))} s: too many requests)`);
        await sleep(wait * 1000);
        continue;
      }
      if (answer.received === undefined) return answer;
      if (!Number.isInteger(answer.received) || answer.received <= offset || answer.received >= total) {
        return { error: { code: "internal", message: `The server answered a part of the batch oddly (received ${answer.received} after ${upTo} jobs were sent); try again.` } };
      }
      offset = answer.received;
    }
  }

  _progress(text) {
    this.sending = text;
    this._showCount();
  }

  /** Job `index` of the batch sent (made of `entries`): the entry it is a copy of, if it is still listed. */
  _entryOf(index, entries) {
    let end = 0;
    for (const entry of entries) {
      end += entry.copies;
      if (index < end) return this.entries.indexOf(entry);
    }
    return -1;
  }

  /** jobs.<i>.<field> beside the entry of job i (copies of one entry share their errors); the rest above the button. */
  _showError(error, entries = this.entries) {
    const byEntry = new Map();
    const other = [];
    for (const [path, message] of Object.entries(error.details || {})) {
      const match = JOB_PATH.exec(path);
      const entry = match ? this._entryOf(Number(match[1]), entries) : -1;
      if (entry < 0) {
        other.push(message);
        continue;
      }
      const described = describeField(this.kinds, this.entries[entry].kind, match[2], message);
      const copy = this.entries[entry].copies > 1 ? `Job ${formatNumber(Number(match[1]) + 1)}: ` : "";
      if (!byEntry.has(entry)) byEntry.set(entry, `${copy}${described}`);
    }
    for (const [entry, message] of byEntry) {
      const item = this.list.querySelector(`[data-index="${entry}"]`);
      item.classList.add("invalid");
      setText(item.querySelector(".batch-entry-error"), message);
    }
    let text = [error.message, ...other].filter(Boolean).join(" ");
    if (error.code === "rate_limited" && error.details?.retry_after) text = `${error.message} Try again in ${Math.ceil(error.details.retry_after)} s.`;
    setText(this.error, text);
    this.list.querySelector(".batch-entry.invalid")?.focus();
  }

  _clearErrors() {
    setText(this.error, "");
    for (const item of this.list.querySelectorAll(".batch-entry")) {
      item.classList.remove("invalid");
      setText(item.querySelector(".batch-entry-error"), "");
    }
  }
}

// What the email of the sequence says of each operation's result: real keys of file.process's results
// (tasks/kinds/file_process.py; shared/protocol.md "Job kinds"), filled in by the server when the email
// step starts. Objects and lists come as JSON.
const RESULT_LINES = {
  checksum: [["SHA-256", "sha256"], ["MD5", "md5"], ["Size in bytes", "size"]],
  "csv.summary": [["Rows", "rows"], ["Columns", "columns"]],
  "text.stats": [["Lines", "lines"], ["Words", "words"], ["Characters", "chars"], ["Most frequent words", "top_words"]],
};
const LINE_BREAKS = /[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+/g;

/** The email step's message for `operation` over the file `name`: a line per result key. */
export function resultEmail(operation, name) {
  const lines = (RESULT_LINES[operation] || []).map(([label, key]) => `${label}: {{ steps.0.result.${key} }}`);
  return `${operationName(operation)} of ${name}:\n\n${lines.join("\n")}\n`;
}

/** "Process a file, then email me its result": a sequence of file.process and email.send. */
export class FileThenEmail {
  /** @param submitBatch, upload: as for BatchBuilder */
  constructor(submitBatch, upload) {
    this.submitBatch = submitBatch;
    this.upload = upload;
    this.form = null;
    this.described = "";
    this.connected = false;
    this.email = h("input", {
      attrs: { id: "sequence-email", name: "email", type: "email", autocomplete: "email", required: true, spellcheck: "false", "aria-describedby": "sequence-email-hint sequence-email-error" },
    });
    this.emailField = h(
      "div",
      { className: "field", dataset: { field: "email" } },
      h("label", { attrs: { for: "sequence-email" }, text: "Email the result to" }),
      this.email,
      h("p", { className: "hint", attrs: { id: "sequence-email-hint" } }),
      h("p", { className: "field-error", attrs: { id: "sequence-email-error" } }),
    );
    this.el = h("div", { className: "sequence-box", hidden: true });
  }

  /** Shown when the server offers both kinds; built from file.process's own form. */
  setKinds(kinds) {
    const file = kinds.find((kind) => kind.name === "file.process");
    const offered = Boolean(file) && kinds.some((kind) => kind.name === "email.send");
    this.el.hidden = !offered;
    if (!offered) return;
    const described = JSON.stringify(file);
    if (described === this.described) return;
    this.described = described;
    this.form = new KindForm(file, (kind, params) => this._send(params), this.upload, {
      idPrefix: "sequence",
      submitLabel: "Process, then email me",
      heading: "Process a file, then email me its result",
      description: "Two steps, one after the other: the file is processed, then its result is emailed to you.",
      check: () => this._checkEmail(),
    });
    this.form.form.classList.add("sequence-form");
    this.form.form.insertBefore(this.emailField, this.form.formError);
    this.form.form.addEventListener("change", () => this._showHint());
    this.form.setConnected(this.connected);
    this.el.replaceChildren(this.form.form);
    this._showHint();
  }

  setConnected(connected) {
    this.connected = connected;
    this.form?.setConnected(connected);
  }

  get operation() {
    return this.form?.form.querySelector("select[name=operation]")?.value || "";
  }

  _showHint() {
    const keys = (RESULT_LINES[this.operation] || []).map(([label]) => label);
    setText(this.emailField.querySelector(".hint"), keys.length ? `The email lists: ${keys.join(", ")}.` : "");
  }

  _emailError(message) {
    setText(this.emailField.querySelector(".field-error"), message);
    this.emailField.classList.toggle("invalid", Boolean(message));
    setAttr(this.email, "aria-invalid", message ? "true" : null);
  }

  _checkEmail() {
    this._emailError("");
    if (this.email.value.trim() && this.email.checkValidity()) return true;
    this._emailError(this.email.value.trim() ? "Enter an address like name@example.com." : "Enter the address to send the result to.");
    this.email.focus();
    return false;
  }

  /** The file form's params (its file uploaded): the sequence is file.process, then email.send of its result. */
  async _send(params) {
    const name = (uploadNames.get(params.upload_id) || "your file").replace(LINE_BREAKS, " ");
    const what = `${operationName(params.operation)} of ${name}`;
    const jobs = [
      { kind: "file.process", params },
      { kind: "email.send", params: { to: [this.email.value.trim()], subject: what.slice(0, 200), body: resultEmail(params.operation, name) } },
    ];
    const answer = await this.submitBatch({ title: `${what}, then email`.slice(0, 200), mode: "sequence", jobs });
    if (!answer.error) return answer;
    // The file step's details beside the file form's own fields; the email step's address beside it; the
    // rest (the subject or message made here) above the button.
    const details = {};
    for (const [path, message] of Object.entries(answer.error.details || {})) {
      const match = JOB_PATH.exec(path);
      if (match?.[1] === "0") details[match[2]] = message;
      else if (match?.[1] === "1" && match[2].split(".")[0] === "to") this._emailError(message);
      else details[path] = message;
    }
    return { error: { ...answer.error, details } };
  }
}

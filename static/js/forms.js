// A submit form per job kind, built from the kind's JSON Schema (protocol 1.1 kind.list): one field
// per property, typed by the schema. Each builds its kind's params, shows the server's invalid_params
// details beside the fields they name, and submits through the page's submit function.
//
// Fields by schema: a string with `format: upload-id` is a drop zone that uploads the file first; a
// `oneOf` of consts or an `enum` is a select; a boolean a checkbox; an integer or number a number input
// with its bounds; a date a date input; a string longer than 200 characters (or unbounded) a text area,
// a shorter one a text input; an array of strings a text area of items separated by commas or new
// lines, or checkboxes when its items are an enum; anything else a JSON text area.
import { h, setAttr, setText } from "./dom.js";
import { formatBytes, splitPath, uploadNames } from "./format.js";

const LONG_TEXT = 200;

/** Split "a@x, b@y\nc@z" into items; empty entries are dropped. */
export function splitItems(text) {
  return text.split(/[\n,;]+/).map((part) => part.trim()).filter(Boolean);
}

/** form-countdown for "Countdown": the form's id prefix from the kind's title. */
export function slug(text) {
  return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "kind";
}

/** A property's schema without the `null` of an optional one ({anyOf: [{type: integer}, {type: null}]}). */
function unwrap(schema) {
  const options = schema.anyOf || schema.oneOf;
  if (Array.isArray(options) && !options.every((option) => "const" in option)) {
    const real = options.filter((option) => option.type !== "null");
    if (real.length === 1) return { ...real[0], title: schema.title, description: schema.description, default: schema.default };
  }
  return schema;
}

/** A choice's value as an <option> or checkbox holds it: a string as it is, anything else as JSON. */
function optionValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function choicesOf(schema) {
  let choices = null;
  if (Array.isArray(schema.oneOf) && schema.oneOf.every((option) => "const" in option)) {
    choices = schema.oneOf.map((option) => ({ value: option.const, title: option.title || String(option.const) }));
  } else if (Array.isArray(schema.enum)) {
    choices = schema.enum.map((value) => ({ value, title: String(value) }));
  }
  return choices?.map((choice) => ({ ...choice, option: optionValue(choice.value) })) ?? null;
}

/** The typed value of the choice an <option> or checkbox stands for. */
function chosen(choices, option) {
  return choices.find((choice) => choice.option === option)?.value;
}

function initial(schema) {
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  return schema.default;
}

/** One field of a form: its control(s), its value, and where its errors go. */
class Field {
  constructor(form, name, schema, required) {
    this.form = form;
    this.name = name;
    this.schema = unwrap(schema);
    this.required = required;
    this.id = `${form.slug}-${name.replaceAll("_", "-")}`;
    this.errorId = `${this.id}-error`;
    this.hintId = `${this.id}-hint`;
    this.title = schema.title || name;
  }

  label(extra = {}) {
    return h(
      "label",
      { attrs: { for: this.id }, ...extra },
      this.title,
      this.required ? null : h("span", { className: "visually-hidden", text: " (optional)" }),
    );
  }

  hint() {
    return this.schema.description ? h("p", { className: "hint", attrs: { id: this.hintId }, text: this.schema.description }) : null;
  }

  describedBy() {
    return [this.schema.description ? this.hintId : null, this.errorId].filter(Boolean).join(" ");
  }

  wrap(...children) {
    this.el = h("div", { className: "field", dataset: { field: this.name } }, ...children, h("p", { className: "field-error", attrs: { id: this.errorId } }));
    return this.el;
  }

  /** The value for params; undefined leaves the property out. */
  async value() {
    throw new Error("a field reads its value");
  }

  /** Words for the part of the field a dotted error path points into ("to.2" → the third address). */
  describe(rest) {
    return rest.length ? rest.join(".") : "";
  }

  reset() {}
}

class InputField extends Field {
  render() {
    const type = this.schema.type;
    const attrs = { id: this.id, name: this.name, "aria-describedby": this.describedBy() };
    if (type === "integer" || type === "number") {
      Object.assign(attrs, { type: "number", inputmode: type === "integer" ? "numeric" : "decimal", min: this.schema.minimum, max: this.schema.maximum, step: type === "integer" ? 1 : "any" });
      if (!this.required) attrs.placeholder = "optional";
    } else if (this.schema.format === "date") {
      attrs.type = "date";
    } else {
      Object.assign(attrs, { type: "text", maxlength: this.schema.maxLength, autocomplete: "off" });
    }
    if (this.required && type !== "integer" && type !== "number") attrs.required = true;
    this.input = h("input", { attrs });
    const start = initial(this.schema);
    if (start !== undefined && start !== null) this.input.value = String(start);
    return this.wrap(this.label(), this.input, this.hint());
  }

  async value() {
    const text = this.input.value.trim();
    if (text === "" && !this.required) return undefined;
    const type = this.schema.type;
    if (type === "integer") return /^-?\d+$/.test(text) ? Number(text) : text;
    if (type === "number") return text !== "" && Number.isFinite(Number(text)) ? Number(text) : text;
    return this.input.value;
  }

  reset() {
    const start = initial(this.schema);
    this.input.value = start === undefined || start === null ? "" : String(start);
  }
}

class TextAreaField extends Field {
  render() {
    this.input = h("textarea", { attrs: { id: this.id, name: this.name, rows: 4, "aria-describedby": this.describedBy() } });
    const start = initial(this.schema);
    if (typeof start === "string") this.input.value = start;
    return this.wrap(this.label(), this.input, this.hint());
  }

  async value() {
    if (this.input.value === "" && !this.required) return undefined;
    return this.input.value;
  }

  reset() {
    this.input.value = "";
  }
}

class CheckboxField extends Field {
  render() {
    this.input = h("input", { attrs: { id: this.id, name: this.name, type: "checkbox", "aria-describedby": this.describedBy() } });
    this.input.checked = Boolean(initial(this.schema));
    return this.wrap(h("label", { className: "check", attrs: { for: this.id } }, this.input, " ", this.title), this.hint());
  }

  async value() {
    return this.input.checked;
  }
}

class SelectField extends Field {
  render() {
    this.choices = choicesOf(this.schema);
    this.input = h("select", { attrs: { id: this.id, name: this.name, "aria-describedby": this.describedBy() } });
    if (!this.required) this.input.append(h("option", { attrs: { value: "" }, text: "—" }));
    for (const choice of this.choices) this.input.append(h("option", { attrs: { value: choice.option }, text: choice.title }));
    const start = initial(this.schema);
    if (start !== undefined && start !== null) this.input.value = optionValue(start);
    return this.wrap(this.label(), this.input, this.hint());
  }

  async value() {
    return this.input.value === "" ? undefined : chosen(this.choices, this.input.value);
  }
}

/** An array of strings: one text area, items separated by commas or new lines. */
class ListField extends Field {
  render() {
    this.input = h("textarea", { attrs: { id: this.id, name: this.name, rows: 2, autocomplete: "off", spellcheck: "false", "aria-describedby": this.describedBy() } });
    return this.wrap(this.label(), this.input, this.hint());
  }

  async value() {
    this.items = splitItems(this.input.value);
    if (!this.items.length && !this.required) return undefined;
    return this.items;
  }

  describe(rest) {
    const index = Number(rest[0]);
    if (!rest.length || !Number.isInteger(index)) return super.describe(rest);
    const item = this.items?.[index];
    const noun = this.schema.items?.title || "Item";
    return `${noun} ${index + 1}${item ? ` (${item})` : ""}`;
  }

  reset() {
    this.input.value = "";
  }
}

/** An array whose items are an enum: a checkbox per choice. */
class ChoicesField extends Field {
  render() {
    this.choices = choicesOf(this.schema.items);
    this.boxes = this.choices.map((choice, index) =>
      h("input", { attrs: { type: "checkbox", id: `${this.id}-${index}`, value: choice.option } }),
    );
    const labels = this.boxes.map((box, index) => h("label", { className: "check" }, box, " ", this.choices[index].title));
    const legend = h("legend", {}, this.title);
    return this.wrap(h("fieldset", { className: "choices", attrs: { id: this.id, "aria-describedby": this.describedBy() } }, legend, ...labels), this.hint());
  }

  async value() {
    const picked = this.boxes.filter((box) => box.checked);
    if (!picked.length && !this.required) return undefined;
    return picked.map((box) => chosen(this.choices, box.value));
  }
}

/** Anything the other fields cannot show: JSON typed in. */
class JsonField extends Field {
  render() {
    this.input = h("textarea", { className: "code", attrs: { id: this.id, name: this.name, rows: 3, spellcheck: "false", "aria-describedby": this.describedBy() } });
    const start = initial(this.schema);
    if (start !== undefined) this.input.value = JSON.stringify(start);
    return this.wrap(this.label(), this.input, h("p", { className: "hint", text: "JSON" }), this.hint());
  }

  async value() {
    const text = this.input.value.trim();
    if (text === "" && !this.required) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
}

/** `format: upload-id`: a drop zone; the file is uploaded (with a progress bar) when the form is sent. */
class UploadField extends Field {
  render() {
    this.input = h("input", { className: "file-input", attrs: { id: this.id, name: this.name, type: "file", "aria-describedby": this.errorId } });
    this.fileName = h("span", { className: "dropzone-file", hidden: true });
    this.zone = h(
      "label",
      { className: "dropzone", attrs: { for: this.id } },
      this.input,
      h("span", { className: "dropzone-text" }, "Drop a file here, or ", h("span", { className: "link-like", text: "choose one" })),
      h("span", { className: "visually-hidden", text: ` (${this.title})` }),
      this.fileName,
    );
    this.bar = h("div", { className: "bar", attrs: { role: "progressbar", "aria-label": "Upload progress", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 } }, h("span", { className: "bar-fill" }));
    this.progressText = h("span", { className: "upload-text muted" });
    this.progress = h("div", { className: "upload", hidden: true }, this.bar, this.progressText);
    this.input.addEventListener("change", () => this.showFile());
    for (const type of ["dragenter", "dragover"]) {
      this.zone.addEventListener(type, (event) => {
        event.preventDefault();
        this.zone.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "dragend"]) this.zone.addEventListener(type, () => this.zone.classList.remove("dragging"));
    this.zone.addEventListener("drop", (event) => this.onDrop(event));
    return this.wrap(this.zone, this.progress);
  }

  onDrop(event) {
    event.preventDefault();
    this.zone.classList.remove("dragging");
    const files = event.dataTransfer?.files;
    if (!files || !files.length) return;
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    this.input.files = transfer.files;
    this.form.clearFieldError(this.input);
    this.showFile();
  }

  showFile() {
    const file = this.input.files?.[0];
    this.fileName.hidden = !file;
    setText(this.fileName, file ? `${file.name} · ${formatBytes(file.size)}` : "");
    this.progress.hidden = true;
  }

  async value() {
    const file = this.input.files?.[0];
    if (!file) {
      if (!this.required) return undefined;
      throw new FieldProblem(this.name, "Choose a file to upload.");
    }
    this.progress.hidden = false;
    this.showProgress(0, file.size);
    try {
      const uploaded = await this.form.upload(file, (loaded, total) => this.showProgress(loaded, total));
      setText(this.progressText, `Uploaded ${uploaded.name} (${formatBytes(uploaded.size)})`);
      uploadNames.set(uploaded.id, uploaded.name);
      return uploaded.id;
    } catch (error) {
      this.progress.hidden = true;
      throw new FieldProblem(this.name, error.message);
    }
  }

  showProgress(loaded, total) {
    const percent = total ? Math.floor((loaded / total) * 100) : 0;
    this.bar.querySelector(".bar-fill").style.width = `${percent}%`;
    setAttr(this.bar, "aria-valuenow", percent);
    setAttr(this.bar, "aria-valuetext", `${percent}%, ${formatBytes(loaded)} of ${formatBytes(total)}`);
    setText(this.progressText, `Uploading… ${percent}%`);
  }

  reset() {
    this.input.value = "";
    this.showFile();
  }
}

/** A problem the form finds itself, shown beside its field like the server's. */
class FieldProblem extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function fieldFor(form, name, schema, required) {
  const plain = unwrap(schema);
  const type = plain.type;
  if (type === "string" && plain.format === "upload-id") return new UploadField(form, name, schema, required);
  if (choicesOf(plain)) return new SelectField(form, name, schema, required);
  if (type === "boolean") return new CheckboxField(form, name, schema, required);
  if (type === "integer" || type === "number") return new InputField(form, name, schema, required);
  if (type === "string") {
    const long = plain.format !== "date" && (plain.maxLength === undefined || plain.maxLength > LONG_TEXT);
    return long ? new TextAreaField(form, name, schema, required) : new InputField(form, name, schema, required);
  }
  if (type === "array" && plain.items && choicesOf(plain.items)) return new ChoicesField(form, name, schema, required);
  if (type === "array" && plain.items?.type === "string") return new ListField(form, name, schema, required);
  return new JsonField(form, name, schema, required);
}

/** The priority choice of a job form: normal, high (starts first among waiting jobs) or low. */
function prioritySelect(id) {
  const select = h(
    "select",
    { attrs: { id, name: "priority", "aria-describedby": `${id}-hint` } },
    h("option", { attrs: { value: "normal" }, text: "Normal" }),
    h("option", { attrs: { value: "high" }, text: "High" }),
    h("option", { attrs: { value: "low" }, text: "Low" }),
  );
  const field = h(
    "div",
    { className: "field field-priority", dataset: { field: "priority" } },
    h("label", { attrs: { for: id }, text: "Priority" }),
    select,
    h("p", { className: "hint", attrs: { id: `${id}-hint` }, text: "A high job starts before waiting normal and low ones." }),
    h("p", { className: "field-error", attrs: { id: `${id}-error` } }), // as every field has (the form clears it on input)
  );
  return { select, field };
}

export class KindForm {
  /**
   * @param kind a Kind object of kind.list: {name, title, description, params_schema, submit_label}
   * @param submit async (kind, params) → {job} | {error}: sends job.submit and waits for its answer
   * @param upload (file, onProgress) → Promise<{id, name, size}>: POST /api/uploads/
   * @param options {idPrefix (the form's ids; default: from the kind's title), submitLabel, heading (text, or
   *   false for none), description, check() (false stops the submit before any upload)}: for forms that reuse a
   *   kind's fields for something else than job.submit (static/js/batchforms.js); priority: true adds the
   *   priority choice, passed to `submit` as its third argument
   */
  constructor(kind, submit, upload, options = {}) {
    this.kind = kind.name;
    this.submit = submit;
    this.upload = upload;
    this.check = options.check || (() => true);
    this.slug = options.idPrefix || slug(kind.title || kind.name);
    this.connected = false;
    this.pending = false;
    const schema = kind.params_schema || {};
    const required = new Set(schema.required || []);
    this.fields = Object.entries(schema.properties || {}).map(([name, property]) => fieldFor(this, name, property, required.has(name)));
    const label = options.submitLabel || kind.submit_label || `Start ${kind.title || kind.name}`;
    this.button = h("button", { className: "primary", attrs: { type: "submit" }, text: label });
    this.formError = h("p", { className: "form-error", attrs: { role: "alert" } });
    const heading = options.heading === undefined ? [kind.title || kind.name, " ", h("code", { text: kind.name })] : options.heading;
    const description = options.description === undefined ? kind.description : options.description;
    // Protocol 1.1 priority, for forms that submit a job of their own (options.priority).
    this.priority = options.priority ? prioritySelect(`${this.slug}-priority`) : null;
    this.form = h(
      "form",
      { className: "card job-form", attrs: { id: `form-${this.slug}`, novalidate: true }, dataset: { kind: kind.name } },
      heading ? h("h3", {}, heading) : null,
      description ? h("p", { className: "hint", text: description }) : null,
      this.layout(),
      this.priority ? this.priority.field : null,
      this.formError,
      this.button,
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.onSubmit();
    });
    this.form.addEventListener("input", (event) => this.clearFieldError(event.target));
  }

  /** Short fields (numbers, selects, checkboxes, dates) next to each other share rows of up to three;
   * a short field alone, and every other field, takes a line of its own. */
  layout() {
    const parts = [];
    let row = null;
    for (const field of this.fields) {
      const el = field.render();
      const short = field instanceof InputField && field.input.type !== "text";
      if (short || field instanceof SelectField || field instanceof CheckboxField) {
        if (!row || row.length === 3) parts.push((row = []));
        row.push(el);
      } else {
        row = null;
        parts.push([el]);
      }
    }
    return parts.map((group) => (group.length > 1 ? h("div", { className: "row" }, group) : group[0]));
  }

  setConnected(connected) {
    this.connected = connected;
    this._updateButton();
  }

  async onSubmit() {
    if (this.pending || !this.connected) return;
    this.clearErrors();
    if (!this.check()) return;
    this.setPending(true);
    try {
      const params = await this.params();
      if (params === null) return;
      const answer = await this.submit(this.kind, params, this.priority ? this.priority.select.value : "normal");
      if (answer.error) this.showError(answer.error);
      else this.accepted();
    } finally {
      this.setPending(false);
    }
  }

  /** The params from the fields, or null when the form itself found a problem (shown beside its field). */
  async params() {
    const params = {};
    for (const field of this.fields) {
      try {
        const value = await field.value();
        if (value !== undefined) params[field.name] = value;
      } catch (error) {
        if (!(error instanceof FieldProblem)) throw error;
        this.fieldError(error.field, error.message);
        field.input?.focus();
        return null;
      }
    }
    return params;
  }

  /** The job was accepted: text fields start afresh; numbers, choices and switches stay as they were. */
  accepted() {
    for (const field of this.fields) if (field instanceof ListField || field instanceof TextAreaField || field instanceof UploadField) field.reset();
    for (const field of this.fields) if (field instanceof InputField && field.input.type === "text") field.reset();
  }

  setPending(pending) {
    this.pending = pending;
    this.form.setAttribute("aria-busy", String(pending));
    this._updateButton();
  }

  _updateButton() {
    this.button.disabled = this.pending || !this.connected;
  }

  /** An `error` reply: field details beside their fields, anything else above the button. */
  showError(error) {
    const unplaced = [];
    if (error.code === "invalid_params" || error.code === "bad_message") {
      for (const [path, message] of Object.entries(error.details || {})) {
        if (!this.fieldError(path, message)) unplaced.push(message);
      }
    }
    let text = unplaced.join(" ");
    if (!text) text = error.code === "invalid_params" ? "" : error.message;
    if (error.code === "rate_limited" && error.details?.retry_after) {
      text = `${error.message} Try again in ${Math.ceil(error.details.retry_after)} s.`;
    }
    setText(this.formError, text);
    this.form.querySelector('[aria-invalid="true"]')?.focus();
  }

  /** Show `message` beside the field `path` names; false when the form has no such field. */
  fieldError(path, message) {
    const { field: name, rest } = splitPath(path);
    const field = this.fields.find((candidate) => candidate.name === name);
    if (!field) return false;
    const prefix = field.describe(rest);
    setText(field.el.querySelector(".field-error"), prefix ? `${prefix}: ${message}` : message);
    field.el.classList.add("invalid");
    field.el.querySelector("input, textarea, select")?.setAttribute("aria-invalid", "true");
    return true;
  }

  clearFieldError(control) {
    const wrapper = control?.closest?.(".field");
    if (!wrapper) return;
    wrapper.classList.remove("invalid");
    setText(wrapper.querySelector(".field-error"), "");
    wrapper.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
  }

  clearErrors() {
    for (const field of this.fields) this.clearFieldError(field.el.firstElementChild);
    setText(this.formError, "");
  }
}

/** The value of a cookie (the CSRF token), or "". */
function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return "";
}

/**
 * POST a file to /api/uploads/ (multipart field `file`) with progress.
 * Resolves with {id, name, size}; rejects with an Error whose message a user can act on.
 */
export function uploadFile(file, onProgress, url = "/api/uploads/") {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", cookie("csrftoken"));
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size));
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300 && body && body.id) {
        resolve(body);
      } else if (body && body.error && body.error.message) {
        reject(new Error(body.error.message));
      } else if (xhr.status === 413) {
        reject(new Error("The file is too large."));
      } else {
        reject(new Error(`The upload failed (HTTP ${xhr.status}).`));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("The upload failed: the server could not be reached.")));
    xhr.addEventListener("abort", () => reject(new Error("The upload was cancelled.")));
    const data = new FormData();
    data.append("file", file);
    xhr.send(data);
  });
}

/**
 * A kind chosen from a select, and that kind's form reused inside another form (the batch builder, the
 * schedule form): each kind's KindForm is made once, by `make(kind)`, and kept while its description
 * (kind.list) does not change, so what is being filled in survives a reconnect. `extra` (the other
 * form's own fields) goes inside the shown form, before its error line.
 */
export class KindPicker {
  constructor(kindSelect, formBox, extra, make) {
    this.kindSelect = kindSelect;
    this.formBox = formBox;
    this.extra = extra;
    this.make = make;
    this.kinds = [];
    this.forms = new Map(); // kind name → [its Kind object as JSON, its KindForm]
  }

  /** Offer these kinds; a form whose kind changed is made again when shown. */
  setKinds(kinds) {
    this.kinds = kinds;
    const current = this.kindSelect.value;
    this.kindSelect.replaceChildren(...kinds.map((kind) => h("option", { attrs: { value: kind.name }, text: kind.title || kind.name })));
    if (kinds.some((kind) => kind.name === current)) this.kindSelect.value = current;
    for (const name of [...this.forms.keys()]) {
      const kind = kinds.find((candidate) => candidate.name === name);
      if (!kind || JSON.stringify(kind) !== this.forms.get(name)[0]) this.forms.delete(name);
    }
    this.show();
  }

  /** Every form made so far. */
  all() {
    return [...this.forms.values()].map(([, form]) => form);
  }

  /** Show the chosen kind's form, made now if need be. */
  show() {
    const kind = this.kinds.find((candidate) => candidate.name === this.kindSelect.value);
    if (!kind) {
      this.formBox.replaceChildren();
      return;
    }
    if (!this.forms.has(kind.name)) {
      const made = this.make(kind);
      made.form.classList.remove("card");
      this.forms.set(kind.name, [JSON.stringify(kind), made]);
    }
    const form = this.forms.get(kind.name)[1];
    form.form.insertBefore(this.extra, form.formError);
    this.formBox.replaceChildren(form.form);
  }
}

// The submit forms, one per job kind. Each builds its kind's params, shows the
// server's invalid_params details beside the fields they name, and submits
// through the page's submit function with a fresh request_id.
import { setAttr, setText } from "./dom.js";
import { formatBytes, splitPath, uploadNames } from "./format.js";

/** Split "a@x, b@y\nc@z" into addresses; empty entries are dropped. */
export function splitAddresses(text) {
  return text.split(/[\s,;]+/).map((part) => part.trim()).filter(Boolean);
}

/** An integer field: a whole number, or the text as typed so the server names what is wrong. */
function integer(input, { optional = false } = {}) {
  const text = input.value.trim();
  if (text === "" && optional) return undefined;
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

export class JobForm {
  /**
   * @param form the <form data-kind=…>
   * @param submit async (kind, params) → {ok} | {error}: sends job.submit and waits for its answer
   */
  constructor(form, submit) {
    this.form = form;
    this.kind = form.dataset.kind;
    this.submit = submit;
    this.button = form.querySelector('button[type="submit"]');
    this.formError = form.querySelector(".form-error");
    this.connected = false;
    this.pending = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.onSubmit();
    });
    form.addEventListener("input", (event) => this.clearFieldError(event.target));
  }

  setAvailable(available) {
    this.form.hidden = !available;
  }

  setConnected(connected) {
    this.connected = connected;
    this._updateButton();
  }

  async onSubmit() {
    if (this.pending || !this.connected) return;
    this.clearErrors();
    const params = await this.params();
    if (params === null) return;
    await this.send(params);
  }

  /** The kind's params from the form, or null when the form itself found a problem. */
  async params() {
    throw new Error("a form of a kind builds its params");
  }

  async send(params) {
    this.setPending(true);
    try {
      const answer = await this.submit(this.kind, params);
      if (answer.error) this.showError(answer.error);
      else this.accepted(answer.job);
    } finally {
      this.setPending(false);
    }
  }

  /** The job was accepted: forms that should start afresh reset here. */
  accepted() {}

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
    let text = unplaced.length ? unplaced.join(" ") : "";
    if (!text) text = error.code === "invalid_params" ? "" : error.message;
    if (error.code === "rate_limited" && error.details?.retry_after) {
      text = `${error.message} Try again in ${Math.ceil(error.details.retry_after)} s.`;
    }
    this.setFormError(text);
    this.form.querySelector('[aria-invalid="true"]')?.focus();
  }

  /** Show `message` beside the field `path` names; false when the form has no such field. */
  fieldError(path, message) {
    const { field, rest } = splitPath(path);
    const wrapper = this.form.querySelector(`[data-field~="${CSS.escape(field)}"]`);
    if (!wrapper) return false;
    const slot = wrapper.querySelector(".field-error");
    const control = wrapper.querySelector("input, textarea, select");
    const prefix = this.describe(field, rest);
    setText(slot, prefix ? `${prefix}: ${message}` : message);
    wrapper.classList.add("invalid");
    if (control) control.setAttribute("aria-invalid", "true");
    return true;
  }

  /** Words for the part of a field a dotted path points into, e.g. "to.2" → the third address. */
  describe(field, rest) {
    return rest.length ? rest.join(".") : "";
  }

  setFormError(text) {
    setText(this.formError, text);
  }

  clearFieldError(control) {
    const wrapper = control?.closest?.(".field");
    if (!wrapper) return;
    wrapper.classList.remove("invalid");
    setText(wrapper.querySelector(".field-error"), "");
    wrapper.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
  }

  clearErrors() {
    for (const wrapper of this.form.querySelectorAll(".field")) {
      wrapper.classList.remove("invalid");
      setText(wrapper.querySelector(".field-error"), "");
      wrapper.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
    }
    this.setFormError("");
  }
}

export class CountdownForm extends JobForm {
  async params() {
    const field = (name) => this.form.elements.namedItem(name);
    const params = {
      steps: integer(field("steps")),
      interval_ms: integer(field("interval_ms"), { optional: true }),
      fail_at: integer(field("fail_at"), { optional: true }),
    };
    for (const key of Object.keys(params)) if (params[key] === undefined) delete params[key];
    return params;
  }
}

export class EmailForm extends JobForm {
  async params() {
    const field = (name) => this.form.elements.namedItem(name);
    this.addresses = splitAddresses(field("to").value);
    return { to: this.addresses, subject: field("subject").value, body: field("body").value };
  }

  describe(field, rest) {
    if (field === "to" && rest.length) {
      const index = Number(rest[0]);
      const address = this.addresses?.[index];
      return Number.isInteger(index) ? `Address ${index + 1}${address ? ` (${address})` : ""}` : rest.join(".");
    }
    return super.describe(field, rest);
  }

  accepted() {
    this.form.reset();
  }
}

export class FileForm extends JobForm {
  constructor(form, submit, upload) {
    super(form, submit);
    this.upload = upload;
    this.input = form.querySelector('input[type="file"]');
    this.zone = form.querySelector(".dropzone");
    this.fileName = form.querySelector(".dropzone-file");
    this.progress = form.querySelector(".upload");
    this.bar = this.progress.querySelector('[role="progressbar"]');
    this.progressText = this.progress.querySelector(".upload-text");
    this.input.addEventListener("change", () => this.showFile());
    for (const type of ["dragenter", "dragover"]) {
      this.zone.addEventListener(type, (event) => {
        event.preventDefault();
        this.zone.classList.add("dragging");
      });
    }
    for (const type of ["dragleave", "dragend"]) this.zone.addEventListener(type, () => this.zone.classList.remove("dragging"));
    this.zone.addEventListener("drop", (event) => this.onDrop(event));
  }

  onDrop(event) {
    event.preventDefault();
    this.zone.classList.remove("dragging");
    const files = event.dataTransfer?.files;
    if (!files || !files.length) return;
    const transfer = new DataTransfer();
    transfer.items.add(files[0]);
    this.input.files = transfer.files;
    this.clearFieldError(this.input);
    this.showFile();
  }

  showFile() {
    const file = this.input.files?.[0];
    this.fileName.hidden = !file;
    setText(this.fileName, file ? `${file.name} · ${formatBytes(file.size)}` : "");
    this.progress.hidden = true;
  }

  async params() {
    const file = this.input.files?.[0];
    if (!file) {
      this.fieldError("file", "Choose a file to upload.");
      this.input.focus();
      return null;
    }
    this.setPending(true);
    this.progress.hidden = false;
    this.showUploadProgress(0, file.size);
    try {
      const uploaded = await this.upload(file, (loaded, total) => this.showUploadProgress(loaded, total));
      setText(this.progressText, `Uploaded ${uploaded.name} (${formatBytes(uploaded.size)})`);
      uploadNames.set(uploaded.id, uploaded.name);
      return { upload_id: uploaded.id, operation: this.form.elements.namedItem("operation").value };
    } catch (error) {
      this.progress.hidden = true;
      this.fieldError("file", error.message);
      return null;
    } finally {
      this.setPending(false);
    }
  }

  showUploadProgress(loaded, total) {
    const percent = total ? Math.floor((loaded / total) * 100) : 0;
    this.bar.querySelector(".bar-fill").style.width = `${percent}%`;
    setAttr(this.bar, "aria-valuenow", percent);
    setAttr(this.bar, "aria-valuetext", `${percent}%, ${formatBytes(loaded)} of ${formatBytes(total)}`);
    setText(this.progressText, `Uploading… ${percent}%`);
  }

  accepted() {
    this.input.value = "";
    this.showFile();
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

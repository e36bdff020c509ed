// Schedules (protocol 1.1 "Schedules"; docs/protocol.md "### Schedules") on the dashboard:
//   - a form that makes one: a kind's own form (forms.js, as the batch builder reuses it) submitting
//     schedule.create instead of job.submit, with the schedule's name, when it runs (a cron expression, or
//     once at a time) and the timezone both are read in;
//   - the user's schedules, listed after every hello (a reconnect may have missed changes) and kept live
//     from schedule.created / schedule.changed. Those reach every tab of the user, but the tab that asked
//     gets only its answer: so every frame is applied here, answers included.
// The server's invalid_params details name `cron`, `run_at`, `timezone` (shown beside this form's own
// fields) or `params.<field>` (shown by the kind's form beside that field).
import { announce, h, setAttr, setText } from "./dom.js";
import { KindForm, KindPicker, slug } from "./forms.js";
import { BATCH, kindName, STATUS_NAMES } from "./format.js";

// The fields of schedule.create this module shows itself; every other detail belongs to the kind's form.
const OWN_FIELDS = ["name", "cron", "run_at", "timezone"];
const PARAMS = "params.";
const STATE_NAMES = { active: "Active", paused: "Paused", done: "Done" };
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** The browser's own IANA timezone, the form's default ("UTC" when the browser cannot say). */
export function browserTimezone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** "active", "paused", or "done": a one-off that already ran is neither paused nor due again. */
export function scheduleState(schedule) {
  if (schedule.paused) return "paused";
  return schedule.next_run_at ? "active" : "done";
}

/** What a schedule is called: its name, or its kind's title. */
export function scheduleTitle(schedule) {
  return schedule.name || kindName(schedule.kind);
}

/** "0 8 * * 1 (Europe/Paris)", or "Once at 15 Jan 2027, 02:00" in the browser's time. */
export function scheduleWhen(schedule) {
  return schedule.cron ? `${schedule.cron} (${schedule.timezone})` : `Once at ${localTime(schedule.run_at)}`;
}

function localTime(iso) {
  const date = new Date(iso);
  return iso && !Number.isNaN(date.getTime()) ? dateTime.format(date) : "";
}

/** A <time> for an ISO-8601 moment, in the browser's time; "—" for none. */
function timeOrDash(iso) {
  const text = localTime(iso);
  return text ? h("time", { attrs: { datetime: iso }, text }) : "—";
}

/** A labelled field with its hint and error lines, the control described by both (as forms.js builds them).
 * `label`: its text, or its text and nodes. */
function field(name, label, control, hint) {
  const hintId = `${control.id}-hint`;
  const errorId = `${control.id}-error`;
  control.setAttribute("aria-describedby", hint ? `${hintId} ${errorId}` : errorId);
  return h(
    "div",
    { className: "field", dataset: { field: name } },
    h("label", { attrs: { for: control.id } }, label),
    control,
    hint ? h("p", { className: "hint", attrs: { id: hintId }, text: hint }) : null,
    h("p", { className: "field-error", attrs: { id: errorId } }),
  );
}

function radio(id, value, label, checked) {
  const input = h("input", { attrs: { type: "radio", id, name: "schedule-repeat", value } });
  input.checked = checked;
  return [input, h("label", { className: "check", attrs: { for: id } }, input, " ", label)];
}

/** "New schedule": a kind, its form, and when it runs. */
class ScheduleForm {
  /**
   * @param create async (schedule.create without its type) → the reply: schedule.created or an `error`
   * @param upload as for KindForm: a file field uploads when the schedule is created
   */
  constructor(create, upload) {
    this.create = create;
    this.upload = upload;
    this.kinds = [];
    this.connected = false;
    this.kindSelect = h("select", { attrs: { id: "schedule-kind", name: "kind" }, on: { change: () => this.picker.show() } });
    this.formBox = h("div", { className: "schedule-kind-form" });
    this.el = h(
      "section",
      { className: "card schedule-builder", attrs: { id: "schedule-builder", "aria-labelledby": "schedule-builder-heading" } },
      h("h3", { attrs: { id: "schedule-builder-heading" }, text: "New schedule" }),
      h("p", { className: "hint", text: "A job that starts by itself: on a calendar, or once at a time." }),
      h("div", { className: "field" }, h("label", { attrs: { for: "schedule-kind" }, text: "Kind of job" }), this.kindSelect),
      this.formBox,
    );
    this.fields = this._whenFields();
    // The chosen kind's own form, its button creating the schedule.
    this.picker = new KindPicker(this.kindSelect, this.formBox, this.fields, (kind) => {
      const form = new KindForm(kind, (name, params) => this._send(name, params), this.upload, {
        idPrefix: `schedule-${slug(kind.title || kind.name)}`,
        submitLabel: "Create schedule",
        heading: false,
        check: () => this._check(),
      });
      form.setConnected(this.connected);
      return form;
    });
  }

  /** The schedule's own fields, moved into whichever kind's form is shown (so Enter in them submits it). */
  _whenFields() {
    this.name = h("input", { attrs: { id: "schedule-name", name: "name", type: "text", maxlength: 200, autocomplete: "off" } });
    this.cron = h("input", {
      className: "schedule-cron-input",
      attrs: { id: "schedule-cron", name: "cron", type: "text", maxlength: 120, autocomplete: "off", spellcheck: "false", placeholder: "0 8 * * 1" },
    });
    this.runAt = h("input", { attrs: { id: "schedule-run-at", name: "run_at", type: "datetime-local" } });
    this.timezone = h("input", { attrs: { id: "schedule-timezone", name: "timezone", type: "text", maxlength: 64, autocomplete: "off", spellcheck: "false", list: "schedule-timezones" } });
    this.timezone.value = browserTimezone();
    const [repeat, repeatLabel] = radio("schedule-repeat-cron", "cron", "Repeat (cron)", true);
    const [once, onceLabel] = radio("schedule-repeat-once", "once", "Once at", false);
    this.repeat = repeat;
    this.cronField = field("cron", "Cron expression", this.cron, "minute hour day month weekday");
    this.onceField = field("run_at", "Date and time", this.runAt, "Read in the timezone below; a time already past runs at once.");
    this.onceField.hidden = true;
    for (const input of [repeat, once]) input.addEventListener("change", () => this._showWhen());
    // Every IANA name the browser knows, offered as the timezone is typed (any name may still be typed).
    const zones = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
    return h(
      "div",
      { className: "schedule-fields" },
      field("name", ["Schedule name", h("span", { className: "visually-hidden", text: " (optional)" })], this.name),
      h("fieldset", { className: "schedule-repeat" }, h("legend", { text: "When it runs" }), repeatLabel, onceLabel),
      this.cronField,
      this.onceField,
      field("timezone", "Timezone", this.timezone, "An IANA name, like Europe/Paris or UTC."),
      h("datalist", { attrs: { id: "schedule-timezones" } }, zones.map((zone) => h("option", { attrs: { value: zone } }))),
    );
  }

  /** The kinds the server offers, but batches (a schedule submits one job): one choice each. */
  setKinds(kinds) {
    this.kinds = kinds.filter((kind) => kind.name !== BATCH);
    this.el.hidden = this.kinds.length === 0;
    this.picker.setKinds(this.kinds);
  }

  setConnected(connected) {
    this.connected = connected;
    for (const form of this.picker.all()) form.setConnected(connected);
  }

  _showWhen() {
    const repeats = this.repeat.checked;
    this.cronField.hidden = !repeats;
    this.onceField.hidden = repeats;
    this._fieldError(repeats ? "run_at" : "cron", "");
  }

  _control(name) {
    return { name: this.name, cron: this.cron, run_at: this.runAt, timezone: this.timezone }[name];
  }

  /** Show `message` beside this form's field `name` ("" clears it). */
  _fieldError(name, message) {
    const control = this._control(name);
    const wrapper = control.closest(".field");
    setText(wrapper.querySelector(".field-error"), message);
    wrapper.classList.toggle("invalid", Boolean(message));
    setAttr(control, "aria-invalid", message ? "true" : null);
  }

  /** What the browser can tell before sending: the fields the chosen way of running needs are filled in. */
  _check() {
    for (const name of OWN_FIELDS) this._fieldError(name, "");
    const repeats = this.repeat.checked;
    if (repeats && !this.cron.value.trim()) this._fieldError("cron", "Enter a cron expression, like 0 8 * * 1 (08:00 every Monday).");
    if (!repeats && !this.runAt.value) this._fieldError("run_at", "Choose the date and time to run it.");
    if (!this.timezone.value.trim()) this._fieldError("timezone", "Enter a timezone, like Europe/Paris or UTC.");
    const invalid = this.fields.querySelector('[aria-invalid="true"]');
    invalid?.focus();
    return !invalid;
  }

  /** The kind form's "submit": schedule.create with its params. */
  async _send(kind, params) {
    const message = { name: this.name.value.trim(), kind, params, timezone: this.timezone.value.trim() };
    if (this.repeat.checked) message.cron = this.cron.value.trim();
    else message.run_at = this.runAt.value; // a wall-clock time, which the server reads in the timezone
    const reply = await this.create(message);
    if (reply.type === "error") return { error: this._placeErrors(reply) };
    this.name.value = "";
    this.cron.value = "";
    this.runAt.value = "";
    announce("Schedule created.");
    return { job: null };
  }

  /** Details of this form's own fields beside them; `params.<field>` left to the kind's form, as `<field>`. */
  _placeErrors(error) {
    const details = {};
    for (const [path, message] of Object.entries(error.details || {})) {
      if (OWN_FIELDS.includes(path)) this._fieldError(path, message);
      else details[path.startsWith(PARAMS) ? path.slice(PARAMS.length) : path] = message;
    }
    return { ...error, details };
  }
}

/** One schedule's row: made once and updated in place, so focus stays on its buttons. */
class ScheduleRow {
  constructor(actions) {
    this.actions = actions;
    this.schedule = null;
    this.busy = false;
    this.connected = false;
    this.title = h("strong", { className: "schedule-name" });
    this.state = h("span", { className: "badge schedule-state" });
    this.kind = h("dd", { className: "schedule-kind" });
    this.when = h("dd", { className: "schedule-when" });
    this.next = h("dd", { className: "schedule-next" });
    this.last = h("dd", { className: "schedule-last" });
    this.error = h("p", { className: "form-error schedule-error", attrs: { role: "alert" } });
    this.toggle = h("button", { className: "secondary schedule-toggle", attrs: { type: "button" }, on: { click: () => this._act("toggle") } });
    this.remove = h("button", { className: "secondary schedule-delete", attrs: { type: "button" }, text: "Delete", on: { click: () => this._act("remove") } });
    const fact = (term, value) => [h("dt", { text: term }), value];
    this.el = h(
      "li",
      { className: "schedule" },
      h("div", { className: "schedule-head" }, this.title, this.state),
      h("dl", { className: "kv schedule-facts" }, fact("Kind", this.kind), fact("When", this.when), fact("Next run", this.next), fact("Last job", this.last)),
      this.error,
      h("div", { className: "schedule-actions" }, this.toggle, this.remove),
    );
  }

  /** @param lastStatus the status of its last job as this page knows it (its job events are newer than the schedule's) */
  update(schedule, lastStatus) {
    this.schedule = schedule;
    const state = scheduleState(schedule);
    const title = scheduleTitle(schedule);
    this.el.dataset.scheduleId = schedule.id;
    this.el.dataset.state = state;
    setText(this.title, title);
    setText(this.state, STATE_NAMES[state]);
    this.state.className = `badge schedule-state badge-${state}`;
    setText(this.kind, kindName(schedule.kind));
    this.when.replaceChildren(...(schedule.cron ? [h("code", { text: schedule.cron }), ` (${schedule.timezone})`] : [scheduleWhen(schedule)]));
    this.next.replaceChildren(timeOrDash(schedule.next_run_at));
    this.last.replaceChildren(...this._lastJob(schedule, lastStatus));
    // A one-off that ran has nothing left to pause or resume.
    this.toggle.hidden = state === "done";
    setText(this.toggle, schedule.paused ? "Resume" : "Pause");
    setAttr(this.toggle, "aria-label", `${schedule.paused ? "Resume" : "Pause"} schedule ${title}`);
    setAttr(this.remove, "aria-label", `Delete schedule ${title}`);
    this._updateButtons();
  }

  /** Why its last due time made no job; or that job, linked, with its status; or "—". */
  _lastJob(schedule, status) {
    if (schedule.last_error) return [h("span", { className: "error schedule-last-error", text: `No job was made: ${schedule.last_error}` })];
    if (!schedule.last_job_id) return ["—"];
    const link = h("a", { className: "schedule-last-job", attrs: { href: `/jobs/${schedule.last_job_id}/` }, text: `Job ${schedule.last_job_id.slice(0, 8)}` });
    if (!status) return [link];
    return [link, " ", h("span", { className: `badge badge-${status}`, dataset: { status }, text: STATUS_NAMES[status] || status })];
  }

  _act(action) {
    if (!this.busy) this.actions[action](this.schedule);
  }

  setConnected(connected) {
    this.connected = connected;
    this._updateButtons();
  }

  setBusy(busy) {
    this.busy = busy;
    this._updateButtons();
  }

  showError(text) {
    setText(this.error, text);
  }

  /** Disabled while disconnected; while a change is on its way, only marked so (a disabled button would drop the focus). */
  _updateButtons() {
    for (const button of [this.toggle, this.remove]) {
      button.disabled = !this.connected;
      setAttr(button, "aria-disabled", this.busy ? "true" : null);
    }
  }
}

/** The "Schedules" part of the dashboard: the form and the list. */
export class Schedules {
  /**
   * @param root the section to fill
   * @param options {request(message, {resend}) → Promise of the reply (requests.js), upload (as for KindForm),
   *   jobStatus(id) → the status of a job as this page knows it, or undefined}
   */
  constructor(root, { request, upload, jobStatus }) {
    this.request = request;
    this.jobStatus = jobStatus;
    this.rows = new Map(); // schedule id → ScheduleRow, in the list's order (oldest first)
    this.listed = false;
    this.connected = false;
    this.form = new ScheduleForm((message) => this.request({ type: "schedule.create", ...message }), upload);
    this.empty = h("p", { className: "muted schedule-empty", text: "Loading your schedules…" });
    this.list = h("ul", { className: "schedule-list", attrs: { id: "schedule-list", "aria-labelledby": "schedule-list-heading" }, hidden: true });
    this.heading = h("h3", { attrs: { id: "schedule-list-heading", tabindex: -1 }, text: "Your schedules" });
    root.append(this.form.el, h("section", { className: "card schedule-box", attrs: { "aria-labelledby": "schedule-list-heading" } }, this.heading, this.empty, this.list));
  }

  setKinds(kinds) {
    this.form.setKinds(kinds);
    for (const row of this.rows.values()) this._render(row, row.schedule); // kind titles may have changed
  }

  setConnected(connected) {
    this.connected = connected;
    this.form.setConnected(connected);
    for (const row of this.rows.values()) row.setConnected(connected);
  }

  /** After every hello: the whole list again, since changes made while away were never sent to this page. */
  reload() {
    // Not sent again after a reconnect: that connection's hello asks anew.
    this.request({ type: "schedule.list" }, { resend: false });
  }

  /** A schedule frame, whoever asked for it (the answers to this tab's own requests included). */
  handle(message) {
    if (message.type === "schedule.list") this._showAll(message.schedules || []);
    else if (message.deleted) this._remove(message.schedule.id);
    else this._put(message.schedule);
  }

  /** Jobs of the page's store changed: a row whose last job is one of them shows its new status. */
  jobsChanged(ids) {
    for (const id of ids) {
      for (const row of this.rows.values()) if (row.schedule.last_job_id === id) this._render(row, row.schedule);
    }
  }

  _showAll(schedules) {
    this.listed = true;
    const ids = new Set(schedules.map((schedule) => schedule.id));
    for (const id of [...this.rows.keys()]) if (!ids.has(id)) this._remove(id);
    for (const schedule of schedules) this._put(schedule);
    this._showEmpty();
  }

  _put(schedule) {
    let row = this.rows.get(schedule.id);
    if (!row) {
      row = new ScheduleRow({ toggle: (shown) => this._toggle(shown), remove: (shown) => this._delete(shown) });
      row.setConnected(this.connected);
      this.rows.set(schedule.id, row);
      this._insert(row, schedule);
    }
    this._render(row, schedule);
    this._showEmpty();
  }

  /** In the order the server lists them: oldest first. */
  _insert(row, schedule) {
    const later = [...this.rows.values()].find((other) => other !== row && other.schedule && listedAfter(other.schedule, schedule));
    this.list.insertBefore(row.el, later ? later.el : null);
  }

  _render(row, schedule) {
    const status = schedule.last_job_id ? this.jobStatus(schedule.last_job_id) ?? schedule.last_job_status : null;
    row.update(schedule, status);
  }

  _remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    // The focus was on its button (or will be lost with it): the next row's, or the list's heading.
    const hadFocus = row.el.contains(document.activeElement);
    const next = row.el.nextElementSibling || row.el.previousElementSibling;
    row.el.remove();
    this.rows.delete(id);
    this._showEmpty();
    if (hadFocus) (next?.querySelector("button:not([hidden])") || this.heading).focus();
  }

  _showEmpty() {
    this.list.hidden = this.rows.size === 0;
    this.empty.hidden = this.rows.size > 0;
    setText(this.empty, this.listed ? "No schedules yet." : "Loading your schedules…");
  }

  _toggle(schedule) {
    const resume = schedule.paused;
    return this._change(schedule, resume ? "schedule.resume" : "schedule.pause", resume ? "resumed" : "paused", true);
  }

  _delete(schedule) {
    if (!window.confirm(`Delete the schedule ${scheduleTitle(schedule)}? The jobs it made stay.`)) return undefined;
    // Not sent again after a reconnect: a delete that went through would then be refused as not found.
    return this._change(schedule, "schedule.delete", "deleted", false);
  }

  /** Pause, resume or delete; the answer (schedule.changed) has moved the row by the time it resolves. */
  async _change(schedule, type, done, resend) {
    const title = scheduleTitle(schedule);
    this.rows.get(schedule.id)?.showError("");
    this.rows.get(schedule.id)?.setBusy(true);
    const reply = await this.request({ type, schedule_id: schedule.id }, { resend });
    const row = this.rows.get(schedule.id); // none once deleted
    row?.setBusy(false);
    if (reply.type !== "error") {
      announce(`Schedule ${title} ${done}.`);
    } else if (reply.code === "not_found") {
      this._remove(schedule.id); // deleted meanwhile, from another tab or jobsctl
      announce(`The schedule ${title} no longer exists.`);
    } else {
      row?.showError(reply.message);
    }
  }
}

/** Whether `a` comes after `b` in the server's order (created_at, then id). */
function listedAfter(a, b) {
  if (a.created_at !== b.created_at) return a.created_at > b.created_at;
  return a.id > b.id;
}

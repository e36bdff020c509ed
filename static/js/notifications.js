// Notices and the notification center (docs/protocol.md, "Extensions"; docs/dashboard.md):
//   - NoticeBanners: broadcast notices as banners above the page. Nothing disappears
//     by itself except at its expiry; a dismissed notice stays dismissed (localStorage,
//     so in every tab and after a reload).
//   - Inbox: the bell, its unread count and its list (mark one read, mark all read).
//   - BrowserAlerts: a system notification when a job finishes while the tab is
//     hidden, only once the user has allowed it with the button (never asked on load).
// All server text goes in with textContent (dom.js h/setText).
import { h, setText } from "./dom.js";
import { kindName } from "./format.js";

const DISMISSED_KEY = "jobs.dismissed-notices";
const DISMISSED_KEEP = 200;
const PAGE = 20;
// setTimeout takes at most 2^31 - 1 ms (~24.8 days); later expiries are checked on the next hello.
const LONGEST_TIMER_MS = 2 ** 31 - 1;
const LEVEL_NAMES = { info: "Info", warning: "Warning", critical: "Critical" };
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** The one object dashboard.js talks to: it takes the messages of the extension. */
export class NotificationCenter {
  constructor(send) {
    this.banners = new NoticeBanners(document.getElementById("broadcasts"));
    this.alerts = new BrowserAlerts(document.getElementById("browser-alerts"));
    this.inbox = new Inbox(document.getElementById("inbox"), send);
  }

  onHello(hello) {
    this.banners.replaceAll(hello.notices || []);
    this.inbox.onHello(typeof hello.unread === "number" ? hello.unread : 0);
  }

  /** Handle one server message; false when it is not one of ours. */
  handle(message) {
    switch (message.type) {
      case "notice":
        this.banners.show(message.notice);
        return true;
      case "notification.created":
        this.inbox.onCreated(message.notification, message.unread);
        this.alerts.maybeAlert(message.notification);
        return true;
      case "notification.unread":
        this.inbox.onUnread(message);
        return true;
      case "notification.list":
        this.inbox.onList(message);
        return true;
      default:
        return false;
    }
  }

  setConnected(live) {
    this.inbox.setConnected(live);
  }
}

export class NoticeBanners {
  constructor(container) {
    this.container = container;
    this.timers = new Map();
    // Dismissed in another tab: gone here too.
    window.addEventListener("storage", (event) => {
      if (event.key !== DISMISSED_KEY) return;
      for (const id of readDismissed()) this.remove(id);
    });
  }

  /** The notices of a hello: what the server says is active now, minus what this browser dismissed. */
  replaceAll(notices) {
    for (const id of [...this.timers.keys()]) this.remove(id);
    for (const notice of [...notices].reverse()) this.show(notice);
  }

  show(notice) {
    const id = String(notice.id);
    if (this.timers.has(id) || readDismissed().has(id)) return;
    const left = notice.expires_at ? Date.parse(notice.expires_at) - Date.now() : Infinity;
    if (left <= 0) return;
    this.container.prepend(this.render(id, notice));
    this.timers.set(id, left < LONGEST_TIMER_MS ? window.setTimeout(() => this.remove(id), left) : null);
  }

  render(id, notice) {
    const level = LEVEL_NAMES[notice.level] ? notice.level : "info";
    const textId = `broadcast-text-${id}`;
    const dismiss = h("button", {
      className: "link broadcast-dismiss",
      text: "Dismiss",
      attrs: { type: "button", "aria-describedby": textId },
      on: { click: () => this.dismiss(id) },
    });
    // A critical notice interrupts a screen reader; the others wait their turn.
    const role = level === "critical" ? "alert" : "status";
    return h(
      "div",
      { className: "broadcast", dataset: { level, noticeId: id }, attrs: { role } },
      h("span", { className: "broadcast-level", text: LEVEL_NAMES[level] }),
      h("p", { className: "broadcast-text", text: notice.text, attrs: { id: textId } }),
      dismiss,
    );
  }

  dismiss(id) {
    const dismissed = [...readDismissed()].filter((other) => other !== id);
    dismissed.push(id);
    try {
      window.localStorage.setItem(DISMISSED_KEY, JSON.stringify(dismissed.slice(-DISMISSED_KEEP)));
    } catch {
      // Storage may be full or disabled: the notice is dismissed in this tab only.
    }
    this.remove(id);
  }

  remove(id) {
    if (!this.timers.has(id)) return;
    window.clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    this.container.querySelector(`[data-notice-id="${CSS.escape(id)}"]`)?.remove();
  }
}

function readDismissed() {
  try {
    const stored = JSON.parse(window.localStorage.getItem(DISMISSED_KEY) || "[]");
    return new Set(Array.isArray(stored) ? stored.map(String) : []);
  } catch {
    return new Set();
  }
}

export class Inbox {
  constructor(root, send) {
    this.root = root;
    this.send = send;
    this.bell = root.querySelector(".bell");
    this.count = root.querySelector(".bell-count");
    this.panel = root.querySelector(".inbox-panel");
    this.list = root.querySelector(".inbox-list");
    this.empty = root.querySelector(".inbox-empty");
    this.more = root.querySelector(".inbox-more");
    this.readAll = root.querySelector(".inbox-read-all");
    this.unread = 0;
    this.items = new Map(); // id -> notification, for the ones listed
    this.loaded = false; // the newest page has arrived since the panel opened
    this.bell.addEventListener("click", () => this.toggle());
    this.readAll.addEventListener("click", () => this.send({ type: "notification.read_all" }));
    this.more.addEventListener("click", () => this.requestPage(this.oldestId()));
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.panel.hidden) {
        this.close();
        this.bell.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!this.panel.hidden && !root.contains(event.target)) this.close();
    });
  }

  onHello(unread) {
    this.setUnread(unread);
    // What changed while disconnected is unknown: start the list again.
    this.loaded = false;
    if (!this.panel.hidden) this.requestPage(null);
  }

  onCreated(notification, unread) {
    this.setUnread(unread);
    if (this.loaded && notification && !this.items.has(notification.id)) {
      this.items.set(notification.id, notification);
      this.list.prepend(this.renderItem(notification));
      this.showEmpty();
    }
  }

  onUnread(message) {
    this.setUnread(message.unread);
    const upTo = message.read_up_to;
    for (const [id, notification] of this.items) {
      if ((message.read || []).includes(id) || (upTo !== null && upTo !== undefined && id <= upTo)) {
        if (!notification.read) this.markShownRead(notification);
      }
    }
  }

  onList(message) {
    if (message.before === null || message.before === undefined) {
      this.items.clear();
      this.list.replaceChildren();
      this.loaded = true;
    }
    for (const notification of message.notifications || []) {
      if (this.items.has(notification.id)) continue;
      this.items.set(notification.id, notification);
      this.list.append(this.renderItem(notification));
    }
    this.more.hidden = !message.more;
    this.setUnread(message.unread);
    this.showEmpty();
  }

  toggle() {
    if (this.panel.hidden) this.open();
    else this.close();
  }

  open() {
    this.panel.hidden = false;
    this.bell.setAttribute("aria-expanded", "true");
    this.loaded = false;
    this.requestPage(null);
  }

  close() {
    this.panel.hidden = true;
    this.bell.setAttribute("aria-expanded", "false");
  }

  requestPage(before) {
    const message = { type: "notification.list", limit: PAGE };
    if (before !== null) message.before = before;
    if (before === null && !this.loaded) setText(this.empty, "Loading…");
    this.send(message);
  }

  setConnected(live) {
    this.readAll.disabled = !live || this.unread === 0;
    this.more.disabled = !live;
    for (const button of this.list.querySelectorAll("button")) button.disabled = !live;
    this.live = live;
  }

  setUnread(unread) {
    this.unread = unread;
    setText(this.count, unread > 99 ? "99+" : String(unread));
    this.count.hidden = unread === 0;
    this.bell.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
    this.readAll.disabled = unread === 0 || this.live === false;
  }

  oldestId() {
    return Math.min(...this.items.keys());
  }

  showEmpty() {
    this.empty.hidden = this.items.size > 0;
    setText(this.empty, "No notifications yet.");
  }

  renderItem(notification) {
    const level = LEVEL_NAMES[notification.level] ? notification.level : "info";
    const item = h(
      "li",
      { className: "inbox-item", dataset: { id: notification.id, level, read: notification.read ? "true" : "false" } },
      h("span", { className: "inbox-dot", attrs: { "aria-hidden": "true" } }),
      h(
        "div",
        { className: "inbox-body" },
        h("p", { className: "inbox-text", text: notification.text }),
        h("p", { className: "inbox-when muted", text: describe(notification) }),
      ),
    );
    if (!notification.read) item.append(this.readButton(notification));
    return item;
  }

  readButton(notification) {
    return h("button", {
      className: "secondary inbox-read",
      text: "Mark read",
      attrs: {
        type: "button",
        "aria-label": `Mark read: ${notification.text.slice(0, 80)}`,
        disabled: this.live === false,
      },
      on: { click: () => this.send({ type: "notification.read", id: notification.id }) },
    });
  }

  markShownRead(notification) {
    notification.read = true;
    const item = this.list.querySelector(`.inbox-item[data-id="${notification.id}"]`);
    if (!item) return;
    item.dataset.read = "true";
    setText(item.querySelector(".inbox-when"), describe(notification));
    const button = item.querySelector(".inbox-read");
    // Keep keyboard focus in the list when the button that had it goes.
    if (button && document.activeElement === button) this.panel.querySelector(".inbox-heading")?.focus();
    button?.remove();
  }
}

function describe(notification) {
  const date = new Date(notification.created_at);
  const today = date.toDateString() === new Date().toDateString();
  const when = Number.isNaN(date.getTime()) ? "" : (today ? timeFormat : dayFormat).format(date);
  const what = notification.job ? `${kindName(notification.job.kind)} job` : LEVEL_NAMES[notification.level] || "";
  return [what, when, notification.read ? "" : "unread"].filter(Boolean).join(" · ");
}

export class BrowserAlerts {
  constructor(root) {
    this.root = root;
    this.button = root.querySelector("button");
    this.state = root.querySelector(".browser-alerts-state");
    this.supported = "Notification" in window;
    this.button.addEventListener("click", () => this.ask());
    this.show();
  }

  async ask() {
    try {
      await window.Notification.requestPermission();
    } catch {
      // Very old browsers take a callback instead; they are not supported here.
    }
    this.show();
  }

  show() {
    const permission = this.supported ? window.Notification.permission : "unsupported";
    this.button.hidden = permission !== "default";
    const words = {
      granted: "Browser notifications are on for finished jobs in hidden tabs.",
      denied: "Browser notifications are blocked for this site (change it in the browser's site settings).",
      unsupported: "This browser cannot show notifications.",
    };
    this.state.hidden = permission === "default";
    setText(this.state, words[permission] || "");
  }

  /** A finished job of this user, while this tab is hidden: tell the system, once across tabs (tag). */
  maybeAlert(notification) {
    if (!notification?.job || !document.hidden) return;
    if (!this.supported || window.Notification.permission !== "granted") return;
    const outcome = notification.kind === "job.failed" ? "failed" : "succeeded";
    try {
      new window.Notification(`${kindName(notification.job.kind)} job ${outcome}`, {
        body: notification.text,
        tag: `notification-${notification.id}`,
      });
    } catch {
      // Some browsers (Chrome on Android) allow notifications only from a service worker.
    }
  }
}

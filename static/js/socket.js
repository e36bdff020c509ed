// The WebSocket to /ws/jobs/: connects, keeps alive, and reconnects by itself
// (shared/protocol.md, "Close codes"):
//   - after any close it reconnects with exponential backoff and full jitter,
//     so a restarted server is not stampeded by every tab at the same moment;
//   - after 4401 / 4403 (not or no longer logged in) it stops: the page asks
//     the user to log in again;
//   - after 4008 (too many requests) it waits much longer first.
// Every connection starts with a fresh `hello`; the backoff resets only once one
// arrives, so a server that accepts and drops at once still backs off.
// A connection that brings no `hello` within HELLO_TIMEOUT_MS (a server stuck in
// the handshake or before its first frame) is given up like any other close.

const CLOSE_POLICY = 4008;
const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;

// From the start of a connection (its HTTP handshake included) to its `hello`.
const HELLO_TIMEOUT_MS = 10_000;
const PING_EVERY_MS = 25_000;
// No frame at all this long after a ping: the connection is dead (a dropped
// network often closes nothing), so give it up and reconnect.
const PONG_TIMEOUT_MS = 10_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const POLICY_WAIT_MS = 60_000;

/**
 * States: "connecting" (first attempt), "live" (hello received), "reconnecting"
 * (waiting or trying again), "throttled" (waiting after 4008), "logged-out".
 * Events: "state" (detail {state, retryAt}), "message" (detail: the parsed frame).
 */
export class JobSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.state = "connecting";
    this.attempt = 0;
    this.retryTimer = null;
    this.helloTimer = null;
    this.pingTimer = null;
    this.pongDeadline = null;
    this.retryAt = null;
    window.addEventListener("online", () => this.reconnectNow());
  }

  get live() {
    return this.state === "live";
  }

  connect() {
    this._clearRetry();
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("message", (event) => this._onMessage(ws, event));
    ws.addEventListener("close", (event) => this._onClose(ws, event.code));
    this._startHelloTimer();
  }

  /** Send one message; false when there is no open connection to send it on. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Skip the remaining wait (the user asked, or the network came back). */
  reconnectNow() {
    if (this.state === "reconnecting" && this.retryTimer !== null) {
      this.attempt = 0;
      this._setState("reconnecting", null);
      this.connect();
    }
  }

  _onMessage(ws, event) {
    if (ws !== this.ws) return;
    this.pongDeadline = null;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // The server sends only JSON; anything else is not ours to act on.
    }
    if (message.type === "hello") {
      this._clearHelloTimer();
      this.attempt = 0;
      this._setState("live", null);
      this._startPing();
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  _onClose(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    this._clearHelloTimer();
    this._stopPing();
    if (code === CLOSE_UNAUTHENTICATED || code === CLOSE_FORBIDDEN) {
      this._setState("logged-out", null);
      return;
    }
    const delay = code === CLOSE_POLICY ? POLICY_WAIT_MS + Math.random() * POLICY_WAIT_MS : this._backoff();
    this._setState(code === CLOSE_POLICY ? "throttled" : "reconnecting", Date.now() + delay);
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  /** Full jitter: a random wait up to base * 2^attempt, capped. */
  _backoff() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    return Math.max(100, Math.random() * ceiling);
  }

  _startHelloTimer() {
    this._clearHelloTimer();
    this.helloTimer = window.setTimeout(() => {
      this.helloTimer = null;
      this._abandon();
    }, HELLO_TIMEOUT_MS);
  }

  _clearHelloTimer() {
    if (this.helloTimer !== null) window.clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = window.setInterval(() => this._ping(), PING_EVERY_MS);
  }

  _ping() {
    if (this.pongDeadline !== null && Date.now() > this.pongDeadline) {
      this._abandon();
      return;
    }
    if (this.send({ type: "ping" }) && this.pongDeadline === null) {
      this.pongDeadline = Date.now() + PONG_TIMEOUT_MS;
      window.setTimeout(() => this._checkPong(), PONG_TIMEOUT_MS + 100);
    }
  }

  _checkPong() {
    if (this.pongDeadline !== null && Date.now() > this.pongDeadline) this._abandon();
  }

  /** Treat a silent (or hello-less) connection as closed now; its own close event may come much later. */
  _abandon() {
    const ws = this.ws;
    if (!ws) return;
    this._onClose(ws, 1006);
    ws.close();
  }

  _stopPing() {
    if (this.pingTimer !== null) window.clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.pongDeadline = null;
  }

  _clearRetry() {
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  _setState(state, retryAt) {
    this.state = state;
    this.retryAt = retryAt;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryAt } }));
  }
}

/** The socket URL for this page: ws:// or wss:// like the page, same host. */
export function socketUrl(path = "/ws/jobs/") {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

// Messages that wait for their answer: each gets a fresh request_id, and the reply or `error` that
// echoes it (protocol 1.1) settles it. Asked again after a reconnect when `resend` allows it (a
// job.submit is idempotent by its request_id; a listing can be asked again); otherwise settled with
// an error, since the answer may have been lost with the connection.

export function requestId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  // randomUUID needs a secure context; plain http on a LAN address is not one.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export class Requests {
  constructor(socket) {
    this.socket = socket;
    this.pending = new Map();
  }

  /** Send `message` with a request_id (a fresh one unless it has its own); resolves with its reply (an `error` reply included). */
  send(message, { resend = true } = {}) {
    const sent = { ...message, request_id: message.request_id || requestId() };
    return new Promise((resolve) => {
      this.pending.set(sent.request_id, { message: sent, resolve, resend });
      this.socket.send(sent);
    });
  }

  /** Settle the request a message answers; true when it was one. */
  handle(message) {
    const entry = message.request_id ? this.pending.get(message.request_id) : undefined;
    if (!entry) return false;
    this.pending.delete(message.request_id);
    entry.resolve(message);
    return true;
  }

  /** A new connection (its hello): ask again what may be asked again, give up the rest. */
  reconnected() {
    for (const [id, entry] of this.pending) {
      if (entry.resend) {
        this.socket.send(entry.message);
      } else {
        this.pending.delete(id);
        entry.resolve({ type: "error", code: "internal", request_id: id, message: "The connection was lost; try again." });
      }
    }
  }
}

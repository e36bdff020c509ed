// What every page with a socket shows the same way: the connection indicator (#connection) and the
// page's notice (#notice) for being logged out, throttled, or refused.
import { h, setText } from "./dom.js";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  throttled: "Paused: too many requests",
  "logged-out": "Logged out",
};

/** Follow the socket's state in the indicator; `onState(state)` is called after each change. */
export function showConnectionOf(socket, loginUrl, onState = () => {}) {
  const show = (state) => {
    const indicator = document.getElementById("connection");
    indicator.dataset.state = state;
    setText(indicator.querySelector(".conn-text"), CONNECTION_TEXT[state] || state);
    indicator.querySelector(".conn-retry").hidden = state !== "reconnecting";
    if (state === "logged-out") {
      const link = h("a", { text: "Log in again", attrs: { href: loginUrl || "/accounts/login/" } });
      showNotice(["You are logged out. ", link, " to see your jobs."], "warning");
    } else if (state === "throttled") {
      showNotice("Too many requests: the connection is paused for a minute, then resumes by itself.", "warning");
    } else if (state === "live") {
      hideNotice("warning");
    }
    onState(state);
  };
  socket.addEventListener("state", (event) => show(event.detail.state));
  document.querySelector("#connection .conn-retry").addEventListener("click", () => socket.reconnectNow());
  document.querySelector("#notice .notice-close")?.addEventListener("click", () => hideNotice());
  // The socket announces only changes: show where it starts, so nothing looks usable before the first hello.
  show(socket.state);
}

export function showNotice(content, tone = "error") {
  const notice = document.getElementById("notice");
  const text = notice.querySelector(".notice-text");
  text.replaceChildren(...[content].flat());
  notice.dataset.tone = tone;
  notice.hidden = false;
}

export function hideNotice(tone) {
  const notice = document.getElementById("notice");
  if (!tone || notice.dataset.tone === tone) notice.hidden = true;
}

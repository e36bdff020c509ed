// Building DOM safely: text always goes in through textContent, never as HTML.

/**
 * Create an element. `props`: className, text, hidden, dataset {…}, attrs {…}
 * (set with setAttribute), on {event: handler}. Children are nodes or strings
 * (strings become text nodes); null/undefined/false children are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  const { className, text, hidden, dataset, attrs, on } = props;
  if (className) el.className = className;
  if (text !== undefined && text !== null) el.textContent = String(text);
  if (hidden) el.hidden = true;
  for (const [key, value] of Object.entries(dataset || {})) el.dataset[key] = String(value);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) el.setAttribute(key, String(value));
  }
  for (const [event, handler] of Object.entries(on || {})) el.addEventListener(event, handler);
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Set an element's text only when it changes (no needless DOM writes or re-announcements). */
export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

/** Announce a sentence to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Emptying first makes a repeated sentence count as a change.
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

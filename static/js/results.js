// A finished job's result, shown readably for any kind: a table for a list of objects, a key/value
// list for an object, text for the rest; the kinds shipped get views of their own shapes. And its
// artifacts, as download links.
import { h } from "./dom.js";
import { formatBytes, formatNumber } from "./format.js";

export function renderResult(kind, result) {
  if (result === null || result === undefined) return null;
  if (typeof result !== "object") return h("div", { className: "result" }, h("p", { text: scalar(result) }));
  if (Array.isArray(result)) return h("div", { className: "result" }, anyValue(result));
  if (!Object.keys(result).length) return null;
  if (Array.isArray(result.columns) && result.columns.every(isObject)) return csvSummary(result);
  if (Array.isArray(result.top_words)) return textStats(result);
  if (typeof result.sha256 === "string") return checksum(result);
  if (kind === "email.send" && typeof result.sent === "number") return emailReport(result);
  return keyValues(result);
}

function csvSummary(result) {
  const head = ["Column", "Type", "Nulls", "Min", "Max", "Mean"];
  const rows = result.columns.map((column) =>
    h(
      "tr",
      {},
      h("th", { attrs: { scope: "row" }, text: column.name }),
      h("td", { text: column.type ?? "—" }),
      h("td", { className: "num", text: cell(column.nulls) }),
      h("td", { className: "num", text: cell(column.min) }),
      h("td", { className: "num", text: cell(column.max) }),
      h("td", { className: "num", text: cell(column.mean) }),
    ),
  );
  return h(
    "div",
    { className: "result" },
    h("p", { className: "result-lead", text: `${formatNumber(result.rows)} rows, ${result.columns.length} columns` }),
    h(
      "div",
      { className: "table-scroll" },
      h(
        "table",
        { className: "data" },
        h("caption", { className: "visually-hidden", text: "Columns of the CSV file" }),
        h("thead", {}, h("tr", {}, head.map((label) => h("th", { attrs: { scope: "col" }, text: label })))),
        h("tbody", {}, rows),
      ),
    ),
  );
}

function textStats(result) {
  const { top_words: topWords, ...counts } = result;
  const words = h(
    "ol",
    { className: "top-words" },
    topWords.map(([word, count]) => h("li", {}, h("span", { className: "word", text: word }), " ", h("span", { className: "muted", text: `× ${formatNumber(count)}` }))),
  );
  return h(
    "div",
    { className: "result" },
    keyValues(counts),
    topWords.length ? h("p", { className: "result-lead", text: "Most frequent words" }) : null,
    topWords.length ? words : null,
  );
}

function checksum(result) {
  const { size, ...hashes } = result;
  const list = keyValues(hashes, (value) => h("code", { className: "hash", text: value }));
  if (size !== undefined) list.append(h("dt", { text: "size" }), h("dd", { text: formatBytes(size) }));
  return h("div", { className: "result" }, list);
}

function emailReport(result) {
  const failed = Array.isArray(result.failed) ? result.failed : [];
  const list = h("dl", { className: "kv" }, h("dt", { text: "sent" }), h("dd", { text: formatNumber(result.sent) }));
  list.append(h("dt", { text: "failed" }), h("dd", { text: formatNumber(failed.length) }));
  if (!failed.length) return h("div", { className: "result" }, list);
  const rows = failed.map((item) => h("tr", {}, h("td", { text: item.to }), h("td", { text: item.error })));
  return h(
    "div",
    { className: "result" },
    list,
    h(
      "div",
      { className: "table-scroll" },
      h(
        "table",
        { className: "data" },
        h("caption", { className: "visually-hidden", text: "Recipients that failed" }),
        h("thead", {}, h("tr", {}, h("th", { attrs: { scope: "col" }, text: "Recipient" }), h("th", { attrs: { scope: "col" }, text: "Error" }))),
        h("tbody", {}, rows),
      ),
    ),
  );
}

/** Links to download a job's artifacts (GET /api/artifacts/<id>/, the owner's session). */
export function renderArtifacts(artifacts) {
  if (!Array.isArray(artifacts) || !artifacts.length) return null;
  const items = artifacts.map((artifact) =>
    h(
      "li",
      {},
      h("a", { attrs: { href: `/api/artifacts/${encodeURIComponent(artifact.id)}/`, download: artifact.name }, text: artifact.name }),
      " ",
      h("span", { className: "muted", text: formatBytes(artifact.size) }),
    ),
  );
  return h("div", { className: "artifacts" }, h("p", { className: "result-lead", text: "Files" }), h("ul", {}, items));
}

/** A <dl> of an object's fields, each value shown by its shape. */
function keyValues(object, render = anyValue) {
  const list = h("dl", { className: "kv" });
  for (const [key, value] of Object.entries(object)) {
    list.append(h("dt", { text: key }), h("dd", {}, render(value)));
  }
  return list;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Any JSON value, readably: a table for a list of objects or of rows, a list, a key/value list, text. */
function anyValue(value) {
  if (Array.isArray(value)) {
    if (value.length && value.every(isObject)) return table(value);
    if (value.length && value.every((row) => Array.isArray(row) && row.every((cell) => !isObject(cell)))) return rows(value);
    return value.every((item) => !isObject(item) && !Array.isArray(item)) ? value.map(scalar).join(", ") || "—" : code(value);
  }
  if (isObject(value)) return Object.keys(value).length <= 12 ? keyValues(value) : code(value);
  return scalar(value);
}

function scalar(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function code(value) {
  return h("code", { text: JSON.stringify(value) });
}

/** A list of objects as a table whose columns are their keys, in first-seen order. */
function table(objects) {
  const keys = [...new Set(objects.flatMap((object) => Object.keys(object)))];
  const body = objects.slice(0, 200).map((object) => h("tr", {}, keys.map((key) => h("td", {}, cellValue(object[key])))));
  return scrollingTable(h("thead", {}, h("tr", {}, keys.map((key) => h("th", { attrs: { scope: "col" }, text: key })))), body);
}

function rows(list) {
  return scrollingTable(null, list.slice(0, 200).map((row) => h("tr", {}, row.map((cell) => h("td", {}, cellValue(cell))))));
}

function cellValue(value) {
  return isObject(value) || Array.isArray(value) ? code(value) : scalar(value);
}

function scrollingTable(head, body) {
  return h("div", { className: "table-scroll" }, h("table", { className: "data" }, head, h("tbody", {}, body)));
}

function cell(value) {
  if (value === null || value === undefined || value === "") return "—";
  return typeof value === "number" ? formatNumber(value) : String(value);
}

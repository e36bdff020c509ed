// A finished job's result, shown readably: tables, key/value lists, word lists.
import { h } from "./dom.js";
import { formatBytes, formatNumber } from "./format.js";

export function renderResult(kind, result) {
  if (result === null || result === undefined) return null;
  if (typeof result !== "object" || Array.isArray(result)) {
    return h("div", { className: "result" }, h("code", { text: JSON.stringify(result) }));
  }
  if (Array.isArray(result.columns)) return csvSummary(result);
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

/** A <dl> of an object's fields; nested values are shown compactly. */
function keyValues(object, render = defaultValue) {
  const list = h("dl", { className: "kv" });
  for (const [key, value] of Object.entries(object)) {
    list.append(h("dt", { text: key }), h("dd", {}, render(value)));
  }
  return list;
}

function defaultValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "object") return h("code", { text: JSON.stringify(value) });
  return String(value);
}

function cell(value) {
  if (value === null || value === undefined || value === "") return "—";
  return typeof value === "number" ? formatNumber(value) : String(value);
}

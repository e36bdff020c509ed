// Words and numbers for people: kind names, params summaries, sizes, durations.

// Each kind's Kind object (kind.list), by name: its title, and its schema's field titles.
const KINDS = new Map();
// A batch is a Job of this kind (protocol 1.1 Batches); its children have kinds of their own.
export const BATCH = "batch";

export function setKinds(kinds) {
  KINDS.clear();
  for (const kind of kinds) KINDS.set(kind.name, kind);
}

const OPERATION_NAMES = {
  checksum: "Checksum",
  "csv.summary": "CSV summary",
  "text.stats": "Text statistics",
};

export const STATUS_NAMES = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });

// Names of the files this tab uploaded, by upload id: file.process params carry only the id.
export const uploadNames = new Map();

export function kindName(kind) {
  return KINDS.get(kind)?.title || (kind === BATCH ? "Batch" : kind);
}

/** What a batch is called: its title, or what it holds when it has none. */
export function batchTitle(job) {
  const p = job.params || {};
  if (p.title) return p.title;
  return p.mode === "sequence" ? "Untitled sequence" : "Untitled batch";
}

export function operationName(operation) {
  return OPERATION_NAMES[operation] || operation;
}

export function formatNumber(value) {
  return typeof value === "number" ? numberFormat.format(value) : String(value);
}

export function formatBytes(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes)) return String(bytes);
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** 0:07, 12:34, 1:02:03 */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

export function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString();
}

/** One line saying what the job was asked to do. */
export function paramsSummary(kind, params) {
  const p = params || {};
  switch (kind) {
    case "demo.countdown": {
      const parts = [`${formatNumber(p.steps)} steps`, `${formatNumber(p.interval_ms ?? 0)} ms apart`];
      if (p.fail_at !== undefined && p.fail_at !== null) parts.push(`fails at step ${formatNumber(p.fail_at)}`);
      return parts.join(" · ");
    }
    case "email.send": {
      const to = Array.isArray(p.to) ? p.to : [];
      const count = typeof p.to_count === "number" ? p.to_count : to.length;
      const who = count === 1 && to.length ? `To ${to[0]}` : `To ${formatNumber(count)} recipients`;
      return p.subject ? `${who} · “${p.subject}”` : who;
    }
    case "file.process": {
      const known = p.name || p.file_name || p.filename || uploadNames.get(p.upload_id);
      const name = known || (p.upload_id ? `upload ${String(p.upload_id).slice(0, 8)}` : "");
      return [operationName(p.operation), name].filter(Boolean).join(" · ");
    }
    case BATCH: {
      const size = formatNumber(p.size ?? 0);
      return p.mode === "sequence" ? `Sequence of ${size} ${p.size === 1 ? "step" : "steps"}, one after another` : `Batch of ${size} ${p.size === 1 ? "job" : "jobs"}, side by side`;
    }
    default:
      return genericSummary(kind, p);
  }
}

/** "From 2026-04-01 · Until 2026-04-30 · Kinds email.send": each param under its field's title, shortened. */
function genericSummary(kind, params) {
  const properties = KINDS.get(kind)?.params_schema?.properties || {};
  const parts = Object.entries(params)
    .filter(([, value]) => value !== null && value !== undefined && value !== "" && !(Array.isArray(value) && !value.length))
    .map(([name, value]) => `${properties[name]?.title || name} ${shortValue(value)}`);
  const text = parts.join(" · ");
  return text.length > 100 ? `${text.slice(0, 99)}…` : text;
}

function shortValue(value) {
  if (Array.isArray(value)) return value.map(shortValue).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "number") return formatNumber(value);
  return String(value);
}

/** "to.2" → ["to", "2"]; a human label for the path within its field. */
export function splitPath(path) {
  const [field, ...rest] = String(path).split(".");
  return { field, rest };
}

/**
 * What resending a job's parts of unknown outcome says (job.retry resend_unknown, docs/protocol.md): the
 * button's words and the confirmation's question, which states the risk. `n`: the job's unknown_outcome.
 */
export function resendUnknownWords(n) {
  const them = n === 1 ? "the 1 recipient whose outcome is unknown" : `the ${formatNumber(n)} recipients whose outcome is unknown`;
  return {
    label: `Resend ${them}`,
    question:
      `Resend ${them}? Sending was interrupted when the mail server may already have taken the message, ` +
      `so ${n === 1 ? "this recipient" : "these recipients"} may receive it twice. ` +
      "Recipients that failed or were not reached yet are sent to as well; those already sent to are not.",
  };
}

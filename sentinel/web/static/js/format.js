// Formatting of numbers, times and durations for display.

const nf = new Intl.NumberFormat();

export function number(n) {
  return n === undefined || n === null ? "–" : nf.format(n);
}

export function percent(part, total) {
  if (!total) return "0%";
  return (100 * part / total).toFixed(1) + "%";
}

/** Accepts epoch seconds, epoch milliseconds or an ISO string. */
export function toDate(value) {
  if (value === undefined || value === null || value === "") return null;
  if (typeof value === "number") return new Date(value < 1e12 ? value * 1000 : value);
  const d = new Date(value);
  return isNaN(d) ? null : d;
}

export function dateTime(value) {
  const d = toDate(value);
  return d ? d.toLocaleString() : "–";
}

export function time(value) {
  const d = toDate(value);
  return d ? d.toLocaleTimeString() : "–";
}

/** "12 s ago", "3 min ago", "in 5 min". */
export function ago(value, now = Date.now()) {
  const d = toDate(value);
  if (!d) return "never";
  const s = Math.round((now - d.getTime()) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  let text;
  if (a < 5) return "just now";
  if (a < 90) text = `${a} s`;
  else if (a < 5400) text = `${Math.round(a / 60)} min`;
  else if (a < 172800) text = `${Math.round(a / 3600)} h`;
  else text = `${Math.round(a / 86400)} days`;
  return future ? `in ${text}` : `${text} ago`;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** <input type="datetime-local"> value <-> epoch seconds. */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function fromLocalInput(text) {
  if (!text) return null;
  const d = new Date(text);
  return isNaN(d) ? null : d;
}

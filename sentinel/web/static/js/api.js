// The API client.  Every error becomes an ApiError whose message is the
// API's own plain-words "message" ({"error": CODE, "message": ...}), or a
// plain explanation when the server could not be reached.

export class ApiError extends Error {
  constructor(status, code, message, details, data = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.data = data; // the answer's JSON body, if any
  }
}

const STATUS_WORDS = {
  400: "The request was not accepted.",
  401: "Please log in.",
  403: "This is not allowed.",
  404: "Not found. This Sentinel version may not have this feature yet.",
  405: "This action is not available on this Sentinel version.",
  409: "This conflicts with the current state.",
  413: "That is too large.",
  429: "Too many attempts. Wait a moment and try again.",
  500: "Sentinel had an internal error; see its log.",
  502: "Sentinel's proxy could not reach it.",
  503: "Sentinel is not ready; try again shortly.",
};

const listeners = new Set();

/**
 * Called with every ApiError (e.g. to go to the login page on 401).  A
 * quiet request (a background refresh) reports only 401: an ended
 * session matters wherever it is noticed.
 */
export function onApiError(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

async function request(method, path, body, options = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: options.signal,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "NETWORK",
      "Sentinel cannot be reached. Check that it is running and that this device is on its network.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const err = new ApiError(
      response.status,
      (data && data.error) || `HTTP_${response.status}`,
      (data && data.message) || STATUS_WORDS[response.status] || `Request failed (HTTP ${response.status}).`,
      data && data.details,
      data,
    );
    if (!options.quiet || err.status === 401) for (const fn of listeners) fn(err);
    throw err;
  }
  return data;
}

/** Build a query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

export const api = {
  get: (path, options) => request("GET", path, undefined, options),
  post: (path, body = {}, options) => request("POST", path, body, options),
  put: (path, body = {}, options) => request("PUT", path, body, options),
  patch: (path, body = {}, options) => request("PATCH", path, body, options),
  del: (path, options) => request("DELETE", path, undefined, options),
};

/** First present value among several spellings of a field. */
export function pick(obj, ...names) {
  if (!obj || typeof obj !== "object") return undefined;
  for (const name of names) {
    if (obj[name] !== undefined && obj[name] !== null) return obj[name];
  }
  return undefined;
}

/** The array in a list answer: the answer itself or its first array field. */
export function listOf(data, ...names) {
  if (Array.isArray(data)) return data;
  for (const name of names.concat(["items", "results"])) {
    if (data && Array.isArray(data[name])) return data[name];
  }
  if (data && typeof data === "object") {
    for (const value of Object.values(data)) if (Array.isArray(value)) return value;
  }
  return [];
}

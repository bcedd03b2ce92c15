// The one way the UI talks to the gateway: JSON in, JSON out, and every
// refusal turned into a `Problem` carrying the server's own words
// (problem+json `detail`), which the forms show next to the field named.

/** A refused or failed request, as the user should read it. */
export class Problem extends Error {
  constructor(status, title, detail, { retryAfter = null } = {}) {
    super(detail);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  /** Whether trying again later may work (the server or network, not the input). */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

let onUnauthorized = () => {};

/** Called when a signed-in request is refused with 401 (the token expired). */
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/**
 * `method path` with an optional JSON `body`; `token` signs it in;
 * `idempotencyKey` lets a retried submit be carried out once.
 */
export async function api(method, path, { body, token, idempotencyKey, signal } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new Problem(0, "No connection", "The box office cannot be reached. Check your connection and try again.");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && token) onUnauthorized();
    const detail = (data && data.detail) || text || response.statusText || `HTTP ${response.status}`;
    throw new Problem(response.status, (data && data.title) || response.statusText, detail, {
      retryAfter: Number(response.headers.get("retry-after")) || null,
    });
  }
  return data;
}

/** Any error as a Problem (a bug in the page shows as one, too). */
export function asProblem(error) {
  if (error instanceof Problem) return error;
  return new Problem(-1, "Something went wrong", String((error && error.message) || error));
}

/**
 * The form field a problem is about: the field whose name (or one of its
 * other words) comes first in the server's `detail`, e.g. "quantity must be
 * between 1 and 1000" → `quantity`. `fields` maps a field to the words that
 * name it (its API name first).
 */
export function blame(problem, fields) {
  if (!problem || !problem.detail) return null;
  const detail = problem.detail.toLowerCase();
  let best = null;
  for (const [field, words] of Object.entries(fields)) {
    for (const word of words) {
      const at = detail.search(new RegExp(`(^|[^a-z])${word.toLowerCase()}([^a-z]|$)`));
      if (at >= 0 && (best === null || at < best.at)) best = { field, at };
    }
  }
  return best && best.field;
}

/** A fresh key for one submit (a retry of the same submit reuses it). */
export function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

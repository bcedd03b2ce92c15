// Small building blocks shared by the screens.
import { useEffect, useRef } from "preact/hooks";
import { html } from "../html.js";
import { STATUS_TEXT } from "../format.js";

let nextId = 0;
function useId(prefix) {
  const id = useRef(null);
  if (id.current === null) id.current = `${prefix}-${++nextId}`;
  return id.current;
}

/**
 * A labelled input with its error underneath (announced, and focused when
 * it appears so the user lands on what to fix).
 */
export function Field({ label, error, hint, as = "input", children, ...input }) {
  const id = useId("field");
  const ref = useRef(null);
  useEffect(() => {
    if (error && ref.current) ref.current.focus();
  }, [error]);
  const described = [error && `${id}-error`, hint && `${id}-hint`].filter(Boolean).join(" ") || undefined;
  const props = {
    ...input,
    id,
    ref,
    "aria-invalid": error ? "true" : undefined,
    "aria-describedby": described,
  };
  let control;
  if (as === "select") control = html`<select ...${props}>${children}</select>`;
  else if (as === "textarea") control = html`<textarea ...${props}></textarea>`;
  else control = html`<input ...${props} />`;
  return html`
    <div class=${`field${error ? " invalid" : ""}`}>
      <label for=${id}>${label}</label>
      ${control}
      ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
      ${error && html`<p class="field-error" id=${`${id}-error`}>${error}</p>`}
    </div>
  `;
}

/** A checkbox with its label beside it. */
export function Check({ label, ...input }) {
  const id = useId("check");
  return html`<div class="check"><input type="checkbox" id=${id} ...${input} /><label for=${id}>${label}</label></div>`;
}

/** A button that says what it is doing and cannot be pressed twice. */
export function Button({ busy, busyText, children, kind = "primary", type = "button", disabled, ...rest }) {
  return html`
    <button type=${type} class=${`button ${kind}`} disabled=${disabled || busy} aria-busy=${busy ? "true" : undefined} ...${rest}>
      ${busy ? html`<span class="spinner" aria-hidden="true"></span>${busyText || children}` : children}
    </button>
  `;
}

/** A problem in the server's words, with a retry where trying again may help. */
export function ProblemAlert({ problem, onRetry, retryText = "Try again" }) {
  if (!problem) return null;
  const later = problem.retryAfter ? ` You can try again in ${problem.retryAfter} s.` : "";
  return html`
    <div class="alert error" role="alert">
      <strong>${problem.title && problem.status > 0 ? problem.title : "Could not do that"}</strong>
      <span>${problem.detail}${problem.transient ? later : ""}</span>
      ${onRetry && problem.transient && html`<button type="button" class="button secondary small" onClick=${onRetry}>${retryText}</button>`}
    </div>
  `;
}

export function Notice({ children, kind = "info" }) {
  return html`<div class=${`alert ${kind}`} role="status">${children}</div>`;
}

export function StatusPill({ status, children }) {
  return html`<span class="pill" data-status=${status}>${children || STATUS_TEXT[status] || status}</span>`;
}

export function Loading({ what = "Loading" }) {
  return html`<p class="loading" role="status"><span class="spinner" aria-hidden="true"></span>${what}…</p>`;
}

/** What a loaded section shows before its data is there, or when it failed. */
export function Loaded({ resource, what, children }) {
  if (resource.data === undefined) {
    if (resource.problem) return html`<${ProblemAlert} problem=${resource.problem} onRetry=${resource.reload} />`;
    return html`<${Loading} what=${what} />`;
  }
  return html`
    ${resource.problem && html`<${ProblemAlert} problem=${resource.problem} onRetry=${resource.reload} retryText="Reload" />`}
    ${children(resource.data)}
  `;
}

/** A screen's heading (the app focuses it on navigation, so screen readers hear where they are). */
export function PageTitle({ children, actions }) {
  return html`
    <div class="page-head">
      <h1 tabindex="-1">${children}</h1>
      ${actions && html`<div class="actions">${actions}</div>`}
    </div>
  `;
}

export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

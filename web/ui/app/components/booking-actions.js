// Cancelling a booking and returning a rented bike, wherever a booking is shown.
import { html } from "../html.js";
import { api } from "../api.js";
import { useSubmit } from "../hooks.js";
import { Button, ProblemAlert } from "./ui.js";

/** What the customer may still do with a booking in `status`. */
export function actionsFor(kind, status) {
  if (kind === "bike") return status === "confirmed" ? ["return"] : status === "pending" ? ["cancel"] : [];
  return status === "pending" || status === "confirmed" ? ["cancel"] : [];
}

export function BookingActions({ id, kind, status, session, onDone, requested }) {
  const act = useSubmit(async (what) => {
    const answer = await api("POST", `/reservations/${encodeURIComponent(id)}/${what}`, { token: session.token });
    onDone && onDone(what, answer);
    return answer;
  });
  const actions = actionsFor(kind, status);
  if (requested) return html`<span class="muted small" role="status">${requested === "return" ? "Return requested…" : "Cancellation requested…"}</span>`;
  if (actions.length === 0) return null;
  return html`
    <span class="booking-actions">
      ${actions.includes("cancel") && html`
        <${Button} kind="danger small" busy=${act.busy} busyText="Cancelling"
          onClick=${() => { if (confirm("Cancel this booking? A card payment is refunded, points are given back.")) act.run("cancel"); }}>Cancel</${Button}>`}
      ${actions.includes("return") && html`<${Button} kind="secondary small" busy=${act.busy} busyText="Returning" onClick=${() => act.run("return")}>Return bike</${Button}>`}
      <${ProblemAlert} problem=${act.problem} />
    </span>
  `;
}

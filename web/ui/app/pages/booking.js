// One booking, followed live: while the saga runs it shows what is being
// waited for, then the outcome (confirmed, or rejected with the reason).
import { useEffect, useState } from "preact/hooks";
import { html } from "../html.js";
import { api } from "../api.js";
import { useResource, useTicker } from "../hooks.js";
import { STATUS_TEXT, bookingNoun, kindName, money, points, secondsUntil, when } from "../format.js";
import { BookingActions } from "../components/booking-actions.js";
import { Loaded, PageTitle, StatusPill } from "../components/ui.js";

const PENDING_REFRESH_MS = 700;
const SETTLED_REFRESH_MS = 3000;

/** The steps of a booking's saga, and where this one is. */
function Progress({ reservation }) {
  const { status, paymentMethod } = reservation;
  const done = status !== "pending";
  const ok = status === "confirmed" || status === "returned" || status === "cancelled";
  const steps = [
    { text: "Booking received", state: "done" },
    {
      text: paymentMethod === "card" ? "Card payment authorised" : "Points to be taken by the wallet",
      state: paymentMethod === "card" ? "done" : done ? (ok ? "done" : "failed") : "active",
    },
    {
      text: reservation.seats.length ? `Holding seats ${reservation.seats.join(", ")}` : reservation.quantity > 1 ? `Holding ${reservation.quantity} tickets` : "Holding it for you",
      state: done ? (ok ? "done" : "failed") : "active",
    },
    { text: done ? STATUS_TEXT[status] : "Confirmation", state: done ? (ok ? "done" : "failed") : "todo" },
  ];
  return html`
    <ol class="progress" aria-label="Progress">
      ${steps.map((s) => html`<li data-state=${s.state}><span class="dot" aria-hidden="true"></span>${s.text}<span class="visually-hidden"> (${s.state === "active" ? "in progress" : s.state === "todo" ? "to come" : s.state})</span></li>`)}
    </ol>
  `;
}

function Deadline({ deadline }) {
  useTicker(1000, Boolean(deadline));
  if (!deadline) return null;
  return html`<p class="hint">Waiting for the box office; if it does not answer within ${secondsUntil(deadline)} s, the booking is called off and nothing is charged.</p>`;
}

export function BookingPage({ params, session }) {
  const id = params.id;
  const [requested, setRequested] = useState(null);
  const reservation = useResource(
    () => api("GET", `/reservations/${encodeURIComponent(id)}`, { token: session.token }),
    [id, session.token],
    { every: PENDING_REFRESH_MS },
  );
  const pending = reservation.data && reservation.data.status === "pending";
  const detail = useResource(
    () => api("GET", `/mypage/reservations/${encodeURIComponent(id)}`, { token: session.token }).catch((p) => {
      if (p.status === 404) return null; // my page has not seen it yet
      throw p;
    }),
    [id, session.token],
    { every: SETTLED_REFRESH_MS },
  );
  const r = reservation.data;
  const listingId = r && r.listingId;
  // The kind decides what can be done (a bike is returned, the rest cancelled).
  const listing = useResource(
    () => (listingId ? api("GET", `/listings/${encodeURIComponent(listingId)}`).catch(() => null) : Promise.resolve(null)),
    [listingId],
  );
  const kind = (detail.data && detail.data.kind) || (listing.data && listing.data.kind);
  const status = r && r.status;
  useEffect(() => {
    if (status === "cancelled" || status === "returned" || status === "rejected") setRequested(null);
  }, [status]);
  return html`
    <p class="crumbs"><a href="#/bookings">← My bookings</a></p>
    <${PageTitle}>${r ? r.title : "Booking"}</${PageTitle}>
    <${Loaded} resource=${reservation} what="Loading the booking">
      ${(r) => html`
        <section class="panel booking-detail" aria-live="polite">
          <p class="status-line"><${StatusPill} status=${r.status} />
            ${pending && html`<span class="spinner" aria-hidden="true"></span>`}
            ${r.status === "confirmed" && html`<span>Your ${bookingNoun(kind)} is confirmed.</span>`}
            ${r.status === "pending" && html`<span>Working on it…</span>`}
          </p>
          ${r.reason && html`<p class="reason" role="alert"><strong>${r.status === "rejected" ? "Not booked: " : "Reason: "}</strong>${r.reason}</p>`}
          <${Progress} reservation=${r} />
          ${pending && html`<${Deadline} deadline=${r.deadline} />`}
          <dl class="facts wide">
            <div><dt>Booking</dt><dd><code>${r.id}</code></dd></div>
            ${kind && html`<div><dt>Kind</dt><dd>${kindName(kind)}</dd></div>`}
            <div><dt>${r.seats.length ? "Seats" : "Quantity"}</dt><dd>${r.seats.length ? r.seats.join(", ") : r.quantity}</dd></div>
            <div><dt>Amount</dt><dd>${money(r.amount)}${r.paymentMethod === "points" ? " pts" : ""}</dd></div>
            <div><dt>Paid with</dt><dd>${r.paymentMethod === "points" ? "Points" : "Card"}${detail.data && detail.data.payment ? ` (${detail.data.payment.status})` : ""}</dd></div>
            ${detail.data && detail.data.points && detail.data.points.earned ? html`<div><dt>Points earned</dt><dd>${points(detail.data.points.earned)}</dd></div>` : null}
            ${detail.data && detail.data.screen && html`<div><dt>Screen</dt><dd>${detail.data.screen.name}</dd></div>`}
            ${detail.data && detail.data.startsAt && html`<div><dt>Starts</dt><dd>${when(detail.data.startsAt)}</dd></div>`}
            <div><dt>Booked</dt><dd>${when(r.createdAt)}</dd></div>
          </dl>
          <${BookingActions} id=${r.id} kind=${kind} status=${r.status}
            session=${session} requested=${requested || (r.cancelRequested && r.status !== "cancelled" ? "cancel" : null)}
            onDone=${(what) => { setRequested(what); reservation.reload(); }} />
          ${detail.data && detail.data.history && detail.data.history.length > 0 && html`
            <h2>History</h2>
            <ol class="history">
              ${detail.data.history.map((h) => html`<li><${StatusPill} status=${h.status} /> <time datetime=${h.at}>${when(h.at)}</time></li>`)}
            </ol>`}
        </section>`}
    </${Loaded}>
  `;
}

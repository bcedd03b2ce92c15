// One listing and booking it: tickets from a quota, seats picked on the
// seat map, or a bike rented with points.
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { api, blame, newKey } from "../api.js";
import { navigate } from "../router.js";
import { isAdmin } from "../session.js";
import { useResource, useSubmit } from "../hooks.js";
import { kindName, money, points, when } from "../format.js";
import { availability } from "./browse.js";
import { SeatMap } from "../components/seatmap.js";
import { Button, Field, Loaded, Notice, PageTitle, ProblemAlert } from "../components/ui.js";

/** The seat map is polled while open: catalog is the truth, a GET is cheap, and polling needs no connection kept per viewer. */
const SEATS_REFRESH_MS = 1500;
const LISTING_REFRESH_MS = 3000;
const MAX_SEATS = 10;

/**
 * Places a booking once however often it is submitted: a retry of the
 * same order reuses its Idempotency-Key; a changed order gets a new one.
 */
function usePlaceBooking(session) {
  const last = useRef({ order: null, key: null });
  return useSubmit(async (order) => {
    const text = JSON.stringify(order);
    if (last.current.order !== text) last.current = { order: text, key: newKey() };
    const reservation = await api("POST", "/reservations", {
      token: session.token,
      idempotencyKey: last.current.key,
      body: order,
    });
    last.current = { order: null, key: null };
    navigate(`/bookings/${reservation.id}`);
    return reservation;
  });
}

function PaymentChoice({ value, onChange, kind }) {
  return html`
    <fieldset class="payment-choice">
      <legend>Pay with</legend>
      <label><input type="radio" name="payment" value="card" checked=${value === "card"} onChange=${() => onChange("card")} /> Card</label>
      <label><input type="radio" name="payment" value="points" checked=${value === "points"} onChange=${() => onChange("points")} /> Points</label>
      ${kind === "bike" && html`<span class="hint">Rentals are paid with points unless you choose the card.</span>`}
    </fieldset>
  `;
}

function SignInToBook({ listing }) {
  return html`<p class="book-signin"><a class="button" href=${`#/login?next=${encodeURIComponent(`/listings/${listing.id}`)}`}>Log in to book</a> or <a href=${`#/signup?next=${encodeURIComponent(`/listings/${listing.id}`)}`}>create an account</a>.</p>`;
}

function QuotaBooking({ listing, session }) {
  const [quantity, setQuantity] = useState("1");
  const [payment, setPayment] = useState("card");
  const place = usePlaceBooking(session);
  const fieldError = blame(place.problem, { quantity: ["quantity", "tickets"] }) === "quantity" ? place.problem.detail : null;
  const total = Number(quantity) > 0 ? Number(quantity) * listing.price : null;
  const submit = (e) => {
    e.preventDefault();
    place.run({ listingId: listing.id, quantity: Number(quantity), paymentMethod: payment });
  };
  return html`
    <form class="book" onSubmit=${submit} novalidate aria-label="Book tickets">
      ${!fieldError && html`<${ProblemAlert} problem=${place.problem} onRetry=${submit} />`}
      <${Field} label="Tickets" name="quantity" type="number" min="1" max="1000" step="1" inputmode="numeric"
        value=${quantity} onInput=${(e) => setQuantity(e.currentTarget.value)} error=${fieldError} />
      <${PaymentChoice} value=${payment} onChange=${setPayment} kind=${listing.kind} />
      <p class="total">Total <strong>${total === null ? "—" : money(total)}</strong></p>
      <${Button} type="submit" busy=${place.busy} busyText="Booking">Book ${quantity || ""} ticket${quantity === "1" ? "" : "s"}</${Button}>
    </form>
  `;
}

function SeatBooking({ listing, session }) {
  const seats = useResource(() => api("GET", `/listings/${listing.id}/seats`), [listing.id], { every: SEATS_REFRESH_MS });
  const [selected, setSelected] = useState(() => new Set());
  const [taken, setTaken] = useState([]);
  const [payment, setPayment] = useState("card");
  const place = usePlaceBooking(session);
  // A seat picked here and taken meanwhile by someone else is let go, and said so.
  useEffect(() => {
    if (!seats.data) return;
    const gone = seats.data.filter((s) => selected.has(s.label) && s.status !== "available").map((s) => s.label);
    if (gone.length) {
      setSelected((prev) => new Set([...prev].filter((l) => !gone.includes(l))));
      setTaken(gone);
    }
  }, [seats.data]);
  const toggle = (label) => {
    setTaken([]);
    setSelected((prev) => {
      const next = new Set(prev);
      if (next.has(label)) next.delete(label);
      else next.add(label);
      return next;
    });
  };
  const priceOf = new Map((seats.data || []).map((s) => [s.label, s.price ?? listing.price]));
  const total = [...selected].reduce((sum, l) => sum + (priceOf.get(l) || 0), 0);
  const chosen = [...selected].sort();
  const submit = (e) => {
    e.preventDefault();
    place.run({ listingId: listing.id, seats: chosen, paymentMethod: payment });
  };
  return html`
    <form class="book" onSubmit=${submit} novalidate aria-label="Book seats">
      <${Loaded} resource=${seats} what="Loading the seat map">
        ${(data) => html`<${SeatMap} seats=${data} selected=${selected} onToggle=${toggle} max=${MAX_SEATS} disabled=${place.busy || !session} />`}
      </${Loaded}>
      ${taken.length > 0 && html`<${Notice} kind="warn">${taken.join(", ")} ${taken.length === 1 ? "was" : "were"} just taken by someone else; pick another seat.</${Notice}>`}
      ${session
        ? html`
          <p class="chosen" aria-live="polite">${chosen.length ? html`Your seats: <strong>${chosen.join(", ")}</strong>` : `Pick up to ${MAX_SEATS} seats on the map.`}</p>
          <${ProblemAlert} problem=${place.problem} onRetry=${submit} />
          <${PaymentChoice} value=${payment} onChange=${setPayment} kind=${listing.kind} />
          <p class="total">Total <strong>${money(total)}</strong></p>
          <${Button} type="submit" busy=${place.busy} busyText="Booking" disabled=${chosen.length === 0}>
            Book ${chosen.length || ""} seat${chosen.length === 1 ? "" : "s"}
          </${Button}>`
        : html`<${SignInToBook} listing=${listing} />`}
    </form>
  `;
}

function BikeRental({ listing, session }) {
  const [payment, setPayment] = useState("points");
  const place = usePlaceBooking(session);
  const balance = useResource(() => api("GET", "/points", { token: session.token }), [session.token]);
  const free = listing.capacity.available;
  const submit = (e) => {
    e.preventDefault();
    place.run({ listingId: listing.id, quantity: 1, paymentMethod: payment });
  };
  return html`
    <form class="book" onSubmit=${submit} novalidate aria-label="Rent this bike">
      <${ProblemAlert} problem=${place.problem} onRetry=${submit} />
      <${PaymentChoice} value=${payment} onChange=${setPayment} kind="bike" />
      ${payment === "points" && balance.data && html`
        <p class="hint">Your balance: <strong>${points(balance.data.balance)}</strong>${balance.data.balance < listing.price ? html` — not enough; <a href="#/points">buy points</a>.` : ""}</p>`}
      <${Button} type="submit" busy=${place.busy} busyText="Renting" disabled=${!free}>${free ? `Rent for ${money(listing.price)}${payment === "points" ? " pts" : ""}` : "Rented out"}</${Button}>
    </form>
  `;
}

export function ListingPage({ params, session }) {
  const listing = useResource(() => api("GET", `/listings/${encodeURIComponent(params.id)}`), [params.id], { every: LISTING_REFRESH_MS });
  const title = listing.data ? listing.data.title : listing.problem && listing.problem.status === 404 ? "Not on sale" : "Listing";
  return html`
    <p class="crumbs"><a href="#/">← Everything on sale</a></p>
    <${PageTitle} actions=${session && isAdmin(session) && listing.data && html`<a class="button secondary small" href=${`#/admin/listings/${params.id}/edit`}>Edit</a>`}>${title}</${PageTitle}>
    <${Loaded} resource=${listing} what="Loading">
      ${(l) => html`
        <section class="panel listing-detail">
          <p class="badges"><span class="badge">${kindName(l.kind)}</span> <span class="availability" aria-live="polite">${availability(l)}</span></p>
          ${l.description && html`<p>${l.description}</p>`}
          <dl class="facts">
            <div><dt>${l.kind === "bike" ? "Rental" : "Price"}</dt><dd>${money(l.price)}${l.kind === "bike" ? " pts" : ""}</dd></div>
            ${l.startsAt && html`<div><dt>Starts</dt><dd>${when(l.startsAt)}</dd></div>`}
            ${l.screen && html`<div><dt>Screen</dt><dd>${l.screen.name}</dd></div>`}
            ${l.kind === "bike" && html`<div><dt>Bike</dt><dd>No. ${l.number}, ${l.color}</dd></div>`}
          </dl>
          ${l.capacity.type === "seated"
            ? html`<${SeatBooking} listing=${l} session=${session} />`
            : !session
              ? html`<${SignInToBook} listing=${l} />`
              : l.kind === "bike"
                ? html`<${BikeRental} listing=${l} session=${session} />`
                : html`<${QuotaBooking} listing=${l} session=${session} />`}
        </section>`}
    </${Loaded}>
  `;
}

// What is on sale, by kind, with availability kept fresh.
import { html } from "../html.js";
import { api } from "../api.js";
import { navigate } from "../router.js";
import { useResource } from "../hooks.js";
import { KINDS, count, kindName, money, when } from "../format.js";
import { Empty, Loaded, PageTitle } from "../components/ui.js";

/** How often availability is refreshed while the list is open. */
const REFRESH_MS = 3000;

export function availability(listing) {
  const c = listing.capacity;
  if (c.type === "unit") return c.available ? "Available" : "Rented out";
  if (c.available === 0) return "Sold out";
  return `${count(c.available)} of ${count(c.total)} ${c.type === "seated" ? "seats" : "tickets"} left`;
}

function soldOut(listing) {
  const c = listing.capacity;
  return c.type === "unit" ? !c.available : c.available === 0;
}

function ListingCard({ listing }) {
  const out = soldOut(listing);
  return html`
    <li class=${`card listing${out ? " sold-out" : ""}`} data-kind=${listing.kind}>
      <div class="card-head">
        <h2><a href=${`#/listings/${listing.id}`}>${listing.title}</a></h2>
        <span class="badge">${kindName(listing.kind)}</span>
      </div>
      ${listing.kind === "bike"
        ? html`<p class="muted">Bike no. ${listing.number} · ${listing.color}</p>`
        : listing.description && html`<p class="muted clamp">${listing.description}</p>`}
      <dl class="facts">
        <div><dt>${listing.kind === "bike" ? "Rental" : "From"}</dt><dd>${money(listing.price)}${listing.kind === "bike" ? " pts" : ""}</dd></div>
        ${listing.startsAt && html`<div><dt>Starts</dt><dd>${when(listing.startsAt)}</dd></div>`}
        ${listing.screen && html`<div><dt>Screen</dt><dd>${listing.screen.name}</dd></div>`}
      </dl>
      <p class="availability" aria-live="polite">${availability(listing)}</p>
    </li>
  `;
}

export function BrowsePage({ params }) {
  const kind = params.kind || "";
  const listings = useResource(
    () => api("GET", `/listings?limit=1000${kind ? `&kind=${kind}` : ""}`),
    [kind],
    { every: REFRESH_MS },
  );
  const tabs = [{ value: "", label: "Everything" }, ...KINDS];
  return html`
    <${PageTitle}>On sale</${PageTitle}>
    <div class="tabs" role="group" aria-label="Kind">
      ${tabs.map((t) => html`
        <button type="button" class="tab" aria-pressed=${kind === t.value ? "true" : "false"}
          onClick=${() => navigate(t.value ? `/?kind=${t.value}` : "/")}>${t.label}</button>`)}
    </div>
    <${Loaded} resource=${listings} what="Loading listings">
      ${(items) => items.length === 0
        ? html`<${Empty}>Nothing ${kind ? `in ${kindName(kind).toLowerCase()}s ` : ""}on sale yet.</${Empty}>`
        : html`<ul class="cards" aria-label="Listings">${items.map((l) => html`<${ListingCard} key=${l.id} listing=${l} />`)}</ul>`}
    </${Loaded}>
  `;
}

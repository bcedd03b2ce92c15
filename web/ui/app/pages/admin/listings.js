// Admins: everything on sale, and registering, changing or withdrawing a
// listing of each kind (a movie by quota or on a screen, a musical with
// its own seat map and sections, a bike).
import { useState } from "preact/hooks";
import { html } from "../../html.js";
import { api, blame } from "../../api.js";
import { navigate } from "../../router.js";
import { useResource, useSubmit } from "../../hooks.js";
import { kindName, money } from "../../format.js";
import { availability } from "../browse.js";
import { layout } from "../../components/seatmap.js";
import { Button, Empty, Field, Loaded, Notice, PageTitle, ProblemAlert } from "../../components/ui.js";

/** Which form field a refusal is about, from the words of its detail. */
const FIELDS = {
  title: ["title"],
  description: ["description"],
  price: ["price"],
  tickets: ["tickets", "quota"],
  screenId: ["screenId", "screen"],
  rows: ["rows"],
  seatsPerRow: ["seatsPerRow", "seats per row"],
  startsAt: ["startsAt", "starts"],
  color: ["color", "colour"],
  sections: ["sections", "section"],
};

function WithdrawButton({ listing, session, onDone }) {
  const [conflict, setConflict] = useState(null);
  const withdraw = useSubmit(async (cancelReservations) => {
    try {
      await api("DELETE", `/listings/${listing.id}${cancelReservations ? "?cancelReservations=true" : ""}`, { token: session.token });
    } catch (problem) {
      if (problem.status === 409) {
        setConflict(problem.detail);
        return;
      }
      throw problem;
    }
    setConflict(null);
    onDone();
  });
  return html`
    <span class="row-actions">
      <${Button} kind="danger small" busy=${withdraw.busy} busyText="Withdrawing"
        onClick=${() => { if (confirm(`Withdraw “${listing.title}” from sale?`)) withdraw.run(false); }}>Delete</${Button}>
      <${ProblemAlert} problem=${withdraw.problem} />
      ${conflict && html`
        <div class="alert warn" role="alert">
          <span>${conflict}</span>
          <${Button} kind="danger small" busy=${withdraw.busy} onClick=${() => withdraw.run(true)}>Withdraw and cancel its bookings</${Button}>
          <button type="button" class="button secondary small" onClick=${() => setConflict(null)}>Keep it</button>
        </div>`}
    </span>
  `;
}

export function AdminListingsPage({ session }) {
  const listings = useResource(() => api("GET", "/listings?limit=1000"), [], { every: 3000 });
  return html`
    <${PageTitle} actions=${html`<a class="button" href="#/admin/listings/new">New listing</a>`}>Listings</${PageTitle}>
    <${Loaded} resource=${listings} what="Loading listings">
      ${(items) => items.length === 0
        ? html`<${Empty}>Nothing on sale. <a href="#/admin/listings/new">Register the first listing.</a></${Empty}>`
        : html`
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Listings on sale</caption>
              <thead><tr><th scope="col">Title</th><th scope="col">Kind</th><th scope="col" class="num">Price</th><th scope="col">Availability</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
              <tbody>
                ${items.map((l) => html`
                  <tr key=${l.id}>
                    <td class="title"><a href=${`#/listings/${l.id}`}>${l.title}</a></td>
                    <td>${kindName(l.kind)}</td>
                    <td class="num">${money(l.price)}</td>
                    <td>${availability(l)}</td>
                    <td class="actions-cell">
                      <a class="button secondary small" href=${`#/admin/listings/${l.id}/edit`} aria-label=${`Edit ${l.title}`}>Edit</a>
                      <${WithdrawButton} listing=${l} session=${session} onDone=${listings.reload} />
                    </td>
                  </tr>`)}
              </tbody>
            </table>
          </div>`}
    </${Loaded}>
  `;
}

/** `datetime-local` ↔ RFC 3339. */
function toInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}
function fromInput(value) {
  return value ? new Date(value).toISOString() : null;
}

function SectionsEditor({ sections, onChange, error }) {
  const set = (i, key, value) => onChange(sections.map((s, j) => (i === j ? { ...s, [key]: value } : s)));
  return html`
    <fieldset class="sections">
      <legend>Sections <span class="hint">(optional: rows sold at their own price)</span></legend>
      ${sections.map((s, i) => html`
        <div class="section-row">
          <${Field} label=${`Section ${i + 1} name`} value=${s.name} onInput=${(e) => set(i, "name", e.currentTarget.value)} />
          <${Field} label="Price" type="number" min="0" inputmode="numeric" value=${s.price} onInput=${(e) => set(i, "price", e.currentTarget.value)} />
          <${Field} label="Rows" hint="Letters, e.g. A, B" value=${s.rows} onInput=${(e) => set(i, "rows", e.currentTarget.value)} />
          <button type="button" class="button secondary small" aria-label=${`Remove section ${i + 1}`} onClick=${() => onChange(sections.filter((_, j) => j !== i))}>Remove</button>
        </div>`)}
      <button type="button" class="button secondary small" onClick=${() => onChange([...sections, { name: "", price: "", rows: "" }])}>Add a section</button>
      ${error && html`<p class="field-error" role="alert">${error}</p>`}
    </fieldset>
  `;
}

const BLANK = {
  kind: "movie", title: "", description: "", price: "", startsAt: "", soldBy: "tickets", tickets: "100",
  screenId: "", rows: "", seatsPerRow: "", color: "", sections: [],
};

const int = (v) => (v === "" || v === null || v === undefined ? undefined : Number(v));

/** The request a form asks for: a whole listing to register. */
function registration(f) {
  const common = { kind: f.kind, price: int(f.price) };
  if (f.kind === "bike") {
    return { ...common, color: f.color, title: f.title || undefined };
  }
  const show = { ...common, title: f.title, description: f.description || undefined, startsAt: fromInput(f.startsAt) || undefined };
  if (f.kind === "musical") return { ...show, seating: seatMap(f) };
  if (f.soldBy === "tickets") return { ...show, tickets: int(f.tickets) };
  return { ...show, seating: f.screenId ? { screenId: f.screenId } : { rows: int(f.rows), seatsPerRow: int(f.seatsPerRow) } };
}

function seatMap(f) {
  const seating = { rows: int(f.rows), seatsPerRow: int(f.seatsPerRow) };
  if (f.sections.length) {
    seating.sections = f.sections.map((s) => ({
      name: s.name.trim(),
      price: int(s.price),
      rows: s.rows.split(/[\s,]+/).filter(Boolean).map((r) => r.toUpperCase()),
    }));
  }
  return seating;
}

/** The fields that changed since `was`: the body of a PATCH. */
function changes(f, was) {
  const out = {};
  if (f.title !== was.title) out.title = f.title;
  if (f.description !== was.description) out.description = f.description;
  if (f.price !== was.price) out.price = int(f.price);
  if (f.startsAt !== was.startsAt) out.startsAt = fromInput(f.startsAt);
  if (f.kind === "bike" && f.color !== was.color) out.color = f.color;
  if (f.kind === "musical" && JSON.stringify(seatMap(f)) !== JSON.stringify(seatMap(was))) out.seating = seatMap(f);
  return out;
}

/** A listing as the form edits it. */
function formOf(listing, seats) {
  const grid = seats ? layout(seats) : { rows: [], width: 0 };
  const sections = (listing.capacity.sections || []).map((s) => ({ name: s.name, price: String(s.price), rows: s.rows.join(", ") }));
  return {
    ...BLANK,
    kind: listing.kind,
    title: listing.title,
    description: listing.description || "",
    price: String(listing.price),
    startsAt: toInput(listing.startsAt),
    color: listing.color || "",
    rows: grid.rows.length ? String(grid.rows.length) : "",
    seatsPerRow: grid.width ? String(grid.width) : "",
    sections,
  };
}

function ListingForm({ session, listing, seats }) {
  const editing = Boolean(listing);
  const [was] = useState(() => (editing ? formOf(listing, seats) : BLANK));
  const [form, setForm] = useState(was);
  const [saved, setSaved] = useState(null);
  const screens = useResource(() => api("GET", "/screens?limit=1000", { token: session.token }), [session.token]);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.currentTarget.value }));
  const save = useSubmit(async () => {
    setSaved(null);
    if (editing) {
      const body = changes(form, was);
      if (Object.keys(body).length === 0) {
        setSaved("Nothing changed.");
        return null;
      }
      const answer = await api("PATCH", `/listings/${listing.id}`, { token: session.token, body });
      setSaved("Saved.");
      return answer;
    }
    const created = await api("POST", "/listings", { token: session.token, body: registration(form) });
    navigate(`/listings/${created.id}`);
    return created;
  });
  const blamed = blame(save.problem, FIELDS);
  const error = (field) => (blamed === field ? save.problem.detail : null);
  const kind = form.kind;
  const show = kind !== "bike";
  return html`
    <form class="panel form-grid" onSubmit=${(e) => { e.preventDefault(); save.run(); }} novalidate aria-label=${editing ? "Change listing" : "New listing"}>
      ${!blamed && html`<${ProblemAlert} problem=${save.problem} onRetry=${() => save.run()} />`}
      ${saved && html`<${Notice}>${saved}</${Notice}>`}
      <${Field} as="select" label="Kind" name="kind" value=${kind} onChange=${set("kind")} disabled=${editing}>
        <option value="movie">Movie</option>
        <option value="musical">Musical</option>
        <option value="bike">Bike</option>
      </${Field}>
      <${Field} label=${kind === "bike" ? "Title (optional)" : "Title"} name="title" value=${form.title} onInput=${set("title")} error=${error("title")}
        hint=${kind === "bike" && !editing ? "Left empty: “Bike” and its number." : null} />
      ${kind === "bike" && html`<${Field} label="Colour" name="color" value=${form.color} onInput=${set("color")} error=${error("color")} />`}
      ${show && html`<${Field} as="textarea" label="Description" name="description" rows="3" value=${form.description} onInput=${set("description")} error=${error("description")} />`}
      <${Field} label=${kind === "bike" ? "Rental price (points)" : kind === "musical" ? "Price (seats outside sections)" : "Price per ticket"} name="price"
        type="number" min="0" step="1" inputmode="numeric" value=${form.price} onInput=${set("price")} error=${error("price")}
        hint=${kind === "bike" && !editing ? "Left empty: 1,000 points." : null} />
      ${show && html`<${Field} label="Starts at" name="startsAt" type="datetime-local" value=${form.startsAt} onInput=${set("startsAt")} error=${error("startsAt")} />`}
      ${kind === "movie" && !editing && html`
        <fieldset class="sold-by">
          <legend>Sold by</legend>
          <label><input type="radio" name="soldBy" value="tickets" checked=${form.soldBy === "tickets"} onChange=${set("soldBy")} /> A ticket quota</label>
          <label><input type="radio" name="soldBy" value="seats" checked=${form.soldBy === "seats"} onChange=${set("soldBy")} /> Assigned seats on a screen</label>
        </fieldset>
        ${form.soldBy === "tickets"
          ? html`<${Field} label="Tickets" name="tickets" type="number" min="1" step="1" inputmode="numeric" value=${form.tickets} onInput=${set("tickets")} error=${error("tickets")} />`
          : html`
            <${Field} as="select" label="Screen" name="screenId" value=${form.screenId} onChange=${set("screenId")} error=${error("screenId")}>
              <option value="">Any free screen with the rows below</option>
              ${(screens.data || []).map((s) => html`<option value=${s.id}>${s.name} (${s.seats} seats)</option>`)}
            </${Field}>
            ${!form.screenId && html`<div class="row2">
              <${Field} label="Rows" name="rows" type="number" min="1" max="26" inputmode="numeric" value=${form.rows} onInput=${set("rows")} error=${error("rows")} />
              <${Field} label="Seats per row" name="seatsPerRow" type="number" min="1" max="99" inputmode="numeric" value=${form.seatsPerRow} onInput=${set("seatsPerRow")} error=${error("seatsPerRow")} />
            </div>`}`}`}
      ${kind === "musical" && html`
        <div class="row2">
          <${Field} label="Rows" name="rows" type="number" min="1" max="26" inputmode="numeric" value=${form.rows} onInput=${set("rows")} error=${error("rows")} />
          <${Field} label="Seats per row" name="seatsPerRow" type="number" min="1" max="99" inputmode="numeric" value=${form.seatsPerRow} onInput=${set("seatsPerRow")} error=${error("seatsPerRow")} />
        </div>
        <${SectionsEditor} sections=${form.sections} onChange=${(sections) => setForm((f) => ({ ...f, sections }))} error=${error("sections")} />`}
      <div class="form-actions">
        <${Button} type="submit" busy=${save.busy} busyText="Saving">${editing ? "Save changes" : `Register ${kindName(kind).toLowerCase()}`}</${Button}>
        <a class="button secondary" href="#/admin/listings">Back to listings</a>
      </div>
    </form>
  `;
}

export function ListingFormPage({ params, session }) {
  const id = params.id;
  const listing = useResource(() => (id ? api("GET", `/listings/${encodeURIComponent(id)}`) : Promise.resolve(null)), [id]);
  const seated = listing.data && listing.data.capacity.type === "seated";
  const seats = useResource(() => (seated ? api("GET", `/listings/${id}/seats`) : Promise.resolve(null)), [id, seated]);
  if (!id) {
    return html`<${PageTitle}>New listing</${PageTitle}><${ListingForm} session=${session} />`;
  }
  return html`
    <${PageTitle}>Change listing</${PageTitle}>
    <${Loaded} resource=${listing} what="Loading the listing">
      ${(l) => (seated && seats.data === undefined
        ? html`<p class="loading" role="status">Loading the seat map…</p>`
        : html`<${ListingForm} key=${l.id} session=${session} listing=${l} seats=${seats.data} />`)}
    </${Loaded}>
  `;
}

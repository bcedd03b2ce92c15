// My page: every booking of mine with its latest status, kept fresh.
import { useState } from "preact/hooks";
import { html } from "../html.js";
import { api } from "../api.js";
import { useResource } from "../hooks.js";
import { kindName, money, when } from "../format.js";
import { BookingActions } from "../components/booking-actions.js";
import { Empty, Loaded, PageTitle, StatusPill } from "../components/ui.js";

const REFRESH_MS = 2000;

export function BookingsPage({ session }) {
  const rows = useResource(() => api("GET", "/mypage/reservations?limit=1000", { token: session.token }), [session.token], { every: REFRESH_MS });
  const [requested, setRequested] = useState({});
  return html`
    <${PageTitle}>My bookings</${PageTitle}>
    <p class="hint">Statuses change here as the box office answers: no need to reload.</p>
    <${Loaded} resource=${rows} what="Loading your bookings">
      ${(items) => items.length === 0
        ? html`<${Empty}>No bookings yet. <a href="#/">Find something to book.</a></${Empty}>`
        : html`
          <div class="table-wrap">
            <table class="bookings">
              <caption class="visually-hidden">My bookings, newest first</caption>
              <thead><tr><th scope="col">What</th><th scope="col">Kind</th><th scope="col">Seats / qty</th><th scope="col" class="num">Amount</th><th scope="col">Status</th><th scope="col">Updated</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
              <tbody>
                ${[...items].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1)).map((b) => {
                  const asked = requested[b.reservationId];
                  const stillAsked = asked && (b.status === "pending" || b.status === "confirmed") ? asked : null;
                  return html`
                    <tr key=${b.reservationId} data-status=${b.status}>
                      <td class="title"><a href=${`#/bookings/${b.reservationId}`}>${b.title}</a></td>
                      <td>${kindName(b.kind)}</td>
                      <td>${b.seats.length ? b.seats.join(", ") : b.quantity}</td>
                      <td class="num">${money(b.amount)}</td>
                      <td><${StatusPill} status=${b.status} /></td>
                      <td><time datetime=${b.updatedAt}>${when(b.updatedAt)}</time></td>
                      <td><${BookingActions} id=${b.reservationId} kind=${b.kind} status=${b.status} session=${session}
                        requested=${stillAsked} onDone=${(what) => { setRequested((r) => ({ ...r, [b.reservationId]: what })); rows.reload(); }} /></td>
                    </tr>`;
                })}
              </tbody>
            </table>
          </div>`}
    </${Loaded}>
  `;
}

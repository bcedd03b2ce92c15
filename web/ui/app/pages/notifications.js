// What the box office told me (the messages a customer would get on their phone).
import { html } from "../html.js";
import { api } from "../api.js";
import { useResource } from "../hooks.js";
import { when } from "../format.js";
import { Empty, Loaded, PageTitle } from "../components/ui.js";

export function NotificationsPage({ session }) {
  const list = useResource(() => api("GET", "/notifications?limit=200", { token: session.token }), [session.token], { every: 3000 });
  return html`
    <${PageTitle}>Notifications</${PageTitle}>
    <${Loaded} resource=${list} what="Loading notifications">
      ${(items) => items.length === 0
        ? html`<${Empty}>Nothing yet. You hear from us when a booking is confirmed, refused or cancelled.</${Empty}>`
        : html`<ul class="notifications">
            ${[...items].sort((a, b) => (a.sentAt < b.sentAt ? 1 : -1)).map((n) => html`
              <li class="notification" data-kind=${n.kind}>
                <p>${n.message}</p>
                <p class="meta"><time datetime=${n.sentAt}>${when(n.sentAt)}</time> · ${n.channel} · <a href=${`#/bookings/${n.reservationId}`}>the booking</a></p>
              </li>`)}
          </ul>`}
    </${Loaded}>
  `;
}

// The app: a top bar with what the signed-in user may do, and the screen
// the URL's hash names.
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { html } from "./html.js";
import { match, useRoute } from "./router.js";
import { isAdmin, signOut, useSession } from "./session.js";
import { AuthPage } from "./pages/auth.js";
import { BrowsePage } from "./pages/browse.js";
import { ListingPage } from "./pages/listing.js";
import { BookingPage } from "./pages/booking.js";
import { BookingsPage } from "./pages/bookings.js";
import { PointsPage } from "./pages/points.js";
import { NotificationsPage } from "./pages/notifications.js";
import { AdminListingsPage, ListingFormPage } from "./pages/admin/listings.js";
import { ScreensPage } from "./pages/admin/screens.js";
import { DashboardPage } from "./pages/admin/dashboard.js";
import { DeadLettersPage } from "./pages/admin/dead-letters.js";
import { PaymentsPage } from "./pages/admin/payments.js";

const CUSTOMER_LINKS = [
  ["/", "Browse"],
  ["/bookings", "My bookings"],
  ["/points", "Points"],
  ["/notifications", "Notifications"],
];
const ADMIN_LINKS = [
  ["/admin/dashboard", "Dashboard"],
  ["/admin/listings", "Listings"],
  ["/admin/screens", "Screens"],
  ["/admin/payments", "Payments"],
  ["/admin/dead-letters", "Dead letters"],
];

/** Screens by route: [pattern, component, who may see it]. */
const SCREENS = [
  ["/", BrowsePage, "anyone"],
  ["/login", AuthPage, "anyone"],
  ["/signup", AuthPage, "anyone"],
  ["/listings/:id", ListingPage, "anyone"],
  ["/bookings", BookingsPage, "signed-in"],
  ["/bookings/:id", BookingPage, "signed-in"],
  ["/points", PointsPage, "signed-in"],
  ["/notifications", NotificationsPage, "signed-in"],
  ["/admin/dashboard", DashboardPage, "admin"],
  ["/admin/listings", AdminListingsPage, "admin"],
  ["/admin/listings/new", ListingFormPage, "admin"],
  ["/admin/listings/:id/edit", ListingFormPage, "admin"],
  ["/admin/screens", ScreensPage, "admin"],
  ["/admin/payments", PaymentsPage, "admin"],
  ["/admin/dead-letters", DeadLettersPage, "admin"],
];

function Nav({ path, session }) {
  const links = session ? (isAdmin(session) ? [["/", "Browse"], ...ADMIN_LINKS] : CUSTOMER_LINKS) : [["/", "Browse"]];
  const bare = path.split("?")[0];
  const current = (to) => (to === "/" ? bare === "/" || bare.startsWith("/listings/") : bare.startsWith(to));
  return html`
    <nav aria-label="Main">
      <ul>
        ${links.map(([to, text]) => html`
          <li><a href=${`#${to}`} aria-current=${current(to) ? "page" : undefined}>${text}</a></li>`)}
      </ul>
    </nav>
  `;
}

function TopBar({ path, session }) {
  return html`
    <header class="topbar">
      <a class="brand" href="#/">box<span>office</span></a>
      <${Nav} path=${path} session=${session} />
      <div class="who">
        ${session
          ? html`<span class="username">${session.user.username}</span>${isAdmin(session) && html`<span class="role">Admin</span>`}
              <button type="button" class="button ghost small" onClick=${() => signOut()}>Log out</button>`
          : html`<a class="button ghost small" href="#/login">Log in</a>
              <a class="button small" href="#/signup">Sign up</a>`}
      </div>
    </header>
  `;
}

function Screen({ path, session }) {
  for (const [pattern, Component, who] of SCREENS) {
    const params = match(pattern, path);
    if (!params) continue;
    if (who !== "anyone" && !session) {
      return html`<${AuthPage} path="/login" params=${{ next: path }} reason="Log in to see this page." />`;
    }
    if (who === "admin" && !isAdmin(session)) {
      return html`<section class="panel"><h1 tabindex="-1">Admins only</h1><p>This page is for the box office's admins.</p></section>`;
    }
    return html`<${Component} path=${path} params=${params} session=${session} />`;
  }
  return html`<section class="panel"><h1 tabindex="-1">Not found</h1><p>There is nothing at <code>${path}</code>. <a href="#/">Browse what is on sale</a>.</p></section>`;
}

function App() {
  const path = useRoute();
  const session = useSession();
  // A new screen: move focus to its heading, as a page load would.
  useEffect(() => {
    const heading = document.querySelector("main h1");
    if (heading && document.activeElement !== heading) heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [path]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.querySelector("main h1")?.focus(); }}>Skip to content</a>
    <${TopBar} path=${path} session=${session} />
    <main id="main"><${Screen} path=${path} session=${session} /></main>
    <footer class="footer">
      <a href="/docs">API docs</a> · <a href="/openapi.json">OpenAPI</a> · <a href="/asyncapi.json">Event catalogue (AsyncAPI)</a>
    </footer>
  `;
}

render(html`<${App} />`, document.getElementById("app"));

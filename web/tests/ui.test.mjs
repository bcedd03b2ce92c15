// The product lines' walkthroughs through the web UI, in a real browser:
// S0 quota tickets, S1 seats on a screen (and the seat race seen from two
// browsers), S2 musicals, S3 bikes with points, the breaker demo, the
// dashboard, and a phone-sized screen. Each main screen is checked with
// axe-core and saved as a screenshot.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  accessibilityProblems, go, launch, logInAdmin, openApp, shot, signUp, textOf, unique, until,
} from "./browser.mjs";

let browser;
let admin;

before(async () => {
  browser = await launch();
  admin = await openApp(browser);
  await logInAdmin(admin);
});

after(async () => {
  await browser?.close();
});

/** Screenshot plus accessibility check of the screen `page` shows. */
async function screen(page, name) {
  await shot(page, name);
  const problems = await accessibilityProblems(page);
  assert.deepEqual(problems, [], `axe-core on ${name}`);
  assert.deepEqual(page.errors, [], `errors in the page on ${name}`);
}

async function customer(prefix, options) {
  const page = await openApp(browser, options);
  await signUp(page, unique(prefix));
  return page;
}

/** Registers a listing through the admin form; `fill` fills it in. Its id. */
async function newListing(fill) {
  await go(admin, "#/admin/listings/new");
  await fill(admin);
  await admin.getByRole("button", { name: /^Register/ }).click();
  await until("the new listing's page", () => admin.evaluate(() => location.hash.startsWith("#/listings/")));
  return admin.evaluate(() => location.hash.split("/")[2]);
}

async function movieByQuota(title, tickets, price = "12000") {
  return newListing(async (page) => {
    await page.getByLabel("Title", { exact: true }).fill(title);
    await page.getByLabel("Price per ticket", { exact: true }).fill(price);
    await page.getByLabel("Tickets", { exact: true }).fill(String(tickets));
  });
}

/** Books on the listing page and waits for the booking's own page. Its id. */
async function submitBooking(page, buttonName) {
  await page.getByRole("button", { name: buttonName }).click();
  await until("the booking page", () => page.evaluate(() => location.hash.startsWith("#/bookings/")));
  return page.evaluate(() => location.hash.split("/")[2]);
}

async function bookingStatus(page, pattern) {
  return textOf("the booking's status", page.locator(".status-line .pill"), pattern);
}

function seat(page, label) {
  return page.locator(`[data-seat="${label}"]`);
}

test("S0: an admin puts a movie on sale; a customer books, is refused past the quota, cancels", async () => {
  // A mistake is explained next to the field, and nothing is registered.
  await go(admin, "#/admin/listings/new");
  await admin.getByLabel("Price per ticket", { exact: true }).fill("12000");
  await admin.getByRole("button", { name: /^Register/ }).click();
  const titleError = admin.locator(".field.invalid .field-error");
  await textOf("the title's error", titleError, /title/i);
  await until("focus on the field to fix", () => admin.evaluate(() => document.activeElement.labels?.[0]?.textContent === "Title"));
  await screen(admin, "admin-new-listing-error");

  const title = unique("Dune");
  const movie = await movieByQuota(title, 3);
  await screen(admin, "listing-admin-view");

  const page = await customer("ui-s0");
  await go(page, "#/?kind=movie");
  const card = page.locator(".card", { hasText: title });
  await textOf("availability on the card", card.locator(".availability"), /3 of 3 tickets left/);
  await screen(page, "browse");

  await card.getByRole("link", { name: title }).click();
  await page.getByLabel("Tickets", { exact: true }).fill("0");
  await page.getByRole("button", { name: /^Book/ }).click();
  await textOf("the quantity's error", page.locator(".field.invalid .field-error"), /quantity/i);
  await page.getByLabel("Tickets", { exact: true }).fill("2");
  await screen(page, "listing-quota");
  const first = await submitBooking(page, "Book 2 tickets");
  await bookingStatus(page, /Confirmed/);
  await screen(page, "booking-confirmed");

  // One ticket is left: asking for two ends rejected, with the reason.
  await go(page, `#/listings/${movie}`);
  await textOf("availability", page.locator(".listing-detail .availability"), /1 of 3/);
  await page.getByLabel("Tickets", { exact: true }).fill("2");
  await submitBooking(page, "Book 2 tickets");
  await bookingStatus(page, /Rejected/);
  await textOf("the reason", page.locator(".reason"), /sold out|not enough|left/i);
  await screen(page, "booking-rejected");

  await go(page, "#/bookings");
  const row = page.locator(`tr:has(a[href="#/bookings/${first}"])`);
  await textOf("my page's status", row.locator(".pill"), /Confirmed/);
  await screen(page, "my-bookings");

  page.once("dialog", (dialog) => dialog.accept());
  await row.getByRole("button", { name: "Cancel" }).click();
  await textOf("my page after cancelling", row.locator(".pill"), /Cancelled/);
  await go(page, "#/notifications");
  await textOf("the notifications", page.locator(".notifications"), /cancel/i);
  await screen(page, "notifications");
  await go(page, `#/listings/${movie}`);
  await textOf("availability after the cancel", page.locator(".listing-detail .availability"), /3 of 3/);
});

let showing;

test("S1: a screen, a seated showing, and a seat picked with the keyboard", async () => {
  const screenName = unique("Hall");
  await go(admin, "#/admin/screens");
  await admin.getByLabel("Name", { exact: true }).fill(screenName);
  await admin.getByLabel("Rows", { exact: true }).fill("3");
  await admin.getByLabel("Seats per row", { exact: true }).fill("4");
  await admin.getByLabel("Blocked seats", { exact: true }).fill("A-1");
  await admin.getByRole("button", { name: "Register screen" }).click();
  await textOf("the screen registered", admin.locator(".alert.info"), /11 seats/);
  await admin.locator("td", { hasText: screenName }).waitFor();
  await screen(admin, "admin-screens");

  const title = unique("Oppenheimer");
  showing = await newListing(async (page) => {
    await page.getByLabel("Title", { exact: true }).fill(title);
    await page.getByLabel("Price per ticket", { exact: true }).fill("15000");
    await page.getByLabel("Assigned seats on a screen", { exact: true }).check();
    await page.getByLabel("Screen", { exact: true }).selectOption({ label: `${screenName} (11 seats)` });
  });

  const page = await customer("ui-s1");
  await go(page, `#/listings/${showing}`);
  await seat(page, "A-2").waitFor();
  assert.equal(await seat(page, "A-1").count(), 0, "a blocked seat is a gap");
  // The first free seat is in the tab order; arrows move, Space picks.
  await seat(page, "A-2").focus();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("Space");
  assert.equal(await seat(page, "A-3").getAttribute("aria-pressed"), "true");
  await textOf("the chosen seats", page.locator(".chosen"), /A-3/);
  await screen(page, "seat-map");
  await submitBooking(page, "Book 1 seat");
  await bookingStatus(page, /Confirmed/);
  await go(page, `#/listings/${showing}`);
  await until("A-3 shown sold", async () => (await seat(page, "A-3").getAttribute("data-status")) === "sold");
});

test("the seat race: two customers pick B-1 at once; one gets it, the other sees it taken", async () => {
  const [one, two] = [await customer("ui-race-a"), await customer("ui-race-b")];
  for (const page of [one, two]) {
    await go(page, `#/listings/${showing}`);
    await seat(page, "B-1").click();
    await textOf("the chosen seat", page.locator(".chosen"), /B-1/);
  }
  await Promise.all([one, two].map((page) => page.getByRole("button", { name: "Book 1 seat" }).click()));
  const outcomes = await Promise.all([one, two].map(async (page) => {
    await until("the booking page", () => page.evaluate(() => location.hash.startsWith("#/bookings/")));
    return bookingStatus(page, /Confirmed|Rejected/);
  }));
  assert.deepEqual([...outcomes].sort(), ["Confirmed", "Rejected"], "exactly one gets the seat");
  const loser = outcomes[0] === "Rejected" ? one : two;
  const winner = loser === one ? two : one;
  await textOf("the loser's reason", loser.locator(".reason"), /B-1 is taken/);
  await screen(winner, "seat-race-winner");
  await screen(loser, "seat-race-loser");
  await go(loser, `#/listings/${showing}`);
  await until("B-1 shown sold to the loser", async () => (await seat(loser, "B-1").getAttribute("data-status")) === "sold");
});

test("S2: a musical with a VIP section is booked, renamed, then withdrawn with its bookings cancelled", async () => {
  const title = unique("Les Miserables");
  const musical = await newListing(async (page) => {
    await page.getByLabel("Kind", { exact: true }).selectOption("musical");
    await page.getByLabel("Title", { exact: true }).fill(title);
    await page.getByLabel("Price (seats outside sections)", { exact: true }).fill("90000");
    await page.getByLabel("Rows", { exact: true }).fill("3");
    await page.getByLabel("Seats per row", { exact: true }).fill("6");
    await page.getByRole("button", { name: "Add a section" }).click();
    await page.getByLabel("Section 1 name", { exact: true }).fill("VIP");
    await page.locator(".section-row").getByLabel("Price", { exact: true }).fill("150000");
    await page.locator(".section-row").getByLabel("Rows", { exact: true }).fill("A");
    await shot(page, "admin-new-musical");
  });

  const page = await customer("ui-s2");
  await go(page, `#/listings/${musical}`);
  const vip = seat(page, "A-1");
  await vip.waitFor();
  assert.match(await vip.getAttribute("aria-label"), /150,000, VIP/);
  await vip.click();
  await textOf("the total", page.locator(".total"), /150,000/);
  const booking = await submitBooking(page, "Book 1 seat");
  await bookingStatus(page, /Confirmed/);

  await go(admin, `#/admin/listings/${musical}/edit`);
  const renamed = `${title} (encore)`;
  await admin.getByLabel("Title", { exact: true }).fill(renamed);
  await admin.getByRole("button", { name: "Save changes" }).click();
  await textOf("saved", admin.locator(".alert.info"), /Saved/);
  await screen(admin, "admin-edit-listing");
  await go(page, "#/bookings");
  await textOf("the new title on my page", page.locator(`tr:has(a[href="#/bookings/${booking}"])`), /encore/);

  await go(admin, "#/admin/listings");
  const row = admin.locator("tr", { hasText: renamed });
  admin.once("dialog", (dialog) => dialog.accept());
  await row.getByRole("button", { name: "Delete" }).click();
  await textOf("the refusal naming the bookings", row.locator(".alert.warn"), /reservation|booking/i);
  await screen(admin, "admin-listings-withdraw");
  await row.getByRole("button", { name: "Withdraw and cancel its bookings" }).click();
  await until("the musical gone from the list", async () => (await admin.locator("tr", { hasText: renamed }).count()) === 0);
  await go(page, `#/bookings/${booking}`);
  await bookingStatus(page, /Cancelled/);
});

test("S3: a customer buys points, rents a bike with them and returns it", async () => {
  const bike = await newListing(async (page) => {
    await page.getByLabel("Kind", { exact: true }).selectOption("bike");
    await page.getByLabel("Colour", { exact: true }).fill("red");
  });
  const page = await customer("ui-s3");
  await go(page, "#/points");
  await textOf("an empty balance", page.getByTestId("balance"), /^0 pts$/);
  await page.getByLabel("Points", { exact: true }).fill("3000");
  await page.getByRole("button", { name: /^Buy/ }).click();
  await textOf("the new balance", page.getByTestId("balance"), /^3,000 pts$/);
  await screen(page, "points");

  await go(page, "#/?kind=bike");
  await page.locator(`.card:has(a[href="#/listings/${bike}"])`).getByRole("link").click();
  await textOf("the bike's colour", page.locator(".listing-detail"), /red/);
  await screen(page, "bike");
  const rental = await submitBooking(page, /^Rent for 1,000 pts/);
  await bookingStatus(page, /Confirmed/);
  await go(page, "#/points");
  await textOf("the balance after renting", page.getByTestId("balance"), /^2,000 pts$/);
  await go(page, `#/bookings/${rental}`);
  await page.getByRole("button", { name: "Return bike" }).click();
  await bookingStatus(page, /Returned/);
  await screen(page, "bike-returned");
  await go(page, `#/listings/${bike}`);
  await textOf("the bike free again", page.locator(".listing-detail .availability"), /Available/);
});

test("the breaker demo: payment down opens the breaker, bookings are refused at once, then it closes", async () => {
  const title = unique("Breaker matinee");
  const movie = await movieByQuota(title, 50, "5000");
  await go(admin, "#/admin/payments");
  const breaker = admin.locator('.breakers li[data-caller="reservation"]');
  await textOf("the breaker closed", breaker.locator(".pill"), /Closed/);
  await admin.getByRole("button", { name: "Down", exact: true }).click();
  await textOf("the provider set", admin.locator(".alert.info"), /behaves as set/);

  const page = await customer("ui-breaker");
  await go(page, `#/listings/${movie}`);
  await page.getByLabel("Tickets", { exact: true }).fill("1");
  const refusal = page.locator(".alert.error");
  await until("the breaker open", async () => {
    await page.getByRole("button", { name: /^Book/ }).click();
    await refusal.waitFor({ timeout: 10000 });
    await textOf("the refusal", refusal, /payment is unavailable/);
    return /Open/.test(await breaker.locator(".pill").innerText());
  }, 60000);
  await screen(page, "breaker-refused");
  await screen(admin, "breaker-open");

  await admin.getByRole("button", { name: "Healthy" }).click();
  await textOf("the breaker letting a trial through", breaker.locator(".pill"), /Half-open/);
  await submitBooking(page, /^Book/);
  await bookingStatus(page, /Confirmed/);
  await textOf("the breaker closed again", breaker.locator(".pill"), /Closed/);
});

test("the dashboard follows bookings live, with charts", async () => {
  const title = unique("Dashboard premiere");
  const movie = await movieByQuota(title, 10);
  await go(admin, "#/admin/dashboard");
  await textOf("live", admin.locator(".live"), /Live/);
  const row = admin.locator(`tr[data-listing="${movie}"]`);
  await textOf("nothing sold yet", row.locator('[data-col="sold"]'), /^0$/);
  const page = await customer("ui-dash");
  await go(page, `#/listings/${movie}`);
  await page.getByLabel("Tickets", { exact: true }).fill("4");
  await submitBooking(page, "Book 4 tickets");
  await bookingStatus(page, /Confirmed/);
  // No reload: the stream brings the change.
  await textOf("four sold", row.locator('[data-col="sold"]'), /^4$/);
  await textOf("six left", row.locator('[data-col="available"]'), /^6$/);
  assert.ok(await admin.locator(".chart svg[role=img]").count() >= 2, "the charts are drawn");
  await screen(admin, "dashboard");
});

test("the other admin screens: listings, dead letters", async () => {
  await go(admin, "#/admin/listings");
  await admin.locator("table").waitFor();
  await screen(admin, "admin-listings");
  await go(admin, "#/admin/dead-letters");
  await textOf("the list", admin.locator("main"), /None: every event was taken in|Replay/);
  await screen(admin, "admin-dead-letters");
});

test("the interactive API docs render every operation from the binary", async () => {
  const page = await openApp(browser);
  await page.goto("/docs");
  await until("the operations listed", async () => (await page.locator(".opblock").count()) >= 30);
  await page.locator(".opblock-summary-path", { hasText: "/reservations" }).first().waitFor();
  await shot(page, "api-docs");
  assert.deepEqual(page.errors, [], "errors in the docs page");
});

test("on a phone-sized screen nothing spills sideways and the seat map is usable", async () => {
  const page = await customer("ui-phone", { viewport: { width: 390, height: 844 } });
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  await go(page, "#/");
  await page.locator(".card").first().waitFor();
  assert.ok(await fits(), "the listings fit the screen");
  await screen(page, "phone-browse");
  await go(page, `#/listings/${showing}`);
  await seat(page, "C-4").waitFor();
  assert.ok(await fits(), "the seat map fits the screen");
  await seat(page, "C-4").click();
  await textOf("the chosen seat", page.locator(".chosen"), /C-4/);
  await screen(page, "phone-seat-map");
  await go(page, "#/bookings");
  assert.ok(await fits(), "my bookings fit the screen");
  await screen(page, "phone-my-bookings");
});

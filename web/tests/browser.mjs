// What the UI tests share: Debian's chromium driven by playwright-core
// (never a downloaded browser), screenshots, waiting, and axe-core.
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

export const BASE = (process.env.BOXOFFICE_UI_URL || "http://127.0.0.1:8088").replace(/\/$/, "");
export const ADMIN_PASSWORD = process.env.BOXOFFICE_ADMIN_PASSWORD || "";
const SHOTS = process.env.BOXOFFICE_UI_SCREENSHOTS || path.resolve(import.meta.dirname, "../../target/ui-screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** How long a condition may take to come true (the saga runs in the background). */
export const PATIENCE_MS = Number(process.env.BOXOFFICE_UI_PATIENCE_MS || 20000);

export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No network beyond loopback here: keep chromium from calling home.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}

/** A fresh browser context (its own storage: one user) and a page on the app. */
export async function openApp(browser, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, baseURL: BASE });
  const page = await context.newPage();
  page.setDefaultTimeout(PATIENCE_MS);
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !/status of (4\d\d|503)/.test(message.text())) page.errors.push(message.text());
  });
  await page.goto("/");
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Waits until `check()` is truthy (retrying on throw), or fails saying `what`. */
export async function until(what, check, ms = PATIENCE_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/** The visible text of `locator` once it matches `pattern`. */
export async function textOf(what, locator, pattern) {
  return until(`${what} to read ${pattern}`, async () => {
    const text = await locator.innerText({ timeout: 1000 });
    return pattern.test(text) ? text : null;
  });
}

export async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator("main h1").first().waitFor();
}

export async function signUp(page, username, password = "correct-horse-1") {
  await go(page, "#/signup");
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByText(username, { exact: true }).waitFor();
}

export async function logIn(page, username, password) {
  await go(page, "#/login");
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await page.getByText(username, { exact: true }).first().waitFor();
}

export async function logInAdmin(page) {
  await logIn(page, "admin", ADMIN_PASSWORD);
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
}

/** axe-core on the current screen: its serious and critical violations. */
export async function accessibilityProblems(page) {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}

/** A name no earlier run used (the tests may run against a long-lived platform). */
export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1000)}`;
}

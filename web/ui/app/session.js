// Who is signed in: the token from `POST /auth/token`, kept in
// localStorage, and what it says about its holder (its claims are read,
// not trusted: the gateway checks the token on every request).
import { useEffect, useState } from "preact/hooks";
import { whenUnauthorized } from "./api.js";

const KEY = "boxoffice.token";
const listeners = new Set();
let current = restore();
let notice = null;

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      [...atob(part)].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function sessionOf(token) {
  const c = token && claims(token);
  if (!c || !c.sub || (c.exp && c.exp * 1000 <= Date.now())) return null;
  return { token, user: { id: c.sub, username: c.name, role: c.role }, expiresAt: c.exp * 1000 };
}

function restore() {
  try {
    return sessionOf(localStorage.getItem(KEY));
  } catch {
    return null;
  }
}

function emit() {
  for (const listener of listeners) listener(current);
}

export function session() {
  return current;
}

export function isAdmin(s = current) {
  return Boolean(s && s.user.role === "admin");
}

export function signIn(token) {
  current = sessionOf(token);
  notice = null;
  localStorage.setItem(KEY, token);
  emit();
  return current;
}

export function signOut(why = null) {
  current = null;
  notice = why;
  localStorage.removeItem(KEY);
  emit();
}

/** Why the last session ended, if it was not the user's choice (shown once). */
export function takeNotice() {
  const n = notice;
  notice = null;
  return n;
}

whenUnauthorized(() => signOut("Your session has ended. Log in again to go on."));

/** The session, re-rendering the component when it changes. */
export function useSession() {
  const [s, set] = useState(current);
  useEffect(() => {
    listeners.add(set);
    return () => listeners.delete(set);
  }, []);
  return s;
}

// Routes live in the URL's hash (`#/listings/42`): the gateway serves one
// page at `/`, and a link can be shared or reloaded.
import { useEffect, useState } from "preact/hooks";

function here() {
  return decodeURI(location.hash.replace(/^#/, "")) || "/";
}

export function useRoute() {
  const [path, setPath] = useState(here());
  useEffect(() => {
    const follow = () => setPath(here());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return path;
}

export function navigate(path) {
  location.hash = path;
}

/** `pattern` ("/listings/:id") against `path`: its parameters, or null. */
export function match(pattern, path) {
  const [bare, query = ""] = path.split("?");
  const want = pattern.split("/");
  const got = bare.split("/");
  if (want.length !== got.length) return null;
  const params = Object.fromEntries(new URLSearchParams(query));
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

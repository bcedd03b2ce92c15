// Loading and submitting, the same way on every screen: what is shown
// while a request is in flight, after it failed, and how it is retried.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { asProblem } from "./api.js";

/**
 * Loads with `load()` whenever `deps` change, and again every `every` ms
 * while the page is visible (a poll never overlaps the previous one).
 * Keeps the last good data while a reload fails.
 */
export function useResource(load, deps, { every = 0 } = {}) {
  const [state, setState] = useState({ data: undefined, problem: null, loading: true });
  const generation = useRef(0);
  const inFlight = useRef(false);
  const fetchNow = useCallback(async () => {
    if (inFlight.current) return;
    inFlight.current = true;
    const mine = generation.current;
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, problem: null, loading: false });
    } catch (error) {
      if (error && error.name === "AbortError") return;
      if (mine === generation.current) {
        setState((s) => ({ data: s.data, problem: asProblem(error), loading: false }));
      }
    } finally {
      inFlight.current = false;
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    generation.current += 1;
    inFlight.current = false;
    setState({ data: undefined, problem: null, loading: true });
    fetchNow();
    if (!every) return () => (generation.current += 1);
    const timer = setInterval(() => {
      if (!document.hidden) fetchNow();
    }, every);
    return () => {
      clearInterval(timer);
      generation.current += 1;
    };
  }, [fetchNow, every]);
  return { ...state, reload: fetchNow };
}

/**
 * A submit: `busy` while it runs (buttons are disabled, a second click does
 * nothing), its `problem` if it was refused. `run` resolves to the
 * action's result, or `undefined` when it failed.
 */
export function useSubmit(action) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const running = useRef(false);
  const run = async (...args) => {
    if (running.current) return undefined;
    running.current = true;
    setBusy(true);
    setProblem(null);
    try {
      return await action(...args);
    } catch (error) {
      setProblem(asProblem(error));
      return undefined;
    } finally {
      running.current = false;
      setBusy(false);
    }
  };
  return { busy, problem, run, clear: () => setProblem(null) };
}

/** Re-renders every `ms` (for countdowns). */
export function useTicker(ms, on = true) {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!on) return undefined;
    const timer = setInterval(() => setTick((t) => t + 1), ms);
    return () => clearInterval(timer);
  }, [ms, on]);
}

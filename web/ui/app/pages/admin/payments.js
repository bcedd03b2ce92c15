// Admins: steer the built-in payment provider (slow, failing, down) and
// watch the circuit breakers in front of it open and close.
import { useState } from "preact/hooks";
import { html } from "../../html.js";
import { api, blame } from "../../api.js";
import { useResource, useSubmit } from "../../hooks.js";
import { money, when } from "../../format.js";
import { Button, Check, Field, Loaded, Notice, PageTitle, ProblemAlert, StatusPill } from "../../components/ui.js";

const PRESETS = [
  ["Healthy", { latencyMs: 0, failureRate: 0, down: false }],
  ["Slow (2 s)", { latencyMs: 2000, failureRate: 0, down: false }],
  ["Flaky (50 %)", { latencyMs: 0, failureRate: 0.5, down: false }],
  ["Down", { latencyMs: 0, failureRate: 0, down: true }],
];

const FIELDS = { latencyMs: ["latencyMs", "latency"], failureRate: ["failureRate", "failure"], declineAbove: ["declineAbove", "decline"] };

function ProviderForm({ session, current }) {
  const [form, setForm] = useState(() => ({
    latencyMs: String(current.latencyMs),
    failureRate: String(current.failureRate),
    down: current.down,
    declineAbove: current.declineAbove === null || current.declineAbove === undefined ? "" : String(current.declineAbove),
  }));
  const [saved, setSaved] = useState(null);
  const save = useSubmit(async (values) => {
    setSaved(null);
    const body = {
      latencyMs: Number(values.latencyMs),
      failureRate: Number(values.failureRate),
      down: Boolean(values.down),
      declineAbove: values.declineAbove === "" ? null : Number(values.declineAbove),
    };
    const answer = await api("PUT", "/admin/payment-provider", { token: session.token, body });
    setSaved("The provider behaves as set.");
    return answer;
  });
  const blamed = blame(save.problem, FIELDS);
  const error = (f) => (blamed === f ? save.problem.detail : null);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value }));
  const preset = (values) => {
    const next = { ...form, ...Object.fromEntries(Object.entries(values).map(([k, v]) => [k, typeof v === "boolean" ? v : String(v)])) };
    setForm(next);
    save.run(next);
  };
  return html`
    <form class="panel" onSubmit=${(e) => { e.preventDefault(); save.run(form); }} novalidate aria-label="Payment provider">
      <h2>Payment provider</h2>
      <div class="presets" role="group" aria-label="Presets">
        ${PRESETS.map(([name, values]) => html`<button type="button" class="button secondary small" disabled=${save.busy} onClick=${() => preset(values)}>${name}</button>`)}
      </div>
      ${!blamed && html`<${ProblemAlert} problem=${save.problem} />`}
      ${saved && html`<${Notice}>${saved}</${Notice}>`}
      <${Field} label="Latency (ms)" name="latencyMs" type="number" min="0" max="60000" step="50" inputmode="numeric" value=${form.latencyMs} onInput=${set("latencyMs")} error=${error("latencyMs")}
        hint="Every call waits this long. Past the caller's timeout it counts as a failure." />
      <${Field} label="Failure rate (0 to 1)" name="failureRate" type="number" min="0" max="1" step="0.05" inputmode="decimal" value=${form.failureRate} onInput=${set("failureRate")} error=${error("failureRate")} />
      <${Field} label="Decline cards above" name="declineAbove" type="number" min="0" step="1" inputmode="numeric" value=${form.declineAbove} onInput=${set("declineAbove")} error=${error("declineAbove")} hint="Empty: never decline." />
      <${Check} label="Down: every call fails" name="down" checked=${form.down} onChange=${set("down")} />
      <${Button} type="submit" busy=${save.busy} busyText="Saving">Apply</${Button}>
    </form>
  `;
}

const STATE_TEXT = { closed: "Closed", open: "Open", "half-open": "Half-open" };

function Breakers({ session }) {
  const breakers = useResource(() => api("GET", "/admin/circuit-breakers", { token: session.token }), [session.token], { every: 1000 });
  return html`
    <section class="panel" aria-labelledby="breakers-heading">
      <h2 id="breakers-heading">Circuit breakers</h2>
      <p class="hint">A breaker opens after consecutive failures to reach payment: callers are then refused at once (“payment is unavailable”) instead of waiting; after its pause one call is let through, and the first success closes it.</p>
      <${Loaded} resource=${breakers} what="Loading breakers">
        ${(items) => html`<ul class="breakers">
          ${items.map((b) => html`
            <li key=${`${b.caller}/${b.dependency}`} data-caller=${b.caller} data-state=${b.state}>
              <div><strong>${b.caller} → ${b.dependency}</strong> <${StatusPill} status=${`breaker-${b.state}`}>${STATE_TEXT[b.state] || b.state}</${StatusPill}></div>
              <p class="muted small">Since ${when(b.since)} · opens after ${b.failuresToOpen} failures · timeout ${money(b.timeoutMs)} ms · pause ${money(b.openForMs)} ms</p>
              ${b.state !== "closed" && html`<p class="small">${b.whileOpen}.</p>`}
            </li>`)}
        </ul>`}
      </${Loaded}>
    </section>
  `;
}

export function PaymentsPage({ session }) {
  const provider = useResource(() => api("GET", "/admin/payment-provider", { token: session.token }), [session.token]);
  return html`
    <${PageTitle}>Payments</${PageTitle}>
    <p class="hint">To see the breaker work: set the provider <em>Down</em>, then book with a card as a customer. The first bookings wait for the timeout and fail; then the breaker opens and the next are refused at once. Set it <em>Healthy</em> again and the next booking closes it.</p>
    <div class="two-columns">
      <${Loaded} resource=${provider} what="Loading the provider">
        ${(current) => html`<${ProviderForm} session=${session} current=${current} />`}
      </${Loaded}>
      <${Breakers} session=${session} />
    </div>
  `;
}

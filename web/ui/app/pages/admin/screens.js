// Admins: the screens seated movies play on.
import { useState } from "preact/hooks";
import { html } from "../../html.js";
import { api, blame } from "../../api.js";
import { useResource, useSubmit } from "../../hooks.js";
import { count, when } from "../../format.js";
import { Button, Empty, Field, Loaded, Notice, PageTitle, ProblemAlert } from "../../components/ui.js";

const FIELDS = { name: ["name"], rows: ["rows"], seatsPerRow: ["seatsPerRow", "seats per row"], blocked: ["blocked"] };

function RegisterScreen({ session, onDone }) {
  const [form, setForm] = useState({ name: "", rows: "8", seatsPerRow: "12", blocked: "" });
  const [done, setDone] = useState(null);
  const set = (key) => (e) => setForm((f) => ({ ...f, [key]: e.currentTarget.value }));
  const save = useSubmit(async () => {
    setDone(null);
    const blocked = form.blocked.split(/[\s,]+/).filter(Boolean).map((s) => s.toUpperCase());
    const screen = await api("POST", "/screens", {
      token: session.token,
      body: { name: form.name, rows: Number(form.rows), seatsPerRow: Number(form.seatsPerRow), blocked },
    });
    setDone(`${screen.name} registered: ${screen.seats} seats.`);
    setForm((f) => ({ ...f, name: "", blocked: "" }));
    onDone();
  });
  const blamed = blame(save.problem, FIELDS);
  const error = (f) => (blamed === f ? save.problem.detail : null);
  return html`
    <form class="panel" onSubmit=${(e) => { e.preventDefault(); save.run(); }} novalidate aria-label="Register a screen">
      <h2>Register a screen</h2>
      ${!blamed && html`<${ProblemAlert} problem=${save.problem} />`}
      ${done && html`<${Notice}>${done}</${Notice}>`}
      <${Field} label="Name" name="name" value=${form.name} onInput=${set("name")} error=${error("name")} />
      <div class="row2">
        <${Field} label="Rows" name="rows" type="number" min="1" max="26" inputmode="numeric" value=${form.rows} onInput=${set("rows")} error=${error("rows")} hint="Lettered A… from the front." />
        <${Field} label="Seats per row" name="seatsPerRow" type="number" min="1" max="99" inputmode="numeric" value=${form.seatsPerRow} onInput=${set("seatsPerRow")} error=${error("seatsPerRow")} />
      </div>
      <${Field} label="Blocked seats" name="blocked" value=${form.blocked} onInput=${set("blocked")} error=${error("blocked")} hint="Never sold, e.g. A-1, A-12." />
      <${Button} type="submit" busy=${save.busy} busyText="Registering">Register screen</${Button}>
    </form>
  `;
}

export function ScreensPage({ session }) {
  const screens = useResource(() => api("GET", "/screens?limit=1000", { token: session.token }), [session.token]);
  return html`
    <${PageTitle}>Screens</${PageTitle}>
    <div class="two-columns">
      <section class="panel" aria-labelledby="screens-heading">
        <h2 id="screens-heading">Screens</h2>
        <${Loaded} resource=${screens} what="Loading screens">
          ${(items) => items.length === 0
            ? html`<${Empty}>No screens yet. A seated movie needs one.</${Empty}>`
            : html`<div class="table-wrap"><table>
                <thead><tr><th scope="col">Name</th><th scope="col">Grid</th><th scope="col" class="num">Seats</th><th scope="col">Blocked</th><th scope="col">Since</th></tr></thead>
                <tbody>${items.map((s) => html`<tr key=${s.id}><td>${s.name}</td><td>${s.rows} × ${s.seatsPerRow}</td><td class="num">${count(s.seats)}</td><td>${s.blocked.join(", ") || "—"}</td><td>${when(s.createdAt)}</td></tr>`)}</tbody>
              </table></div>`}
        </${Loaded}>
      </section>
      <${RegisterScreen} session=${session} onDone=${screens.reload} />
    </div>
  `;
}

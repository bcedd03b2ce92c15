// Admins: events a consumer gave up on, and replaying one once its cause is fixed.
import { html } from "../../html.js";
import { api } from "../../api.js";
import { useResource, useSubmit } from "../../hooks.js";
import { when } from "../../format.js";
import { Button, Empty, Loaded, PageTitle, ProblemAlert } from "../../components/ui.js";

function Replay({ letter, session, onDone }) {
  const replay = useSubmit(async () => {
    await api("POST", `/admin/dead-letters/${letter.service}/${letter.id}/replay`, { token: session.token });
    onDone();
  });
  if (letter.status !== "dead") return html`<span class="muted">Replayed</span>`;
  return html`<${Button} kind="secondary small" busy=${replay.busy} busyText="Replaying" onClick=${() => replay.run()}>Replay</${Button}><${ProblemAlert} problem=${replay.problem} />`;
}

export function DeadLettersPage({ session }) {
  const letters = useResource(() => api("GET", "/admin/dead-letters", { token: session.token }), [session.token], { every: 5000 });
  return html`
    <${PageTitle}>Dead letters</${PageTitle}>
    <p class="hint">An event lands here when a service failed to take it in after repeated tries. Fix the cause, then replay it: it is applied once.</p>
    <${Loaded} resource=${letters} what="Loading dead letters">
      ${(items) => items.length === 0
        ? html`<${Empty}>None: every event was taken in.</${Empty}>`
        : html`<div class="table-wrap"><table>
            <thead><tr><th scope="col">Service</th><th scope="col">Consumer</th><th scope="col">Event</th><th scope="col">Error</th><th scope="col" class="num">Attempts</th><th scope="col">At</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${items.map((d) => html`
              <tr key=${`${d.service}/${d.id}`}>
                <td>${d.service}</td><td>${d.consumer}</td><td>${d.eventType || "(unreadable)"}<br /><span class="muted small">${d.topic}</span></td>
                <td class="title">${d.error}</td><td class="num">${d.attempts}</td><td>${when(d.at)}</td>
                <td><${Replay} letter=${d} session=${session} onDone=${letters.reload} /></td>
              </tr>`)}
            </tbody>
          </table></div>`}
    </${Loaded}>
  `;
}

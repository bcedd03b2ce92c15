// Admins: what is sold, held and left per listing, bookings by status and
// the takings, live from the dashboard's server-sent events.
import { useEffect, useState } from "preact/hooks";
import { html } from "../../html.js";
import { asProblem, Problem } from "../../api.js";
import { count, kindName, money, points, when } from "../../format.js";
import { CountChart, StockChart } from "../../components/charts.js";
import { Empty, Loading, PageTitle, ProblemAlert } from "../../components/ui.js";

const STATUS_LABELS = { pending: "Pending", confirmed: "Confirmed", rejected: "Rejected", cancelled: "Cancelled", returned: "Returned" };

/**
 * The dashboard as it changes. EventSource cannot send the bearer token,
 * so the stream is read with fetch; it reconnects with a growing pause
 * (at most 10 s) when the connection drops.
 */
function useDashboard(token) {
  const [state, setState] = useState({ data: undefined, live: false, problem: null });
  useEffect(() => {
    const abort = new AbortController();
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    (async () => {
      let pause = 500;
      while (!abort.signal.aborted) {
        try {
          const response = await fetch("/dashboard/stream", {
            headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
            signal: abort.signal,
          });
          if (!response.ok) {
            const body = await response.json().catch(() => ({}));
            throw new Problem(response.status, body.title || response.statusText, body.detail || `HTTP ${response.status}`);
          }
          setState((s) => ({ ...s, live: true, problem: null }));
          pause = 500;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const frame = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
              if (data) setState((s) => ({ ...s, data: JSON.parse(data) }));
            }
          }
          setState((s) => ({ ...s, live: false }));
        } catch (error) {
          if (abort.signal.aborted) return;
          const problem = asProblem(error);
          setState((s) => ({ ...s, live: false, problem }));
          if (problem.status === 401 || problem.status === 403) return;
        }
        await sleep(pause);
        pause = Math.min(pause * 2, 10000);
      }
    })();
    return () => abort.abort();
  }, [token]);
  return state;
}

export function DashboardPage({ session }) {
  const { data, live, problem } = useDashboard(session.token);
  return html`
    <${PageTitle} actions=${html`<span class=${`live ${live ? "on" : "off"}`} role="status">${live ? "Live" : "Reconnecting…"}</span>`}>Dashboard</${PageTitle}>
    ${problem && !live && html`<${ProblemAlert} problem=${problem} />`}
    ${data === undefined
      ? html`<${Loading} what="Loading the dashboard" />`
      : html`
        <div class="stats" aria-label="Totals">
          <div class="stat"><span>Confirmed</span><strong>${count(data.reservations.confirmed)}</strong></div>
          <div class="stat"><span>Pending</span><strong>${count(data.reservations.pending)}</strong></div>
          <div class="stat"><span>Card revenue</span><strong>${money(data.revenue.card)}</strong></div>
          <div class="stat"><span>Points revenue</span><strong>${points(data.revenue.points)}</strong></div>
          <div class="stat"><span>Points issued / spent</span><strong>${count(data.points.issued)} / ${count(data.points.spent)}</strong></div>
        </div>
        <div class="two-columns">
          <section class="panel" aria-labelledby="stock-heading">
            <h2 id="stock-heading">Sold and available per listing</h2>
            ${data.listings.length === 0
              ? html`<${Empty}>Nothing on sale.</${Empty}>`
              : html`<${StockChart} listings=${data.listings} />`}
          </section>
          <section class="panel" aria-labelledby="status-heading">
            <h2 id="status-heading">Bookings by status</h2>
            <${CountChart} counts=${data.reservations} labels=${STATUS_LABELS} />
          </section>
        </div>
        <section class="panel" aria-labelledby="table-heading">
          <h2 id="table-heading">Per listing</h2>
          <div class="table-wrap"><table class="dashboard-table">
            <thead><tr><th scope="col">Listing</th><th scope="col">Kind</th><th scope="col" class="num">Total</th><th scope="col" class="num">Sold</th><th scope="col" class="num">Held</th><th scope="col" class="num">Available</th></tr></thead>
            <tbody>${data.listings.map((l) => html`
              <tr key=${l.id} data-listing=${l.id}><td class="title"><a href=${`#/listings/${l.id}`}>${l.title}</a></td><td>${kindName(l.kind)}${l.inUse ? " (in use)" : ""}</td>
                <td class="num">${count(l.total)}</td><td class="num" data-col="sold">${count(l.sold)}</td><td class="num">${count(l.held)}</td><td class="num" data-col="available">${count(l.available)}</td></tr>`)}
            </tbody>
          </table></div>
          <p class="hint">Updated ${when(data.updatedAt)}.</p>
        </section>`}
  `;
}

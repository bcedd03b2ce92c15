// Points: the balance, what came in and went out, and buying more by card.
import { useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { api, blame, newKey } from "../api.js";
import { useResource, useSubmit } from "../hooks.js";
import { points, when } from "../format.js";
import { Button, Empty, Field, Loaded, Notice, PageTitle, ProblemAlert } from "../components/ui.js";

const ENTRY_TEXT = {
  purchased: "Bought by card",
  earned: "Earned on a booking",
  withdrawn: "Taken back (booking cancelled)",
  spent: "Spent on a booking",
  refunded: "Given back (booking cancelled or refused)",
};

function BuyPoints({ session, onBought }) {
  const [amount, setAmount] = useState("5000");
  const [bought, setBought] = useState(null);
  const attempt = useRef({ amount: null, key: null });
  const buy = useSubmit(async () => {
    // A retry of the same purchase (after a timeout, say) is charged once.
    if (attempt.current.amount !== amount) attempt.current = { amount, key: newKey() };
    const answer = await api("POST", "/points/purchases", {
      token: session.token,
      idempotencyKey: attempt.current.key,
      body: { amount: Number(amount) },
    });
    attempt.current = { amount: null, key: null };
    setBought(answer);
    onBought();
    return answer;
  });
  const fieldError = blame(buy.problem, { amount: ["amount", "points"] }) === "amount" && buy.problem.status === 422 ? buy.problem.detail : null;
  return html`
    <form class="panel" onSubmit=${(e) => { e.preventDefault(); setBought(null); buy.run(); }} novalidate aria-label="Buy points">
      <h2>Buy points</h2>
      ${!fieldError && html`<${ProblemAlert} problem=${buy.problem} onRetry=${() => buy.run()} />`}
      ${bought && html`<${Notice}>Bought ${points(bought.points)}. Your balance is now ${points(bought.balance)}.</${Notice}>`}
      <${Field} label="Points" name="amount" type="number" min="1" max="1000000" step="1" inputmode="numeric"
        value=${amount} onInput=${(e) => setAmount(e.currentTarget.value)} error=${fieldError}
        hint="1 point costs 1 on your card; 1 to 1,000,000 at a time." />
      <${Button} type="submit" busy=${buy.busy} busyText="Charging your card">Buy ${amount ? points(Number(amount)) : "points"}</${Button}>
    </form>
  `;
}

export function PointsPage({ session }) {
  const wallet = useResource(() => api("GET", "/points?limit=200", { token: session.token }), [session.token], { every: 3000 });
  return html`
    <${PageTitle}>Points</${PageTitle}>
    <div class="two-columns">
      <section class="panel" aria-labelledby="balance-heading">
        <h2 id="balance-heading">Balance</h2>
        <${Loaded} resource=${wallet} what="Loading your points">
          ${(w) => html`
            <p class="balance" data-testid="balance">${points(w.balance)}</p>
            <h3>History</h3>
            ${w.entries.length === 0
              ? html`<${Empty}>No points yet: buy some, or earn them with card bookings.</${Empty}>`
              : html`<ul class="entries">
                  ${w.entries.map((e) => html`
                    <li data-kind=${e.kind}>
                      <span>${ENTRY_TEXT[e.kind] || e.kind}${e.reservationId ? html` · <a href=${`#/bookings/${e.reservationId}`}>booking</a>` : ""}</span>
                      <strong class=${e.kind === "spent" || e.kind === "withdrawn" ? "minus" : "plus"}>${e.kind === "spent" || e.kind === "withdrawn" ? "−" : "+"}${points(e.amount)}</strong>
                      <time datetime=${e.at}>${when(e.at)}</time>
                    </li>`)}
                </ul>`}`}
        </${Loaded}>
      </section>
      <${BuyPoints} session=${session} onBought=${wallet.reload} />
    </div>
  `;
}

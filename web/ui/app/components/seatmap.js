// A seat map: rows lettered from the front, seats numbered from the left.
// Each seat is a button (arrow keys move between seats, Space or Enter
// picks one); held and sold seats cannot be picked. Blocked seats of a
// screen are gaps.
import { useRef } from "preact/hooks";
import { html } from "../html.js";
import { money } from "../format.js";

const STATUS_WORDS = { available: "available", held: "held for another booking", sold: "sold" };

/** Seats by row, with the widest row's length: the grid to draw. */
export function layout(seats) {
  const rows = new Map();
  let width = 0;
  for (const seat of seats) {
    const [row, number] = seat.label.split("-");
    const n = Number(number);
    if (!rows.has(row)) rows.set(row, new Map());
    rows.get(row).set(n, seat);
    width = Math.max(width, n);
  }
  const letters = [...rows.keys()].sort();
  return { rows: letters.map((letter) => ({ letter, seats: rows.get(letter) })), width };
}

/** The sections of a musical, in the order their rows come. */
function sectionsOf(seats) {
  const seen = new Map();
  for (const s of seats) if (s.section && !seen.has(s.section)) seen.set(s.section, s.price);
  return [...seen.entries()].map(([name, price], i) => ({ name, price, index: i % 4 }));
}

export function SeatMap({ seats, selected, onToggle, max, disabled }) {
  const grid = layout(seats);
  const sections = sectionsOf(seats);
  const sectionIndex = new Map(sections.map((s) => [s.name, s.index]));
  const ref = useRef(null);
  // One seat is in the tab order (the first available or selected); arrows move.
  const first = seats.find((s) => selected.has(s.label)) || seats.find((s) => s.status === "available") || seats[0];
  const move = (event, row, col) => {
    const steps = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const step = steps[event.key];
    if (!step) return;
    event.preventDefault();
    let [r, c] = [row, col];
    for (let i = 0; i < 200; i++) {
      r += step[0];
      c += step[1];
      if (r < 0 || r >= grid.rows.length || c < 1 || c > grid.width) return;
      const target = ref.current.querySelector(`[data-seat="${grid.rows[r].letter}-${c}"]`);
      if (target) {
        target.focus();
        return;
      }
    }
  };
  const full = selected.size >= max;
  return html`
    <div class="seatmap-wrap">
      <div class="screen-edge" aria-hidden="true">Stage / screen</div>
      <div class="seatmap" ref=${ref} role="group" aria-label="Seat map">
        ${grid.rows.map((row, r) => html`
          <div class="seat-row" role="group" aria-label=${`Row ${row.letter}`}>
            <span class="row-label" aria-hidden="true">${row.letter}</span>
            ${Array.from({ length: grid.width }, (_, i) => i + 1).map((n) => {
              const seat = row.seats.get(n);
              if (!seat) return html`<span class="seat gap" aria-hidden="true"></span>`;
              const picked = selected.has(seat.label);
              const free = seat.status === "available";
              const words = `${seat.label}, ${picked ? "selected" : STATUS_WORDS[seat.status]}${seat.price !== undefined ? `, ${money(seat.price)}` : ""}${seat.section ? `, ${seat.section}` : ""}`;
              return html`
                <button type="button" class="seat" data-seat=${seat.label} data-status=${picked ? "selected" : seat.status}
                  data-section=${seat.section ? sectionIndex.get(seat.section) : undefined}
                  aria-label=${words} title=${words} aria-pressed=${picked ? "true" : "false"}
                  aria-disabled=${!picked && (!free || full || disabled) ? "true" : undefined}
                  tabindex=${seat === first ? 0 : -1}
                  onKeyDown=${(e) => move(e, r, n)}
                  onClick=${() => { if (!disabled && (picked || (free && !full))) onToggle(seat.label); }}>
                  <span aria-hidden="true">${n}</span>
                </button>`;
            })}
          </div>`)}
      </div>
      <ul class="legend" aria-label="Legend">
        <li><span class="seat" data-status="available" aria-hidden="true"></span>Available</li>
        <li><span class="seat" data-status="selected" aria-hidden="true"></span>Your choice</li>
        <li><span class="seat" data-status="held" aria-hidden="true"></span>Held</li>
        <li><span class="seat" data-status="sold" aria-hidden="true"></span>Sold</li>
        ${sections.map((s) => html`<li><span class="seat" data-status="available" data-section=${s.index} aria-hidden="true"></span>${s.name} · ${money(s.price)}</li>`)}
      </ul>
    </div>
  `;
}

// Charts drawn as SVG by hand: two kinds are needed, and each is a few
// rectangles. Every chart has a text alternative (the table beside it).
import { html } from "../html.js";
import { count } from "../format.js";

const STOCK = [
  ["sold", "Sold"],
  ["held", "Held"],
  ["available", "Available"],
];

/** One horizontal bar per listing: sold, held and available side by side. */
export function StockChart({ listings }) {
  const row = 28;
  const label = 170;
  const width = 600;
  const height = Math.max(1, listings.length) * row + 24;
  const summary = listings.map((l) => `${l.title}: ${l.sold} sold, ${l.held} held, ${l.available} available`).join("; ");
  return html`
    <figure class="chart">
      <svg viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${`Sold, held and available per listing. ${summary}`}>
        ${listings.map((l, i) => {
          const total = Math.max(1, l.total);
          let x = label;
          const y = i * row + 4;
          return html`
            <g key=${l.id}>
              <text x=${label - 8} y=${y + 15} text-anchor="end" class="chart-label">${l.title.length > 18 ? `${l.title.slice(0, 17)}…` : l.title}</text>
              ${STOCK.map(([key]) => {
                const w = ((width - label - 10) * l[key]) / total;
                const rect = html`<rect x=${x} y=${y} width=${Math.max(0, w)} height=${row - 8} class=${`bar-${key}`}><title>${`${l.title}: ${l[key]} ${key}`}</title></rect>`;
                x += w;
                return rect;
              })}
            </g>`;
        })}
      </svg>
      <figcaption class="legend">${STOCK.map(([key, text]) => html`<span><i class=${`swatch bar-${key}`} aria-hidden="true"></i>${text}</span>`)}</figcaption>
    </figure>
  `;
}

/** Vertical bars: a count per named category. */
export function CountChart({ counts, labels }) {
  const entries = Object.keys(labels).map((key) => [key, counts[key] || 0]);
  const top = Math.max(1, ...entries.map(([, n]) => n));
  const bar = 64;
  const height = 160;
  const width = entries.length * bar + 10;
  return html`
    <figure class="chart">
      <svg viewBox=${`0 0 ${width} ${height + 40}`} role="img" aria-label=${entries.map(([k, n]) => `${labels[k]}: ${n}`).join(", ")}>
        ${entries.map(([key, n], i) => {
          const h = (height - 20) * (n / top);
          return html`
            <g key=${key}>
              <rect x=${i * bar + 14} y=${height - h} width=${bar - 20} height=${h} class=${`status-${key}`}><title>${`${labels[key]}: ${n}`}</title></rect>
              <text x=${i * bar + bar / 2 + 4} y=${height - h - 6} text-anchor="middle" class="chart-value">${count(n)}</text>
              <text x=${i * bar + bar / 2 + 4} y=${height + 18} text-anchor="middle" class="chart-label">${labels[key]}</text>
            </g>`;
        })}
      </svg>
    </figure>
  `;
}

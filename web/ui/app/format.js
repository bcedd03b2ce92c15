// How numbers, times and statuses read on screen.

const number = new Intl.NumberFormat("en-US");

/** An amount in minor units (prices are whole units of the currency here). */
export function money(amount) {
  return amount === undefined || amount === null ? "—" : number.format(amount);
}

export function points(amount) {
  return `${number.format(amount || 0)} pts`;
}

export function count(n) {
  return number.format(n || 0);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** Seconds until `iso`, never negative. */
export function secondsUntil(iso) {
  return Math.max(0, Math.round((new Date(iso).getTime() - Date.now()) / 1000));
}

export const KINDS = [
  { value: "movie", label: "Movies", one: "Movie" },
  { value: "musical", label: "Musicals", one: "Musical" },
  { value: "bike", label: "Bikes", one: "Bike" },
];

export function kindName(kind) {
  const k = KINDS.find((x) => x.value === kind);
  return k ? k.one : kind;
}

export const STATUS_TEXT = {
  pending: "Pending",
  confirmed: "Confirmed",
  rejected: "Rejected",
  cancelled: "Cancelled",
  returned: "Returned",
};

/** What a booking of this kind is called in a sentence. */
export function bookingNoun(kind) {
  return kind === "bike" ? "rental" : "booking";
}

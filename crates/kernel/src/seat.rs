//! Seat labels: a row letter and a seat number, `A-1` … `Z-99`.
//!
//! Rows are lettered from the front (`A`), seats numbered from 1 within a
//! row. A label is only ever a position in a grid; whether the seat exists
//! on a given screen, or is blocked, is the catalog's business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most rows a seat map may have (one letter each).
pub const MAX_ROWS: u8 = 26;
/// Most seats in one row.
pub const MAX_SEATS_PER_ROW: u8 = 99;

/// One seat, e.g. `A-1`. Ordered front to back, then left to right.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeatLabel {
    /// 0 for row `A`.
    row: u8,
    /// 1-based.
    number: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a seat label; seats look like A-1 (row letter A-Z, a dash, seat number 1-99)"
)]
pub struct SeatLabelError(pub String);

impl SeatLabel {
    /// The seat `number` (from 1) of row `row` (from 0 for `A`).
    pub fn new(row: u8, number: u8) -> Option<SeatLabel> {
        (row < MAX_ROWS && (1..=MAX_SEATS_PER_ROW).contains(&number))
            .then_some(SeatLabel { row, number })
    }

    /// Row index from 0 (`A`).
    pub fn row(self) -> u8 {
        self.row
    }

    /// Seat number from 1.
    pub fn number(self) -> u8 {
        self.number
    }

    /// Every seat of a `rows` × `per_row` grid, front row first.
    pub fn grid(rows: u8, per_row: u8) -> impl Iterator<Item = SeatLabel> {
        (0..rows.min(MAX_ROWS)).flat_map(move |row| {
            (1..=per_row.min(MAX_SEATS_PER_ROW)).map(move |number| SeatLabel { row, number })
        })
    }
}

impl fmt::Display for SeatLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", char::from(b'A' + self.row), self.number)
    }
}

impl fmt::Debug for SeatLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SeatLabel {
    type Err = SeatLabelError;

    /// Accepts `A-1` and, as people also write it, `a-1` or `A1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || SeatLabelError(s.to_owned());
        let trimmed = s.trim();
        let mut chars = trimmed.chars();
        let letter = chars.next().ok_or_else(invalid)?.to_ascii_uppercase();
        if !letter.is_ascii_uppercase() {
            return Err(invalid());
        }
        let rest = chars.as_str();
        let digits = rest.strip_prefix('-').unwrap_or(rest);
        if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let number: u8 = digits.parse().map_err(|_| invalid())?;
        SeatLabel::new(letter as u8 - b'A', number).ok_or_else(invalid)
    }
}

/// A label as it is written on the wire (`A-1`); readers also accept the
/// other spellings [`SeatLabel::from_str`] knows, writers never send them.
impl schemars::JsonSchema for SeatLabel {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SeatLabel".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[A-Z]-[1-9][0-9]?$",
            "description": "A seat: row letter, dash, seat number (A-1)."
        })
    }
}

impl TryFrom<String> for SeatLabel {
    type Error = SeatLabelError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SeatLabel> for String {
    fn from(label: SeatLabel) -> String {
        label.to_string()
    }
}

/// `A-1, A-2` for messages.
pub fn list(seats: &[SeatLabel]) -> String {
    seats
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_read_the_usual_spellings() {
        let a1: SeatLabel = "A-1".parse().unwrap();
        assert_eq!(a1.to_string(), "A-1");
        assert_eq!("a-1".parse::<SeatLabel>().unwrap(), a1);
        assert_eq!("A1".parse::<SeatLabel>().unwrap(), a1);
        assert_eq!("Z-99".parse::<SeatLabel>().unwrap().row(), 25);
    }

    #[test]
    fn anything_else_is_not_a_seat() {
        for bad in [
            "", "A", "A-0", "A-100", "1-A", "AA-1", "A--1", "A-1x", "Ä-1", "A-01a",
        ] {
            assert!(bad.parse::<SeatLabel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_grid_is_front_row_first_and_ordered() {
        let grid: Vec<String> = SeatLabel::grid(2, 3).map(|s| s.to_string()).collect();
        assert_eq!(grid, ["A-1", "A-2", "A-3", "B-1", "B-2", "B-3"]);
        let mut sorted: Vec<SeatLabel> = SeatLabel::grid(3, 12).collect();
        sorted.sort();
        assert_eq!(sorted, SeatLabel::grid(3, 12).collect::<Vec<_>>());
    }

    #[test]
    fn labels_travel_as_strings() {
        let json = serde_json::to_string(&"B-12".parse::<SeatLabel>().unwrap()).unwrap();
        assert_eq!(json, "\"B-12\"");
        assert!(serde_json::from_str::<SeatLabel>("\"Q\"").is_err());
    }
}

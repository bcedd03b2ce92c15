//! A musical's own seat map: a grid of seats (`A-1` …) and sections,
//! named sets of whole rows sold at a price of their own. Movies have no
//! seat map of their own: their seats are their screen's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use contracts::catalog::SeatSection;
use kernel::money::MoneyError;
use kernel::seat::MAX_ROWS;
use kernel::{Money, SeatLabel};

use super::screen::{Layout, ScreenError};

/// Longest section name accepted.
pub const MAX_SECTION_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeatMapError {
    #[error("seating: {0}")]
    Grid(ScreenError),
    #[error("sections: every section needs a name")]
    UnnamedSection,
    #[error("sections: a section name must be at most {MAX_SECTION_NAME_CHARS} characters")]
    SectionNameTooLong,
    #[error("sections: two sections are named {0:?}")]
    DuplicateSection(String),
    #[error("sections: {0} has no rows")]
    NoRows(String),
    #[error("sections: price of {section}: {error}")]
    SectionPrice { section: String, error: MoneyError },
    #[error("sections: {section} names {}, not row letters (rows are A to Z)", quoted(.rows))]
    NotRows { section: String, rows: Vec<String> },
    #[error("sections: {section} names {}, but the seat map has rows A to {last}", rows_phrase(.rows))]
    UnknownRows {
        section: String,
        rows: Vec<SeatRow>,
        last: SeatRow,
    },
    #[error("sections: row {row} is in both {first} and {second}")]
    RowInTwoSections {
        row: SeatRow,
        first: String,
        second: String,
    },
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rows_phrase(rows: &[SeatRow]) -> String {
    let letters = rows
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if rows.len() == 1 {
        format!("row {letters}")
    } else {
        format!("rows {letters}")
    }
}

/// A row of seats, lettered from the front: `A` … `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatRow(u8);

impl SeatRow {
    /// The row a seat is in.
    pub fn of(seat: SeatLabel) -> SeatRow {
        SeatRow(seat.row())
    }

    /// The last row of a grid of `rows` rows (at least one).
    fn last_of(rows: u8) -> SeatRow {
        SeatRow(rows.saturating_sub(1))
    }
}

impl fmt::Display for SeatRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", char::from(b'A' + self.0))
    }
}

impl FromStr for SeatRow {
    type Err = anyhow::Error;

    /// `A` or `a`, as seat labels are read.
    fn from_str(s: &str) -> Result<SeatRow, Self::Err> {
        match s.trim().as_bytes() {
            [letter] if letter.is_ascii_alphabetic() => {
                let row = letter.to_ascii_uppercase() - b'A';
                (row < MAX_ROWS)
                    .then_some(SeatRow(row))
                    .ok_or_else(|| anyhow::anyhow!("{s:?} is not a row letter"))
            }
            _ => anyhow::bail!("{s:?} is not a row letter"),
        }
    }
}

/// A section as an admin sends it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionDraft {
    pub name: String,
    pub price: i64,
    pub rows: Vec<String>,
}

/// Whole rows sold at their own price (e.g. the VIP rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    name: String,
    price: Money,
    /// In row order, without repeats.
    rows: Vec<SeatRow>,
}

impl Section {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn price(&self) -> Money {
        self.price
    }

    pub fn rows(&self) -> &[SeatRow] {
        &self.rows
    }

    pub fn contains(&self, seat: SeatLabel) -> bool {
        self.rows.contains(&SeatRow::of(seat))
    }

    /// The section as it would be sent again (to re-validate it on a new grid).
    pub fn draft(&self) -> SectionDraft {
        SectionDraft {
            name: self.name.clone(),
            price: self.price.minor_units(),
            rows: self.rows.iter().map(ToString::to_string).collect(),
        }
    }

    /// A section as stored, trusted: it was validated when it was written.
    pub fn restore(name: String, price: Money, rows: Vec<SeatRow>) -> Section {
        Section { name, price, rows }
    }
}

/// What one seat costs and which section it is in, if any: the section's
/// price, or `base` (the listing's price) for a seat in no section.
pub fn seat_price(sections: &[Section], seat: SeatLabel, base: Money) -> (Money, Option<&str>) {
    sections
        .iter()
        .find(|section| section.contains(seat))
        .map_or((base, None), |section| {
            (section.price, Some(section.name.as_str()))
        })
}

/// The sections as published: each with the seats of `seats` in its rows.
pub fn published_sections(sections: &[Section], seats: &[SeatLabel]) -> Vec<SeatSection> {
    sections
        .iter()
        .map(|section| SeatSection {
            name: section.name.clone(),
            price: section.price,
            seats: seats
                .iter()
                .copied()
                .filter(|seat| section.contains(*seat))
                .collect(),
        })
        .collect()
}

/// A musical's seats: a full grid (no seat is blocked), and its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    layout: Layout,
    sections: Vec<Section>,
}

impl SeatMap {
    /// A seat map of `rows` × `seats_per_row` seats with these sections:
    /// each named once, of whole rows of the grid, no row in two of them.
    pub fn parse(
        rows: i64,
        seats_per_row: i64,
        sections: Vec<SectionDraft>,
    ) -> Result<SeatMap, SeatMapError> {
        let layout = Layout::parse(rows, seats_per_row, &[]).map_err(SeatMapError::Grid)?;
        let last = SeatRow::last_of(layout.rows());
        let mut parsed: Vec<Section> = Vec::with_capacity(sections.len());
        let mut owner: BTreeMap<SeatRow, String> = BTreeMap::new();
        for draft in sections {
            let name = draft.name.trim().to_owned();
            if name.is_empty() {
                return Err(SeatMapError::UnnamedSection);
            }
            if name.chars().count() > MAX_SECTION_NAME_CHARS {
                return Err(SeatMapError::SectionNameTooLong);
            }
            if parsed.iter().any(|section| section.name == name) {
                return Err(SeatMapError::DuplicateSection(name));
            }
            let price = Money::parse(draft.price).map_err(|error| SeatMapError::SectionPrice {
                section: name.clone(),
                error,
            })?;
            let not_rows: Vec<String> = draft
                .rows
                .iter()
                .filter(|text| text.parse::<SeatRow>().is_err())
                .cloned()
                .collect();
            if !not_rows.is_empty() {
                return Err(SeatMapError::NotRows {
                    section: name,
                    rows: not_rows,
                });
            }
            let rows: BTreeSet<SeatRow> =
                draft.rows.iter().filter_map(|r| r.parse().ok()).collect();
            if rows.is_empty() {
                return Err(SeatMapError::NoRows(name));
            }
            let unknown: Vec<SeatRow> = rows.iter().copied().filter(|row| *row > last).collect();
            if !unknown.is_empty() {
                return Err(SeatMapError::UnknownRows {
                    section: name,
                    rows: unknown,
                    last,
                });
            }
            for row in &rows {
                if let Some(first) = owner.insert(*row, name.clone()) {
                    return Err(SeatMapError::RowInTwoSections {
                        row: *row,
                        first,
                        second: name,
                    });
                }
            }
            parsed.push(Section {
                name,
                price,
                rows: rows.into_iter().collect(),
            });
        }
        Ok(SeatMap {
            layout,
            sections: parsed,
        })
    }

    /// The seat map a musical's seats make, with its current sections:
    /// the smallest grid holding every seat (a musical's grid is full).
    pub fn restore(seats: &[SeatLabel], sections: Vec<Section>) -> Result<SeatMap, SeatMapError> {
        let rows = seats.iter().map(|seat| seat.row() + 1).max().unwrap_or(0);
        let per_row = seats.iter().map(|seat| seat.number()).max().unwrap_or(0);
        let layout =
            Layout::parse(i64::from(rows), i64::from(per_row), &[]).map_err(SeatMapError::Grid)?;
        Ok(SeatMap { layout, sections })
    }

    /// This seat map with some of it changed: a field left out keeps its
    /// value (`sections: []` removes every section). The sections are
    /// checked again against the new grid.
    pub fn revise(&self, patch: SeatMapPatch) -> Result<SeatMap, SeatMapError> {
        SeatMap::parse(
            patch.rows.unwrap_or_else(|| i64::from(self.layout.rows())),
            patch
                .seats_per_row
                .unwrap_or_else(|| i64::from(self.layout.seats_per_row())),
            patch
                .sections
                .unwrap_or_else(|| self.sections.iter().map(Section::draft).collect()),
        )
    }

    pub fn rows(&self) -> u8 {
        self.layout.rows()
    }

    pub fn seats_per_row(&self) -> u8 {
        self.layout.seats_per_row()
    }

    /// Every seat, in seat order.
    pub fn seats(&self) -> Vec<SeatLabel> {
        self.layout.seats()
    }

    pub fn total(&self) -> u32 {
        self.layout.sellable()
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn into_sections(self) -> Vec<Section> {
        self.sections
    }
}

/// A change to a seat map as an admin sends it: any of its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatMapPatch {
    pub rows: Option<i64>,
    pub seats_per_row: Option<i64>,
    pub sections: Option<Vec<SectionDraft>>,
}

/// Which seats a new seat map adds and removes, in seat order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatChange {
    pub added: Vec<SeatLabel>,
    pub removed: Vec<SeatLabel>,
}

/// A new seat map would take away seats customers hold or bought.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} booked and would be removed", booked_phrase(.0))]
pub struct BookedSeatsRemoved(pub Vec<SeatLabel>);

fn booked_phrase(seats: &[SeatLabel]) -> String {
    if seats.len() == 1 {
        format!("seat {} is", kernel::seat::list(seats))
    } else {
        format!("seats {} are", kernel::seat::list(seats))
    }
}

/// The seats going from `current` to `next` adds and removes; refused
/// when a removed seat is `taken` (held or sold), naming those seats.
pub fn change(
    current: &[SeatLabel],
    next: &[SeatLabel],
    taken: &[SeatLabel],
) -> Result<SeatChange, BookedSeatsRemoved> {
    let current: BTreeSet<SeatLabel> = current.iter().copied().collect();
    let next: BTreeSet<SeatLabel> = next.iter().copied().collect();
    let removed: Vec<SeatLabel> = current.difference(&next).copied().collect();
    let mut booked: Vec<SeatLabel> = removed
        .iter()
        .copied()
        .filter(|seat| taken.contains(seat))
        .collect();
    if !booked.is_empty() {
        booked.sort_unstable();
        return Err(BookedSeatsRemoved(booked));
    }
    Ok(SeatChange {
        added: next.difference(&current).copied().collect(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, price: i64, rows: &[&str]) -> SectionDraft {
        SectionDraft {
            name: name.to_owned(),
            price,
            rows: rows.iter().map(|row| (*row).to_owned()).collect(),
        }
    }

    fn seats(labels: &[&str]) -> Vec<SeatLabel> {
        labels.iter().map(|label| label.parse().unwrap()).collect()
    }

    #[test]
    fn a_seat_map_is_a_full_grid_with_sections_of_whole_rows() {
        let map = SeatMap::parse(
            3,
            2,
            vec![
                section(" VIP ", 150_000, &["a", "B", "A"]),
                section("Balcony", 50_000, &["C"]),
            ],
        )
        .unwrap();
        assert_eq!(map.total(), 6);
        assert_eq!(
            kernel::seat::list(&map.seats()),
            "A-1, A-2, B-1, B-2, C-1, C-2"
        );
        let vip = &map.sections()[0];
        assert_eq!(vip.name(), "VIP");
        assert_eq!(vip.rows(), ["A".parse().unwrap(), "B".parse().unwrap()]);
        let published = published_sections(map.sections(), &map.seats());
        assert_eq!(published[0].seats, seats(&["A-1", "A-2", "B-1", "B-2"]));
        assert_eq!(published[1].seats, seats(&["C-1", "C-2"]));
    }

    #[test]
    fn a_seat_costs_its_sections_price_or_the_listings() {
        let map = SeatMap::parse(2, 2, vec![section("VIP", 150_000, &["A"])]).unwrap();
        let base = Money::parse(90_000).unwrap();
        let at = |label: &str| seat_price(map.sections(), label.parse().unwrap(), base);
        assert_eq!(at("A-2"), (Money::parse(150_000).unwrap(), Some("VIP")));
        assert_eq!(at("B-1"), (base, None));
    }

    #[test]
    fn the_grid_is_bounded_like_a_screens() {
        assert_eq!(
            SeatMap::parse(0, 4, vec![]).unwrap_err().to_string(),
            "seating: rows must be between 1 and 26 (got 0)"
        );
        assert_eq!(
            SeatMap::parse(2, 100, vec![]).unwrap_err().to_string(),
            "seating: seatsPerRow must be between 1 and 99 (got 100)"
        );
    }

    #[test]
    fn sections_must_name_rows_of_the_grid_each_in_one_section() {
        let refused =
            |sections: Vec<SectionDraft>| SeatMap::parse(5, 4, sections).unwrap_err().to_string();
        assert_eq!(
            refused(vec![section("VIP", 1, &["F", "G", "A"])]),
            "sections: VIP names rows F, G, but the seat map has rows A to E"
        );
        assert_eq!(
            refused(vec![section("VIP", 1, &["A", "AA", "1"])]),
            "sections: VIP names \"AA\", \"1\", not row letters (rows are A to Z)"
        );
        assert_eq!(
            refused(vec![
                section("VIP", 1, &["A", "B"]),
                section("Stalls", 1, &["B", "C"])
            ]),
            "sections: row B is in both VIP and Stalls"
        );
        assert_eq!(
            refused(vec![section("VIP", -5, &["A"])]),
            "sections: price of VIP: amount must not be negative (got -5)"
        );
        assert_eq!(
            refused(vec![section("  ", 1, &["A"])]),
            "sections: every section needs a name"
        );
        assert_eq!(
            refused(vec![section("VIP", 1, &[])]),
            "sections: VIP has no rows"
        );
        assert_eq!(
            refused(vec![section("VIP", 1, &["A"]), section("VIP", 2, &["B"])]),
            "sections: two sections are named \"VIP\""
        );
        assert!(SeatMap::parse(5, 4, vec![section("Free", 0, &["E"])]).is_ok());
    }

    #[test]
    fn a_revision_keeps_what_it_does_not_name_and_rechecks_the_sections() {
        let map = SeatMap::parse(4, 3, vec![section("VIP", 100, &["A"])]).unwrap();
        let wider = map
            .revise(SeatMapPatch {
                seats_per_row: Some(5),
                ..SeatMapPatch::default()
            })
            .unwrap();
        assert_eq!((wider.rows(), wider.seats_per_row()), (4, 5));
        assert_eq!(wider.sections(), map.sections());
        let cleared = map
            .revise(SeatMapPatch {
                sections: Some(vec![]),
                ..SeatMapPatch::default()
            })
            .unwrap();
        assert!(cleared.sections().is_empty());
        let balcony = SeatMap::parse(4, 3, vec![section("Balcony", 10, &["D"])]).unwrap();
        assert_eq!(
            balcony
                .revise(SeatMapPatch {
                    rows: Some(3),
                    ..SeatMapPatch::default()
                })
                .unwrap_err()
                .to_string(),
            "sections: Balcony names row D, but the seat map has rows A to C"
        );
    }

    #[test]
    fn a_stored_seat_map_reads_back_its_grid() {
        let map = SeatMap::parse(3, 4, vec![section("VIP", 100, &["B"])]).unwrap();
        let restored = SeatMap::restore(&map.seats(), map.sections().to_vec()).unwrap();
        assert_eq!(restored, map);
    }

    #[test]
    fn a_new_seat_map_adds_and_removes_free_seats() {
        let change = change(
            &seats(&["A-1", "A-2", "B-1", "B-2"]),
            &seats(&["A-1", "A-2", "A-3", "B-1", "B-2", "B-3"]),
            &seats(&["A-1"]),
        )
        .unwrap();
        assert_eq!(change.added, seats(&["A-3", "B-3"]));
        assert!(change.removed.is_empty());
        let change = super::change(
            &seats(&["A-1", "A-2", "B-1", "B-2"]),
            &seats(&["A-1", "A-2"]),
            &seats(&["A-2"]),
        )
        .unwrap();
        assert_eq!(change.removed, seats(&["B-1", "B-2"]));
    }

    #[test]
    fn a_new_seat_map_may_not_remove_booked_seats_and_names_them() {
        let current = SeatMap::parse(10, 2, vec![]).unwrap().seats();
        let next = SeatMap::parse(9, 2, vec![]).unwrap().seats();
        let refused = change(&current, &next, &seats(&["J-2", "A-1", "J-1"])).unwrap_err();
        assert_eq!(refused.0, seats(&["J-1", "J-2"]));
        assert_eq!(
            refused.to_string(),
            "seats J-1, J-2 are booked and would be removed"
        );
        let one = change(&current, &next, &seats(&["J-2"])).unwrap_err();
        assert_eq!(one.to_string(), "seat J-2 is booked and would be removed");
    }
}

//! Screens (halls): their seat grid, the seats that cannot be sold, and
//! which screen a seated showing gets.

use std::collections::BTreeSet;

use kernel::ids::{ListingId, ScreenId};
use kernel::seat::{MAX_ROWS, MAX_SEATS_PER_ROW};
use kernel::SeatLabel;
use time::{Duration, OffsetDateTime};

/// Longest screen name accepted.
pub const MAX_SCREEN_NAME_CHARS: usize = 100;

/// How long a showing keeps its screen busy, from its start. A showing
/// registered without a start time blocks no screen: it cannot be placed
/// in time, and refusing every later showing because of it would be worse
/// than the (admin-visible) risk of a double booking of the hall.
pub const SHOWING_LENGTH: Duration = Duration::hours(3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    #[error("name must not be empty")]
    EmptyName,
    #[error("name must be at most {MAX_SCREEN_NAME_CHARS} characters")]
    NameTooLong,
    #[error("rows must be between 1 and {MAX_ROWS} (got {0})")]
    RowsOutOfRange(i64),
    #[error("seatsPerRow must be between 1 and {MAX_SEATS_PER_ROW} (got {0})")]
    SeatsPerRowOutOfRange(i64),
    #[error("blocked: {} not seat labels (seats look like A-1)", quoted(.0))]
    NotSeatLabels(Vec<String>),
    #[error("blocked: {} outside the {rows} × {seats_per_row} grid", kernel::seat::list(.seats))]
    OutsideGrid {
        seats: Vec<SeatLabel>,
        rows: u8,
        seats_per_row: u8,
    },
    #[error("every seat is blocked; a screen needs at least one seat to sell")]
    EverySeatBlocked,
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("{item:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A screen's seats: a grid of `rows` × `seats_per_row`, minus the blocked
/// seats (a pillar, the projector, a wheelchair space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    rows: u8,
    seats_per_row: u8,
    /// In seat order, without repeats.
    blocked: Vec<SeatLabel>,
}

impl Layout {
    pub fn parse(rows: i64, seats_per_row: i64, blocked: &[String]) -> Result<Layout, ScreenError> {
        let rows = u8::try_from(rows)
            .ok()
            .filter(|rows| (1..=MAX_ROWS).contains(rows))
            .ok_or(ScreenError::RowsOutOfRange(rows))?;
        let seats_per_row = u8::try_from(seats_per_row)
            .ok()
            .filter(|per_row| (1..=MAX_SEATS_PER_ROW).contains(per_row))
            .ok_or(ScreenError::SeatsPerRowOutOfRange(seats_per_row))?;
        let (labels, not_labels): (Vec<_>, Vec<_>) = blocked
            .iter()
            .map(|text| text.parse::<SeatLabel>().map_err(|_| text.clone()))
            .partition(Result::is_ok);
        if !not_labels.is_empty() {
            return Err(ScreenError::NotSeatLabels(
                not_labels.into_iter().filter_map(Result::err).collect(),
            ));
        }
        let blocked: BTreeSet<SeatLabel> = labels.into_iter().filter_map(Result::ok).collect();
        let outside: Vec<SeatLabel> = blocked
            .iter()
            .copied()
            .filter(|seat| seat.row() >= rows || seat.number() > seats_per_row)
            .collect();
        if !outside.is_empty() {
            return Err(ScreenError::OutsideGrid {
                seats: outside,
                rows,
                seats_per_row,
            });
        }
        if blocked.len() == usize::from(rows) * usize::from(seats_per_row) {
            return Err(ScreenError::EverySeatBlocked);
        }
        Ok(Layout {
            rows,
            seats_per_row,
            blocked: blocked.into_iter().collect(),
        })
    }

    pub fn rows(&self) -> u8 {
        self.rows
    }

    pub fn seats_per_row(&self) -> u8 {
        self.seats_per_row
    }

    pub fn blocked(&self) -> &[SeatLabel] {
        &self.blocked
    }

    /// Every seat that can be sold, in seat order.
    pub fn seats(&self) -> Vec<SeatLabel> {
        SeatLabel::grid(self.rows, self.seats_per_row)
            .filter(|seat| self.blocked.binary_search(seat).is_err())
            .collect()
    }

    /// How many seats can be sold.
    pub fn sellable(&self) -> u32 {
        u32::from(self.rows) * u32::from(self.seats_per_row) - self.blocked.len() as u32
    }

    /// Whether a showing asking for `grid` fits on this screen.
    pub fn fits(&self, grid: Grid) -> bool {
        u32::from(self.rows) >= grid.rows && u32::from(self.seats_per_row) >= grid.seats_per_row
    }
}

/// A screen as an admin (or the configuration) describes it.
#[derive(Debug, Clone, Default)]
pub struct ScreenDraft {
    pub name: String,
    pub rows: i64,
    pub seats_per_row: i64,
    pub blocked: Vec<String>,
}

/// A screen about to be registered, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScreen {
    pub name: String,
    pub layout: Layout,
}

impl NewScreen {
    pub fn parse(draft: ScreenDraft) -> Result<NewScreen, ScreenError> {
        let name = draft.name.trim().to_owned();
        if name.is_empty() {
            return Err(ScreenError::EmptyName);
        }
        if name.chars().count() > MAX_SCREEN_NAME_CHARS {
            return Err(ScreenError::NameTooLong);
        }
        let layout = Layout::parse(draft.rows, draft.seats_per_row, &draft.blocked)?;
        Ok(NewScreen { name, layout })
    }
}

/// A registered screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub id: ScreenId,
    pub name: String,
    pub layout: Layout,
}

/// The room a showing asks for when it leaves the choice of screen to
/// catalog: at least this many rows of at least this many seats. Not
/// bounded by the largest possible screen: asking for more is answered
/// by "no screen fits", which says what the largest one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub rows: u32,
    pub seats_per_row: u32,
}

/// A showing already on a screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Showing {
    pub listing_id: ListingId,
    pub starts_at: OffsetDateTime,
}

/// A screen with what it already shows: how many showings in all, and
/// those that start near enough to the new one to matter (others may be
/// left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenSchedule {
    pub screen: Screen,
    pub showings: u32,
    pub nearby: Vec<Showing>,
}

impl ScreenSchedule {
    /// The showing that keeps this screen busy at `starts_at`, if any.
    pub fn conflict(&self, starts_at: Option<OffsetDateTime>) -> Option<&Showing> {
        let starts_at = starts_at?;
        self.nearby
            .iter()
            .find(|showing| overlaps(showing.starts_at, starts_at))
    }
}

/// Whether showings starting at `a` and `b` share their screen's time.
pub fn overlaps(a: OffsetDateTime, b: OffsetDateTime) -> bool {
    (a - b).abs() < SHOWING_LENGTH
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("no screen with id {0}")]
    UnknownScreen(String),
    #[error(
        "no free screen fits a showing of {} rows × {} seats{}",
        .need.rows,
        .need.seats_per_row,
        match .largest {
            Some((name, rows, per_row)) => format!(" (largest: {name}, {rows} × {per_row})"),
            None => " (no screens are registered)".to_owned(),
        }
    )]
    NoneFits {
        need: Grid,
        largest: Option<(String, u8, u8)>,
    },
    #[error("{screen} is busy then: listing {listing} starts at {starts_at} and occupies it for 3 hours")]
    Busy {
        screen: String,
        listing: ListingId,
        starts_at: String,
    },
}

/// The screen named by the admin, if it is free at `starts_at`.
pub fn assign_named(
    schedules: &[ScreenSchedule],
    id: ScreenId,
    starts_at: Option<OffsetDateTime>,
) -> Result<&Screen, AssignmentError> {
    let schedule = schedules
        .iter()
        .find(|schedule| schedule.screen.id == id)
        .ok_or_else(|| AssignmentError::UnknownScreen(id.to_string()))?;
    match schedule.conflict(starts_at) {
        Some(showing) => Err(AssignmentError::Busy {
            screen: schedule.screen.name.clone(),
            listing: showing.listing_id,
            starts_at: rfc3339(showing.starts_at),
        }),
        None => Ok(&schedule.screen),
    }
}

/// Chooses a screen for a showing of `need` at `starts_at`: among the
/// screens that fit it and are free then, the smallest (fewest sellable
/// seats, so large halls stay free for large audiences), then the least
/// used, then by name so that the choice is the same on every replica.
pub fn choose_screen(
    schedules: &[ScreenSchedule],
    need: Grid,
    starts_at: Option<OffsetDateTime>,
) -> Result<&Screen, AssignmentError> {
    schedules
        .iter()
        .filter(|schedule| schedule.screen.layout.fits(need))
        .filter(|schedule| schedule.conflict(starts_at).is_none())
        .min_by(|a, b| {
            (a.screen.layout.sellable(), a.showings, &a.screen.name).cmp(&(
                b.screen.layout.sellable(),
                b.showings,
                &b.screen.name,
            ))
        })
        .map(|schedule| &schedule.screen)
        .ok_or_else(|| AssignmentError::NoneFits {
            need,
            largest: schedules
                .iter()
                .map(|schedule| &schedule.screen)
                .max_by_key(|screen| screen.layout.sellable())
                .map(|screen| {
                    (
                        screen.name.clone(),
                        screen.layout.rows(),
                        screen.layout.seats_per_row(),
                    )
                }),
        })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(rows: i64, per_row: i64, blocked: &[&str]) -> Result<Layout, ScreenError> {
        let blocked: Vec<String> = blocked.iter().map(|s| (*s).to_owned()).collect();
        Layout::parse(rows, per_row, &blocked)
    }

    fn screen(name: &str, rows: i64, per_row: i64) -> Screen {
        Screen {
            id: ScreenId::new(),
            name: name.to_owned(),
            layout: layout(rows, per_row, &[]).unwrap(),
        }
    }

    fn schedule(screen: Screen, showings: u32, nearby: &[OffsetDateTime]) -> ScreenSchedule {
        ScreenSchedule {
            screen,
            showings,
            nearby: nearby
                .iter()
                .map(|&starts_at| Showing {
                    listing_id: ListingId::new(),
                    starts_at,
                })
                .collect(),
        }
    }

    fn at(hour: u8) -> OffsetDateTime {
        time::macros::datetime!(2026-11-21 00:00 UTC) + Duration::hours(i64::from(hour))
    }

    const SMALL: Grid = Grid {
        rows: 5,
        seats_per_row: 5,
    };

    #[test]
    fn a_screen_sells_its_grid_minus_the_blocked_seats_in_seat_order() {
        let layout = layout(2, 3, &["a-2", "B-3", "A-2"]).unwrap();
        let seats: Vec<String> = layout.seats().iter().map(ToString::to_string).collect();
        assert_eq!(seats, ["A-1", "A-3", "B-1", "B-2"]);
        assert_eq!(layout.sellable(), 4);
        assert_eq!(kernel::seat::list(layout.blocked()), "A-2, B-3");
    }

    #[test]
    fn rows_and_seats_per_row_are_bounded_by_the_seat_labels() {
        assert_eq!(layout(0, 5, &[]), Err(ScreenError::RowsOutOfRange(0)));
        assert_eq!(layout(27, 5, &[]), Err(ScreenError::RowsOutOfRange(27)));
        assert_eq!(
            layout(5, 100, &[]),
            Err(ScreenError::SeatsPerRowOutOfRange(100))
        );
        assert!(layout(26, 99, &[]).is_ok());
    }

    #[test]
    fn blocked_seats_must_be_labels_inside_the_grid_and_leave_one_to_sell() {
        assert_eq!(
            layout(2, 2, &["A-1", "nope"]),
            Err(ScreenError::NotSeatLabels(vec!["nope".into()]))
        );
        let outside = layout(2, 2, &["C-1", "A-3", "A-1"]).unwrap_err();
        assert_eq!(
            outside.to_string(),
            "blocked: A-3, C-1 outside the 2 × 2 grid"
        );
        assert_eq!(
            layout(1, 2, &["A-1", "A-2"]),
            Err(ScreenError::EverySeatBlocked)
        );
    }

    #[test]
    fn a_screen_name_is_trimmed_and_bounded() {
        let draft = |name: &str| ScreenDraft {
            name: name.to_owned(),
            rows: 2,
            seats_per_row: 2,
            blocked: Vec::new(),
        };
        assert_eq!(NewScreen::parse(draft("  Hall 9 ")).unwrap().name, "Hall 9");
        assert_eq!(NewScreen::parse(draft("   ")), Err(ScreenError::EmptyName));
        assert_eq!(
            NewScreen::parse(draft(&"x".repeat(101))),
            Err(ScreenError::NameTooLong)
        );
    }

    #[test]
    fn the_smallest_fitting_screen_is_chosen() {
        let schedules = [
            schedule(screen("Hall 1", 10, 12), 0, &[]),
            schedule(screen("Hall 3", 6, 8), 0, &[]),
            schedule(screen("Hall 2", 8, 10), 0, &[]),
        ];
        assert_eq!(
            choose_screen(&schedules, SMALL, Some(at(18))).unwrap().name,
            "Hall 3"
        );
        let wide = Grid {
            rows: 6,
            seats_per_row: 9,
        };
        assert_eq!(
            choose_screen(&schedules, wide, None).unwrap().name,
            "Hall 2"
        );
    }

    #[test]
    fn a_screen_busy_within_three_hours_is_passed_over() {
        let schedules = [
            schedule(screen("Hall 1", 10, 12), 0, &[]),
            schedule(screen("Hall 3", 6, 8), 1, &[at(16)]),
        ];
        // 16:00 + 3 h: busy until 19:00.
        assert_eq!(
            choose_screen(&schedules, SMALL, Some(at(18))).unwrap().name,
            "Hall 1"
        );
        assert_eq!(
            choose_screen(&schedules, SMALL, Some(at(19))).unwrap().name,
            "Hall 3"
        );
        // A showing starting 2 hours later also collides.
        assert_eq!(
            choose_screen(&schedules, SMALL, Some(at(14))).unwrap().name,
            "Hall 1"
        );
    }

    #[test]
    fn a_showing_without_a_start_neither_blocks_nor_is_blocked() {
        let schedules = [schedule(screen("Hall 3", 6, 8), 3, &[at(16)])];
        assert_eq!(
            choose_screen(&schedules, SMALL, None).unwrap().name,
            "Hall 3"
        );
    }

    #[test]
    fn among_equal_screens_the_least_used_then_the_first_by_name_wins() {
        let schedules = [
            schedule(screen("B", 6, 8), 2, &[]),
            schedule(screen("C", 6, 8), 1, &[]),
            schedule(screen("A", 6, 8), 2, &[]),
        ];
        assert_eq!(choose_screen(&schedules, SMALL, None).unwrap().name, "C");
        let schedules = [
            schedule(screen("B", 6, 8), 1, &[]),
            schedule(screen("A", 6, 8), 1, &[]),
        ];
        assert_eq!(choose_screen(&schedules, SMALL, None).unwrap().name, "A");
    }

    #[test]
    fn when_nothing_fits_the_largest_screen_is_named() {
        let schedules = [
            schedule(screen("Hall 1", 10, 12), 0, &[]),
            schedule(screen("Hall 3", 6, 8), 0, &[]),
        ];
        let huge = Grid {
            rows: 30,
            seats_per_row: 40,
        };
        assert_eq!(
            choose_screen(&schedules, huge, None)
                .unwrap_err()
                .to_string(),
            "no free screen fits a showing of 30 rows × 40 seats (largest: Hall 1, 10 × 12)"
        );
    }

    #[test]
    fn a_named_screen_must_exist_and_be_free() {
        let hall = screen("Hall 3", 6, 8);
        let id = hall.id;
        let schedules = [schedule(hall, 1, &[at(16)])];
        assert_eq!(
            assign_named(&schedules, id, Some(at(20))).unwrap().name,
            "Hall 3"
        );
        let busy = assign_named(&schedules, id, Some(at(17))).unwrap_err();
        assert!(matches!(busy, AssignmentError::Busy { .. }), "{busy}");
        assert!(busy.to_string().contains("2026-11-21T16:00:00Z"), "{busy}");
        assert!(matches!(
            assign_named(&schedules, ScreenId::new(), None),
            Err(AssignmentError::UnknownScreen(_))
        ));
    }
}

//! Catalog rules, free of I/O.
//!
//! - this module: a new listing and its ticket quota;
//! - [`screen`]: screens, their seats and which one a showing gets;
//! - [`seats`]: what a seated booking may ask for and the seat map.

pub mod screen;
pub mod seats;

use contracts::catalog::{InventoryRejection, ListingKind};
use kernel::ids::ScreenId;
use kernel::Money;
use time::OffsetDateTime;

pub use screen::Grid;

/// Longest title or description accepted.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Largest ticket quota one listing may have.
pub const MAX_TICKETS: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("title must be at most {MAX_TITLE_CHARS} characters")]
    TitleTooLong,
    #[error("description must be at most {MAX_DESCRIPTION_CHARS} characters")]
    DescriptionTooLong,
    #[error("price: {0}")]
    Price(#[from] kernel::money::MoneyError),
    #[error("tickets must be between 1 and {MAX_TICKETS} (got {0})")]
    TicketsOutOfRange(i64),
    #[error("a movie needs `tickets` (a ticket quota) or `seating` (assigned seats)")]
    MissingCapacity,
    #[error("a movie is sold by `tickets` (a quota) or by `seating` (assigned seats), not both")]
    BothCapacities,
    #[error("{0} listings are not on sale yet; this release sells movie tickets")]
    UnsupportedKind(&'static str),
    #[error("seating needs either `screenId` or both `rows` and `seatsPerRow`")]
    SeatingShape,
    #[error("seating needs at least 1 row of at least 1 seat (got {0} × {1})")]
    GridOutOfRange(i64, i64),
    #[error("no screen with id {0:?}")]
    UnknownScreen(String),
    #[error("startsAt must be an RFC 3339 date-time such as 2026-11-21T19:30:00Z (got {0:?})")]
    StartsAt(String),
}

/// A listing as the admin describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    pub kind: ListingKind,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub capacity: Capacity,
    /// When the showing starts, if it has a set time.
    pub starts_at: Option<OffsetDateTime>,
}

/// How a new listing is sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    /// Interchangeable tickets.
    Quota(Quota),
    /// Assigned seats, on a screen catalog assigns.
    Seated(Seating),
}

/// Which screen a seated showing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seating {
    /// This one.
    Screen(ScreenId),
    /// Any free screen with at least this grid.
    Grid(Grid),
}

/// What an admin may send, before validation.
#[derive(Debug, Clone, Default)]
pub struct ListingDraft {
    pub kind: Option<ListingKind>,
    pub title: String,
    pub description: Option<String>,
    pub price: i64,
    pub tickets: Option<i64>,
    pub seating: Option<SeatingDraft>,
    pub starts_at: Option<String>,
}

/// `seating` as sent: a screen's id, or the grid wanted.
#[derive(Debug, Clone, Default)]
pub struct SeatingDraft {
    pub screen_id: Option<String>,
    pub rows: Option<i64>,
    pub seats_per_row: Option<i64>,
}

impl Seating {
    pub fn parse(draft: SeatingDraft) -> Result<Seating, ListingError> {
        match draft {
            SeatingDraft {
                screen_id: Some(id),
                rows: None,
                seats_per_row: None,
            } => id
                .trim()
                .parse()
                .map(Seating::Screen)
                .map_err(|_| ListingError::UnknownScreen(id)),
            SeatingDraft {
                screen_id: None,
                rows: Some(rows),
                seats_per_row: Some(per_row),
            } => match (u32::try_from(rows), u32::try_from(per_row)) {
                (Ok(r @ 1..), Ok(p @ 1..)) => Ok(Seating::Grid(Grid {
                    rows: r,
                    seats_per_row: p,
                })),
                _ => Err(ListingError::GridOutOfRange(rows, per_row)),
            },
            _ => Err(ListingError::SeatingShape),
        }
    }
}

impl NewListing {
    pub fn parse(draft: ListingDraft) -> Result<NewListing, ListingError> {
        let kind = draft.kind.unwrap_or(ListingKind::Movie);
        if kind != ListingKind::Movie {
            return Err(ListingError::UnsupportedKind(kind.as_str()));
        }
        let title = draft.title.trim().to_owned();
        if title.is_empty() {
            return Err(ListingError::EmptyTitle);
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(ListingError::TitleTooLong);
        }
        let description = draft.description.unwrap_or_default().trim().to_owned();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ListingError::DescriptionTooLong);
        }
        let price = Money::parse(draft.price)?;
        let capacity = match (draft.tickets, draft.seating) {
            (Some(tickets), None) => Capacity::Quota(Quota::new(tickets)?),
            (None, Some(seating)) => Capacity::Seated(Seating::parse(seating)?),
            (None, None) => return Err(ListingError::MissingCapacity),
            (Some(_), Some(_)) => return Err(ListingError::BothCapacities),
        };
        let starts_at = draft
            .starts_at
            .map(|text| {
                OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| ListingError::StartsAt(text))
            })
            .transpose()?;
        Ok(NewListing {
            kind,
            title,
            description,
            price,
            capacity,
            starts_at,
        })
    }
}

/// A ticket quota: how many exist and how many are still for sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    total: u32,
    available: u32,
}

impl Quota {
    /// A fresh quota with every ticket available.
    pub fn new(total: i64) -> Result<Quota, ListingError> {
        match u32::try_from(total) {
            Ok(total) if (1..=MAX_TICKETS).contains(&total) => Ok(Quota {
                total,
                available: total,
            }),
            _ => Err(ListingError::TicketsOutOfRange(total)),
        }
    }

    /// A quota as stored. The store guarantees `available <= total`.
    pub fn restore(total: u32, available: u32) -> Quota {
        Quota {
            total,
            available: available.min(total),
        }
    }

    pub fn total(self) -> u32 {
        self.total
    }

    pub fn available(self) -> u32 {
        self.available
    }

    /// Holds `requested` tickets, or says how many remain.
    pub fn hold(self, requested: u32) -> Result<Quota, InventoryRejection> {
        match self.available.checked_sub(requested) {
            Some(available) if requested > 0 => Ok(Quota { available, ..self }),
            _ => Err(InventoryRejection::SoldOut {
                requested,
                remaining: self.available,
            }),
        }
    }

    /// Puts `quantity` tickets back on sale; never above the total.
    pub fn release(self, quantity: u32) -> Quota {
        Quota {
            available: self.available.saturating_add(quantity).min(self.total),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movie(tickets: i64) -> ListingDraft {
        ListingDraft {
            kind: Some(ListingKind::Movie),
            title: "LALALand".into(),
            price: 12_000,
            tickets: Some(tickets),
            ..ListingDraft::default()
        }
    }

    #[test]
    fn a_movie_with_a_quota_goes_on_sale_with_every_ticket_available() {
        let listing = NewListing::parse(movie(100)).unwrap();
        let Capacity::Quota(quota) = listing.capacity else {
            panic!("a quota movie");
        };
        assert_eq!(quota.total(), 100);
        assert_eq!(quota.available(), 100);
        assert_eq!(listing.title, "LALALand");
        assert_eq!(listing.starts_at, None);
    }

    fn seated(seating: SeatingDraft) -> ListingDraft {
        ListingDraft {
            tickets: None,
            seating: Some(seating),
            starts_at: Some("2026-11-21T19:30:00+09:00".into()),
            ..movie(1)
        }
    }

    #[test]
    fn a_seated_movie_names_its_screen_or_the_grid_it_needs() {
        let screen = ScreenId::new();
        let listing = NewListing::parse(seated(SeatingDraft {
            screen_id: Some(screen.to_string()),
            ..SeatingDraft::default()
        }))
        .unwrap();
        assert_eq!(listing.capacity, Capacity::Seated(Seating::Screen(screen)));
        assert_eq!(
            listing.starts_at,
            Some(time::macros::datetime!(2026-11-21 10:30 UTC))
        );
        let listing = NewListing::parse(seated(SeatingDraft {
            rows: Some(30),
            seats_per_row: Some(40),
            ..SeatingDraft::default()
        }))
        .unwrap();
        assert_eq!(
            listing.capacity,
            Capacity::Seated(Seating::Grid(Grid {
                rows: 30,
                seats_per_row: 40
            }))
        );
    }

    #[test]
    fn a_movie_is_sold_by_quota_or_by_seat_never_both_nor_neither() {
        let mut both = seated(SeatingDraft {
            rows: Some(2),
            seats_per_row: Some(2),
            ..SeatingDraft::default()
        });
        both.tickets = Some(10);
        assert_eq!(NewListing::parse(both), Err(ListingError::BothCapacities));
        let mut neither = movie(1);
        neither.tickets = None;
        assert_eq!(
            NewListing::parse(neither),
            Err(ListingError::MissingCapacity)
        );
    }

    #[test]
    fn seating_is_a_screen_or_a_positive_grid() {
        let parse = |screen_id: Option<&str>, rows, seats_per_row| {
            Seating::parse(SeatingDraft {
                screen_id: screen_id.map(str::to_owned),
                rows,
                seats_per_row,
            })
        };
        assert_eq!(parse(None, None, None), Err(ListingError::SeatingShape));
        assert_eq!(parse(None, Some(3), None), Err(ListingError::SeatingShape));
        assert_eq!(
            parse(Some("x"), Some(3), Some(3)),
            Err(ListingError::SeatingShape)
        );
        assert_eq!(
            parse(Some("hall-1"), None, None),
            Err(ListingError::UnknownScreen("hall-1".into()))
        );
        assert_eq!(
            parse(None, Some(0), Some(3)),
            Err(ListingError::GridOutOfRange(0, 3))
        );
    }

    #[test]
    fn a_start_time_must_be_rfc_3339() {
        let mut draft = movie(10);
        draft.starts_at = Some("tomorrow at 7".into());
        assert_eq!(
            NewListing::parse(draft),
            Err(ListingError::StartsAt("tomorrow at 7".into()))
        );
    }

    #[test]
    fn a_quota_must_be_positive_and_bounded() {
        assert_eq!(
            NewListing::parse(movie(0)),
            Err(ListingError::TicketsOutOfRange(0))
        );
        assert_eq!(
            NewListing::parse(movie(-3)),
            Err(ListingError::TicketsOutOfRange(-3))
        );
        assert!(NewListing::parse(movie(i64::from(MAX_TICKETS) + 1)).is_err());
    }

    #[test]
    fn a_blank_title_or_negative_price_is_refused() {
        let mut draft = movie(10);
        draft.title = "   ".into();
        assert_eq!(NewListing::parse(draft), Err(ListingError::EmptyTitle));
        let mut draft = movie(10);
        draft.price = -1;
        assert!(matches!(
            NewListing::parse(draft),
            Err(ListingError::Price(_))
        ));
    }

    #[test]
    fn kinds_not_yet_on_sale_are_named() {
        let mut draft = movie(10);
        draft.kind = Some(ListingKind::Bike);
        assert_eq!(
            NewListing::parse(draft),
            Err(ListingError::UnsupportedKind("bike"))
        );
    }

    #[test]
    fn holding_tickets_lowers_what_is_available() {
        let quota = Quota::new(100).unwrap().hold(45).unwrap();
        assert_eq!(quota.available(), 55);
    }

    #[test]
    fn holding_more_than_remains_is_sold_out_and_says_how_many_remain() {
        let quota = Quota::restore(100, 55);
        assert_eq!(
            quota.hold(57),
            Err(InventoryRejection::SoldOut {
                requested: 57,
                remaining: 55
            })
        );
    }

    #[test]
    fn the_last_ticket_can_be_held_but_not_one_more() {
        let quota = Quota::restore(100, 1);
        let empty = quota.hold(1).unwrap();
        assert_eq!(empty.available(), 0);
        assert!(empty.hold(1).is_err());
    }

    #[test]
    fn releasing_never_exceeds_the_total() {
        let quota = Quota::restore(100, 55);
        assert_eq!(quota.release(45).available(), 100);
        assert_eq!(quota.release(500).available(), 100);
    }
}

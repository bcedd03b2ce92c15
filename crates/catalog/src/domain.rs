//! Catalog rules, free of I/O.
//!
//! - this module: a new listing, a change to one, and its ticket quota;
//! - [`screen`]: screens, their seats and which one a showing gets;
//! - [`seat_map`]: a musical's own seats and their sections;
//! - [`seats`]: what a booking may ask for and the seat map.

pub mod screen;
pub mod seat_map;
pub mod seats;

use contracts::catalog::{InventoryRejection, ListingKind};
use kernel::ids::ScreenId;
use kernel::Money;
use time::OffsetDateTime;

pub use screen::Grid;
use seat_map::{SeatMap, SeatMapError, SeatMapPatch, SectionDraft};

/// Longest title or description accepted.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest bike colour accepted.
pub const MAX_COLOR_CHARS: usize = 50;
/// Largest ticket quota one listing may have.
pub const MAX_TICKETS: u32 = 1_000_000;
/// What renting a bike costs when the admin names no price (points).
pub const BIKE_PRICE: i64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    /// A field every listing of its kind has is missing: the body is
    /// malformed (400), as when it lacked a field of the request type.
    #[error("missing field `{0}`")]
    Missing(&'static str),
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
    #[error("seating needs either `screenId` or both `rows` and `seatsPerRow`")]
    SeatingShape,
    #[error("seating needs at least 1 row of at least 1 seat (got {0} × {1})")]
    GridOutOfRange(i64, i64),
    #[error("no screen with id {0:?}")]
    UnknownScreen(String),
    #[error("startsAt must be an RFC 3339 date-time such as 2026-11-21T19:30:00Z (got {0:?})")]
    StartsAt(String),
    #[error("a musical is sold by seat: send `seating` with `rows` and `seatsPerRow`{0}")]
    MusicalSeating(&'static str),
    #[error("sections are for musicals; every seat of a movie costs its price")]
    SectionsOfAMovie,
    #[error("a bike is rented as a whole; it takes no `{0}`")]
    NotForBikes(&'static str),
    #[error("a bike needs a `color`")]
    MissingColor,
    #[error("color must be at most {MAX_COLOR_CHARS} characters")]
    ColorTooLong,
    #[error("color applies to bikes only, not to a {0}")]
    ColorOfANonBike(&'static str),
    #[error("seating can only be changed for a musical; a {0}'s seats are not its own")]
    SeatingOfANonMusical(&'static str),
    #[error("nothing to change: send any of title, description, price, startsAt, color, seating")]
    NothingToChange,
    #[error(transparent)]
    SeatMap(#[from] SeatMapError),
}

impl ListingError {
    /// Whether the body lacks what its kind always has (400, not 422).
    pub fn is_malformed(&self) -> bool {
        matches!(self, ListingError::Missing(_))
    }
}

/// A listing as the admin describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    pub kind: ListingKind,
    /// `None` for a bike sent without one: it is named after its number
    /// once it has one ([`bike_title`]).
    pub title: Option<String>,
    pub description: String,
    pub price: Money,
    pub capacity: Capacity,
    /// When the showing starts, if it has a set time.
    pub starts_at: Option<OffsetDateTime>,
    /// A bike's colour.
    pub color: Option<String>,
}

/// How a new listing is sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    /// Interchangeable tickets.
    Quota(Quota),
    /// Assigned seats, on a screen catalog assigns (a movie).
    Seated(Seating),
    /// Assigned seats on a seat map of its own (a musical).
    SeatMap(SeatMap),
    /// One thing, lent to one customer at a time (a bike).
    Unit,
}

/// How a listing's bookings take its inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoldBy {
    /// A number of interchangeable tickets.
    Tickets,
    /// Named seats.
    Seats,
    /// The one thing itself.
    Unit,
}

impl SoldBy {
    /// A movie is seated when it has a screen; a musical always is.
    pub fn of(kind: ListingKind, on_a_screen: bool) -> SoldBy {
        match kind {
            ListingKind::Movie if on_a_screen => SoldBy::Seats,
            ListingKind::Movie => SoldBy::Tickets,
            ListingKind::Musical => SoldBy::Seats,
            ListingKind::Bike => SoldBy::Unit,
        }
    }
}

/// The title of a bike registered without one.
pub fn bike_title(number: u32) -> String {
    format!("Bike {number}")
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
    pub title: Option<String>,
    pub description: Option<String>,
    pub price: Option<i64>,
    pub tickets: Option<i64>,
    pub seating: Option<SeatingDraft>,
    pub starts_at: Option<String>,
    pub color: Option<String>,
}

/// `seating` as sent: a screen's id, or the grid wanted (for a musical,
/// its seat map, with its sections).
#[derive(Debug, Clone, Default)]
pub struct SeatingDraft {
    pub screen_id: Option<String>,
    pub rows: Option<i64>,
    pub seats_per_row: Option<i64>,
    pub sections: Option<Vec<SectionDraft>>,
}

impl Seating {
    pub fn parse(draft: SeatingDraft) -> Result<Seating, ListingError> {
        if draft.sections.is_some() {
            return Err(ListingError::SectionsOfAMovie);
        }
        match draft {
            SeatingDraft {
                screen_id: Some(id),
                rows: None,
                seats_per_row: None,
                ..
            } => id
                .trim()
                .parse()
                .map(Seating::Screen)
                .map_err(|_| ListingError::UnknownScreen(id)),
            SeatingDraft {
                screen_id: None,
                rows: Some(rows),
                seats_per_row: Some(per_row),
                ..
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

/// A musical's seat map as sent on registration: its grid, no screen.
fn musical_seats(seating: Option<SeatingDraft>) -> Result<SeatMap, ListingError> {
    match seating {
        None => Err(ListingError::MusicalSeating("")),
        Some(SeatingDraft {
            screen_id: Some(_), ..
        }) => Err(ListingError::MusicalSeating(
            " (a musical has its own seat map, not a screen: no `screenId`)",
        )),
        Some(SeatingDraft {
            rows: Some(rows),
            seats_per_row: Some(per_row),
            sections,
            ..
        }) => Ok(SeatMap::parse(rows, per_row, sections.unwrap_or_default())?),
        Some(_) => Err(ListingError::MusicalSeating("")),
    }
}

fn title(text: String) -> Result<String, ListingError> {
    let title = text.trim().to_owned();
    if title.is_empty() {
        return Err(ListingError::EmptyTitle);
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ListingError::TitleTooLong);
    }
    Ok(title)
}

fn description(text: String) -> Result<String, ListingError> {
    let description = text.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ListingError::DescriptionTooLong);
    }
    Ok(description)
}

fn starts_at(text: String) -> Result<OffsetDateTime, ListingError> {
    OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ListingError::StartsAt(text))
}

/// A bike's colour as people say it ("red", "mint green"), trimmed.
fn color(text: String) -> Result<String, ListingError> {
    let color = text.trim().to_owned();
    if color.is_empty() {
        return Err(ListingError::MissingColor);
    }
    if color.chars().count() > MAX_COLOR_CHARS {
        return Err(ListingError::ColorTooLong);
    }
    Ok(color)
}

impl NewListing {
    pub fn parse(draft: ListingDraft) -> Result<NewListing, ListingError> {
        let kind = draft.kind.unwrap_or(ListingKind::Movie);
        let title = match (kind, draft.title) {
            (_, Some(text)) => Some(title(text)?),
            (ListingKind::Bike, None) => None,
            (_, None) => return Err(ListingError::Missing("title")),
        };
        let description = description(draft.description.unwrap_or_default())?;
        let price = match (kind, draft.price) {
            (_, Some(price)) => Money::parse(price)?,
            (ListingKind::Bike, None) => Money::parse(BIKE_PRICE)?,
            (_, None) => return Err(ListingError::Missing("price")),
        };
        let capacity = match kind {
            ListingKind::Movie => match (draft.tickets, draft.seating) {
                (Some(tickets), None) => Capacity::Quota(Quota::new(tickets)?),
                (None, Some(seating)) => Capacity::Seated(Seating::parse(seating)?),
                (None, None) => return Err(ListingError::MissingCapacity),
                (Some(_), Some(_)) => return Err(ListingError::BothCapacities),
            },
            ListingKind::Musical if draft.tickets.is_some() => {
                return Err(ListingError::MusicalSeating(" (not `tickets`)"))
            }
            ListingKind::Musical => Capacity::SeatMap(musical_seats(draft.seating)?),
            ListingKind::Bike if draft.tickets.is_some() => {
                return Err(ListingError::NotForBikes("tickets"))
            }
            ListingKind::Bike if draft.seating.is_some() => {
                return Err(ListingError::NotForBikes("seating"))
            }
            ListingKind::Bike => Capacity::Unit,
        };
        if kind == ListingKind::Bike && draft.starts_at.is_some() {
            return Err(ListingError::NotForBikes("startsAt"));
        }
        let starts_at = draft.starts_at.map(starts_at).transpose()?;
        let color = match (kind, draft.color) {
            (ListingKind::Bike, Some(text)) => Some(color(text)?),
            (ListingKind::Bike, None) => return Err(ListingError::MissingColor),
            (_, None) => None,
            (other, Some(_)) => return Err(ListingError::ColorOfANonBike(other.as_str())),
        };
        Ok(NewListing {
            kind,
            title,
            description,
            price,
            capacity,
            starts_at,
            color,
        })
    }
}

/// A change an admin asks for, before validation: `None` leaves a field
/// as it is; `starts_at: Some(None)` removes the start time.
#[derive(Debug, Clone, Default)]
pub struct ListingChangeDraft {
    pub title: Option<String>,
    pub description: Option<String>,
    pub price: Option<i64>,
    pub starts_at: Option<Option<String>>,
    pub color: Option<String>,
    pub seating: Option<SeatMapPatch>,
}

/// A change to a listing, valid for its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingChange {
    pub title: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub starts_at: Option<Option<OffsetDateTime>>,
    pub color: Option<String>,
    /// A musical's seat map; applied to the current one by
    /// [`SeatMap::revise`], then checked against the booked seats.
    pub seating: Option<SeatMapPatch>,
}

impl ListingChange {
    pub fn parse(
        kind: ListingKind,
        draft: ListingChangeDraft,
    ) -> Result<ListingChange, ListingError> {
        let ListingChangeDraft {
            title: new_title,
            description: new_description,
            price,
            starts_at: new_start,
            color: new_color,
            seating,
        } = draft;
        if new_title.is_none()
            && new_description.is_none()
            && price.is_none()
            && new_start.is_none()
            && new_color.is_none()
            && seating.is_none()
        {
            return Err(ListingError::NothingToChange);
        }
        if kind == ListingKind::Bike && new_start.is_some() {
            return Err(ListingError::NotForBikes("startsAt"));
        }
        if kind != ListingKind::Bike && new_color.is_some() {
            return Err(ListingError::ColorOfANonBike(kind.as_str()));
        }
        if kind != ListingKind::Musical && seating.is_some() {
            return Err(ListingError::SeatingOfANonMusical(kind.as_str()));
        }
        Ok(ListingChange {
            title: new_title.map(title).transpose()?,
            description: new_description.map(description).transpose()?,
            price: price.map(Money::parse).transpose()?,
            starts_at: new_start
                .map(|start| start.map(starts_at).transpose())
                .transpose()?,
            color: new_color.map(color).transpose()?,
            seating,
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

    /// The one thing a unit listing (a bike) lends: out or not.
    pub fn unit() -> Quota {
        Quota {
            total: 1,
            available: 1,
        }
    }

    /// Lends the one thing out, or says it is out with someone else.
    pub fn lend(self) -> Result<Quota, InventoryRejection> {
        self.hold(1).map_err(|_| InventoryRejection::InUse)
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
            title: Some("LALALand".into()),
            price: Some(12_000),
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
        assert_eq!(listing.title.as_deref(), Some("LALALand"));
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
                sections: None,
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
        draft.title = Some("   ".into());
        assert_eq!(NewListing::parse(draft), Err(ListingError::EmptyTitle));
        let mut draft = movie(10);
        draft.price = Some(-1);
        assert!(matches!(
            NewListing::parse(draft),
            Err(ListingError::Price(_))
        ));
    }

    fn bike(color: Option<&str>) -> ListingDraft {
        ListingDraft {
            kind: Some(ListingKind::Bike),
            color: color.map(str::to_owned),
            ..ListingDraft::default()
        }
    }

    #[test]
    fn a_bike_needs_a_colour_and_is_otherwise_named_and_priced_for_it() {
        let listing = NewListing::parse(bike(Some(" red "))).unwrap();
        assert_eq!(listing.color.as_deref(), Some("red"));
        assert_eq!(listing.title, None);
        assert_eq!(listing.price, Money::parse(BIKE_PRICE).unwrap());
        assert_eq!(listing.capacity, Capacity::Unit);
        assert_eq!(bike_title(7), "Bike 7");
        let mut named = bike(Some("blue"));
        named.title = Some("The blue one".into());
        named.price = Some(800);
        let named = NewListing::parse(named).unwrap();
        assert_eq!(named.title.as_deref(), Some("The blue one"));
        assert_eq!(named.price.minor_units(), 800);
        assert_eq!(
            NewListing::parse(bike(None)),
            Err(ListingError::MissingColor)
        );
        assert_eq!(
            NewListing::parse(bike(Some("  "))),
            Err(ListingError::MissingColor)
        );
    }

    #[test]
    fn a_bike_takes_no_tickets_seats_or_start_and_only_bikes_have_a_colour() {
        let mut tickets = bike(Some("red"));
        tickets.tickets = Some(1);
        assert_eq!(
            NewListing::parse(tickets),
            Err(ListingError::NotForBikes("tickets"))
        );
        let mut start = bike(Some("red"));
        start.starts_at = Some("2026-11-21T19:30:00Z".into());
        assert_eq!(
            NewListing::parse(start).unwrap_err().to_string(),
            "a bike is rented as a whole; it takes no `startsAt`"
        );
        let mut coloured = movie(10);
        coloured.color = Some("red".into());
        assert_eq!(
            NewListing::parse(coloured).unwrap_err().to_string(),
            "color applies to bikes only, not to a movie"
        );
    }

    fn musical(seating: Option<SeatingDraft>) -> ListingDraft {
        ListingDraft {
            kind: Some(ListingKind::Musical),
            title: Some("Wicked".into()),
            price: Some(90_000),
            seating,
            ..ListingDraft::default()
        }
    }

    #[test]
    fn a_musical_brings_its_own_seat_map_and_sections() {
        let listing = NewListing::parse(musical(Some(SeatingDraft {
            rows: Some(10),
            seats_per_row: Some(20),
            sections: Some(vec![SectionDraft {
                name: "VIP".into(),
                price: 150_000,
                rows: vec!["A".into(), "B".into()],
            }]),
            ..SeatingDraft::default()
        })))
        .unwrap();
        let Capacity::SeatMap(map) = listing.capacity else {
            panic!("a musical has a seat map");
        };
        assert_eq!(map.total(), 200);
        assert_eq!(map.sections()[0].name(), "VIP");
    }

    #[test]
    fn a_musical_is_sold_by_seat_on_no_screen() {
        assert!(NewListing::parse(musical(None))
            .unwrap_err()
            .to_string()
            .contains("send `seating` with `rows` and `seatsPerRow`"));
        let on_screen = musical(Some(SeatingDraft {
            screen_id: Some(ScreenId::new().to_string()),
            ..SeatingDraft::default()
        }));
        assert!(NewListing::parse(on_screen)
            .unwrap_err()
            .to_string()
            .contains("not a screen"));
        let mut quota = musical(None);
        quota.tickets = Some(100);
        assert!(NewListing::parse(quota)
            .unwrap_err()
            .to_string()
            .contains("not `tickets`"));
        let bad_section = musical(Some(SeatingDraft {
            rows: Some(2),
            seats_per_row: Some(2),
            sections: Some(vec![SectionDraft {
                name: "VIP".into(),
                price: 1,
                rows: vec!["C".into()],
            }]),
            ..SeatingDraft::default()
        }));
        assert_eq!(
            NewListing::parse(bad_section).unwrap_err().to_string(),
            "sections: VIP names row C, but the seat map has rows A to B"
        );
    }

    #[test]
    fn a_movies_seats_have_no_sections() {
        let sections = seated(SeatingDraft {
            rows: Some(2),
            seats_per_row: Some(2),
            sections: Some(vec![]),
            ..SeatingDraft::default()
        });
        assert_eq!(
            NewListing::parse(sections),
            Err(ListingError::SectionsOfAMovie)
        );
    }

    #[test]
    fn a_missing_title_or_price_is_a_malformed_body_except_for_a_bike() {
        let mut untitled = movie(10);
        untitled.title = None;
        let error = NewListing::parse(untitled).unwrap_err();
        assert!(error.is_malformed());
        assert_eq!(error.to_string(), "missing field `title`");
        let mut unpriced = musical(None);
        unpriced.price = None;
        assert_eq!(
            NewListing::parse(unpriced),
            Err(ListingError::Missing("price"))
        );
    }

    #[test]
    fn a_change_names_what_changes_and_suits_the_kind() {
        let change = ListingChange::parse(
            ListingKind::Movie,
            ListingChangeDraft {
                title: Some(" Dune: Part Two ".into()),
                starts_at: Some(None),
                ..ListingChangeDraft::default()
            },
        )
        .unwrap();
        assert_eq!(change.title.as_deref(), Some("Dune: Part Two"));
        assert_eq!(change.starts_at, Some(None));
        assert_eq!(change.price, None);
        let refused = |kind, draft| ListingChange::parse(kind, draft).unwrap_err().to_string();
        assert!(refused(ListingKind::Movie, ListingChangeDraft::default())
            .starts_with("nothing to change"));
        assert_eq!(
            refused(
                ListingKind::Movie,
                ListingChangeDraft {
                    seating: Some(SeatMapPatch::default()),
                    ..ListingChangeDraft::default()
                }
            ),
            "seating can only be changed for a musical; a movie's seats are not its own"
        );
        assert_eq!(
            refused(
                ListingKind::Musical,
                ListingChangeDraft {
                    color: Some("red".into()),
                    ..ListingChangeDraft::default()
                }
            ),
            "color applies to bikes only, not to a musical"
        );
        assert_eq!(
            refused(
                ListingKind::Bike,
                ListingChangeDraft {
                    starts_at: Some(Some("2026-11-21T19:30:00Z".into())),
                    ..ListingChangeDraft::default()
                }
            ),
            "a bike is rented as a whole; it takes no `startsAt`"
        );
        assert!(refused(
            ListingKind::Bike,
            ListingChangeDraft {
                price: Some(-1),
                ..ListingChangeDraft::default()
            }
        )
        .contains("must not be negative"));
        assert_eq!(
            refused(
                ListingKind::Movie,
                ListingChangeDraft {
                    starts_at: Some(Some("soon".into())),
                    ..ListingChangeDraft::default()
                }
            ),
            "startsAt must be an RFC 3339 date-time such as 2026-11-21T19:30:00Z (got \"soon\")"
        );
    }

    #[test]
    fn a_bike_is_lent_to_one_customer_at_a_time() {
        let out = Quota::unit().lend().unwrap();
        assert_eq!(out.available(), 0);
        assert_eq!(out.lend(), Err(InventoryRejection::InUse));
        assert_eq!(out.release(1), Quota::unit());
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

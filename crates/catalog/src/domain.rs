//! Catalog rules, free of I/O.

use contracts::catalog::{InventoryRejection, ListingKind};
use kernel::Money;

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
    #[error("a movie needs `tickets` (a quota) to be sold")]
    MissingCapacity,
    #[error("{0} listings are not on sale yet; this release sells movie tickets by quota")]
    UnsupportedKind(&'static str),
    #[error("assigned seating is not on sale yet; give `tickets` instead")]
    SeatingNotSupported,
}

/// A listing as the admin describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    pub kind: ListingKind,
    pub title: String,
    pub description: String,
    pub price: Money,
    pub quota: Quota,
}

/// What an admin may send, before validation.
#[derive(Debug, Clone, Default)]
pub struct ListingDraft {
    pub kind: Option<ListingKind>,
    pub title: String,
    pub description: Option<String>,
    pub price: i64,
    pub tickets: Option<i64>,
    pub has_seating: bool,
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
        if draft.has_seating {
            return Err(ListingError::SeatingNotSupported);
        }
        let tickets = draft.tickets.ok_or(ListingError::MissingCapacity)?;
        let quota = Quota::new(tickets)?;
        Ok(NewListing {
            kind,
            title,
            description,
            price,
            quota,
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
        assert_eq!(listing.quota.total(), 100);
        assert_eq!(listing.quota.available(), 100);
        assert_eq!(listing.title, "LALALand");
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

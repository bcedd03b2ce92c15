//! What each event changes in a customer's my-page. Pure.
//!
//! The row a reservation event leads to: every reservation event carries
//! the whole booking, so each one yields the complete row.
//!
//! The row must never go backwards: a late `confirmed` (a redelivery, or a
//! re-send after a failed publish) must not overwrite `cancelled`. Each
//! event carries the version it brought the reservation to, and a row only
//! takes an event newer than the one it holds.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;

use contracts::catalog::CatalogEvent;
use contracts::payment::PaymentEvent;
use contracts::reservation::{Booking, ReservationEvent};
use contracts::wallet::WalletEvent;
use kernel::ids::{ListingId, ReservationId, ScreenId};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyReservationRow {
    pub booking: Booking,
    pub status: &'static str,
    pub updated_at: OffsetDateTime,
    /// The reservation's version this row shows (0: an event from before
    /// versions were recorded, which always applies).
    pub version: u64,
}

/// Whether an event at `incoming` replaces a row at `held`.
pub fn supersedes(held: u64, incoming: u64) -> bool {
    incoming == 0 || incoming > held
}

/// The row after `event` (at `version`), given the row held so far.
pub fn apply(
    held: Option<MyReservationRow>,
    event: &ReservationEvent,
    version: u64,
) -> Option<MyReservationRow> {
    match held {
        Some(row) if !supersedes(row.version, version) => Some(row),
        _ => Some(project(event, version)),
    }
}

/// Every status [`project`] writes, in the order a booking may go through
/// them: what the API documents a booking's `status` as.
pub const STATUSES: [&str; 5] = ["pending", "confirmed", "rejected", "cancelled", "returned"];

/// A booking's status on the wire: one of [`STATUSES`].
#[derive(Debug)]
pub struct ReservationStatus;

impl utoipa::PartialSchema for ReservationStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        runtime::api::string_enum(&STATUSES)
    }
}

impl utoipa::ToSchema for ReservationStatus {}

pub fn project(event: &ReservationEvent, version: u64) -> MyReservationRow {
    let (status, updated_at) = match event {
        ReservationEvent::ReservationPlaced { placed_at, .. } => ("pending", *placed_at),
        ReservationEvent::ReservationConfirmed { confirmed_at, .. } => ("confirmed", *confirmed_at),
        ReservationEvent::ReservationRejected { rejected_at, .. } => ("rejected", *rejected_at),
        ReservationEvent::ReservationExpired { expired_at, .. } => ("rejected", *expired_at),
        ReservationEvent::ReservationCancelled { cancelled_at, .. } => ("cancelled", *cancelled_at),
        ReservationEvent::ReservationReturned { returned_at, .. } => ("returned", *returned_at),
    };
    MyReservationRow {
        booking: event.booking().clone(),
        status,
        updated_at,
        version,
    }
}

/// Where a booking's card payment stands.
///
/// Payment events about one booking may reach my-page late (a redelivery,
/// a re-send), so a status only replaces one from an earlier stage:
/// declined < authorised < captured | voided < refunded. A decline is the
/// lowest because a later card can still be authorised; captured and voided
/// exclude each other, so whichever arrives first stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Declined,
    Authorised,
    Captured,
    Voided,
    Refunded,
}

/// As the payment service lists its statuses.
impl utoipa::PartialSchema for PaymentStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        runtime::api::string_enum(
            &[
                PaymentStatus::Authorised,
                PaymentStatus::Declined,
                PaymentStatus::Captured,
                PaymentStatus::Voided,
                PaymentStatus::Refunded,
            ]
            .map(PaymentStatus::as_str),
        )
    }
}

impl utoipa::ToSchema for PaymentStatus {}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Declined => "declined",
            PaymentStatus::Authorised => "authorised",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Refunded => "refunded",
        }
    }

    /// How far along the payment is; a status replaces only a lower stage.
    pub fn stage(self) -> i64 {
        match self {
            PaymentStatus::Declined => 0,
            PaymentStatus::Authorised => 1,
            PaymentStatus::Captured | PaymentStatus::Voided => 2,
            PaymentStatus::Refunded => 3,
        }
    }

    /// Whether this status replaces the one held (none held: it does).
    pub fn supersedes(self, held: Option<PaymentStatus>) -> bool {
        held.is_none_or(|held| self.stage() > held.stage())
    }
}

/// A booking's payment moved to `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentStep {
    pub reservation_id: ReservationId,
    pub status: PaymentStatus,
    pub at: OffsetDateTime,
}

/// The step a payment event stands for, if it is about a booking (a
/// payment for no booking, buying points, has no place on my-page).
pub fn payment_step(event: &PaymentEvent) -> Option<PaymentStep> {
    let reservation_id = event.charge().reservation_id?;
    let (status, at) = match event {
        PaymentEvent::PaymentAuthorised { authorised_at, .. } => {
            (PaymentStatus::Authorised, *authorised_at)
        }
        PaymentEvent::PaymentDeclined { declined_at, .. } => {
            (PaymentStatus::Declined, *declined_at)
        }
        PaymentEvent::PaymentCaptured { captured_at, .. } => {
            (PaymentStatus::Captured, *captured_at)
        }
        PaymentEvent::PaymentVoided { voided_at, .. } => (PaymentStatus::Voided, *voided_at),
        PaymentEvent::PaymentRefunded { refunded_at, .. } => {
            (PaymentStatus::Refunded, *refunded_at)
        }
    };
    Some(PaymentStep {
        reservation_id,
        status,
        at,
    })
}

/// Points a booking earned or gave back. Each is a fact stated once per
/// booking, so applying it twice sets the same value again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsChange {
    Earned {
        reservation_id: ReservationId,
        points: u64,
    },
    Withdrawn {
        reservation_id: ReservationId,
        points: u64,
    },
    /// The booking was paid with these points.
    Spent {
        reservation_id: ReservationId,
        points: u64,
    },
    /// Points it was paid with came back.
    Refunded {
        reservation_id: ReservationId,
        points: u64,
    },
}

pub fn points_change(event: &WalletEvent) -> Option<PointsChange> {
    Some(match event {
        WalletEvent::PointsEarned {
            reservation_id,
            points,
            ..
        } => PointsChange::Earned {
            reservation_id: *reservation_id,
            points: *points,
        },
        WalletEvent::PointsWithdrawn {
            reservation_id,
            points,
            ..
        } => PointsChange::Withdrawn {
            reservation_id: *reservation_id,
            points: *points,
        },
        WalletEvent::PointsSpent {
            reservation_id,
            points,
            ..
        } => PointsChange::Spent {
            reservation_id: *reservation_id,
            points: *points,
        },
        WalletEvent::PointsRefunded {
            reservation_id,
            points,
            ..
        } => PointsChange::Refunded {
            reservation_id: *reservation_id,
            points: *points,
        },
        // A purchase is no booking's; a refusal took nothing (the booking's
        // rejection says why).
        WalletEvent::PointsPurchased { .. } | WalletEvent::PointsRefused { .. } => return None,
    })
}

/// What my-page keeps about a listing: when it starts, where it shows,
/// what it is called now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingFact {
    Starts {
        listing_id: ListingId,
        starts_at: Option<OffsetDateTime>,
    },
    /// An admin changed it: its bookings show the new title and start.
    Changed {
        listing_id: ListingId,
        title: String,
        starts_at: Option<OffsetDateTime>,
    },
    Screen {
        listing_id: ListingId,
        screen_id: ScreenId,
        name: String,
    },
}

/// The listing fact a catalog event states, if any (inventory moves are
/// not shown on my-page).
pub fn listing_fact(event: &CatalogEvent) -> Option<ListingFact> {
    match event {
        CatalogEvent::ListingRegistered {
            listing_id,
            starts_at,
            ..
        } => Some(ListingFact::Starts {
            listing_id: *listing_id,
            starts_at: *starts_at,
        }),
        CatalogEvent::ScreenAssigned {
            listing_id,
            screen_id,
            screen_name,
        } => Some(ListingFact::Screen {
            listing_id: *listing_id,
            screen_id: *screen_id,
            name: screen_name.clone(),
        }),
        CatalogEvent::ListingUpdated {
            listing_id,
            title,
            starts_at,
            ..
        } => Some(ListingFact::Changed {
            listing_id: *listing_id,
            title: title.clone(),
            starts_at: *starts_at,
        }),
        // A withdrawn listing's bookings are cancelled one by one, and
        // each cancellation reaches my-page on its own.
        CatalogEvent::ScreenRegistered { .. }
        | CatalogEvent::ListingWithdrawn { .. }
        | CatalogEvent::TicketsReserved { .. }
        | CatalogEvent::InventorySold { .. }
        | CatalogEvent::InventoryRejected { .. }
        | CatalogEvent::InventoryReleased { .. } => None,
    }
}

/// One status a booking went through. The booking's history holds each
/// (version, status) once and is read in version order, so redeliveries
/// and late arrivals neither repeat nor reorder it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub version: u64,
    pub status: &'static str,
    pub at: OffsetDateTime,
}

impl MyReservationRow {
    /// The history entry the event behind this row adds.
    pub fn history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            version: self.version,
            status: self.status,
            at: self.updated_at,
        }
    }
}

/// Adds `entry` to `history`, kept in version order without repeats (what
/// the store does with a key and an `ORDER BY`).
pub fn record_history(mut history: Vec<HistoryEntry>, entry: HistoryEntry) -> Vec<HistoryEntry> {
    let seen = history
        .iter()
        .any(|held| held.version == entry.version && held.status == entry.status);
    if !seen {
        history.push(entry);
        history.sort_by_key(|held| (held.version, held.at));
    }
    history
}

/// What one event changes on my-page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Row(MyReservationRow),
    Payment(PaymentStep),
    Points(PointsChange),
    Listing(ListingFact),
}

/// What a batch of events changes on my-page, gathered so that a store can
/// write each kind with one statement for the whole batch instead of one
/// per event. Every rule of the projection is order-free across kinds (a
/// listing's title is joined or copied whatever came first), and within a
/// kind each key ends where applying the events one by one would leave
/// it: the newest row, the furthest payment, the last figure of each kind
/// of points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// In the order of the events.
    pub rows: Vec<MyReservationRow>,
    pub payments: Vec<PaymentStep>,
    pub points: Vec<PointsChange>,
    pub listings: Vec<ListingFact>,
}

impl Changes {
    pub fn push(&mut self, change: Change) {
        match change {
            Change::Row(row) => self.rows.push(row),
            Change::Payment(step) => self.payments.push(step),
            Change::Points(points) => self.points.push(points),
            Change::Listing(fact) => self.listings.push(fact),
        }
    }

    /// The row each reservation ends with, one per reservation in the
    /// order each was first seen; `None` when a row of the batch has no
    /// version (it always applies, so only applying in order is right).
    pub fn newest_rows(&self) -> Option<Vec<&MyReservationRow>> {
        if self.rows.iter().any(|row| row.version == 0) {
            return None;
        }
        Some(one_per_key(
            &self.rows,
            |row| row.booking.reservation_id,
            |held, row| supersedes(held.version, row.version),
        ))
    }

    /// The furthest step of each booking's payment (the first to reach
    /// that stage, as a later step of the same stage does not replace it).
    pub fn furthest_payments(&self) -> Vec<&PaymentStep> {
        one_per_key(
            &self.payments,
            |step| step.reservation_id,
            |held, step| step.status.supersedes(Some(held.status)),
        )
    }

    /// The last figure of each kind of points for each booking (each is
    /// set, not added).
    pub fn last_points(&self) -> Vec<&PointsChange> {
        one_per_key(
            &self.points,
            |change| (std::mem::discriminant(change), change.reservation_id()),
            |_, _| true,
        )
    }
}

/// One of `items` per key, in the order each key was first seen:
/// `replaces(held, next)` says whether a later item takes the place of the
/// one held. Indexed by key: a batch behind by hundreds of events must not
/// cost a scan of the kept items for each one.
fn one_per_key<T, K: Eq + Hash>(
    items: &[T],
    key: impl Fn(&T) -> K,
    replaces: impl Fn(&T, &T) -> bool,
) -> Vec<&T> {
    let mut at: HashMap<K, usize> = HashMap::with_capacity(items.len());
    let mut kept: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        match at.entry(key(item)) {
            Entry::Occupied(slot) => {
                let held = &mut kept[*slot.get()];
                if replaces(held, item) {
                    *held = item;
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(item);
            }
        }
    }
    kept
}

impl PointsChange {
    pub fn points(&self) -> u64 {
        match self {
            PointsChange::Earned { points, .. }
            | PointsChange::Withdrawn { points, .. }
            | PointsChange::Spent { points, .. }
            | PointsChange::Refunded { points, .. } => *points,
        }
    }

    pub fn reservation_id(&self) -> ReservationId {
        match self {
            PointsChange::Earned { reservation_id, .. }
            | PointsChange::Withdrawn { reservation_id, .. }
            | PointsChange::Spent { reservation_id, .. }
            | PointsChange::Refunded { reservation_id, .. } => *reservation_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::catalog::ListingKind;
    use contracts::reservation::PaymentMethod;
    use kernel::ids::{ListingId, ReservationId, UserId};
    use kernel::Money;

    fn booking() -> Booking {
        Booking {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            listing_id: ListingId::new(),
            listing_title: "LALALand".into(),
            listing_kind: ListingKind::Movie,
            quantity: 45,
            seats: Vec::new(),
            amount: Money::parse(450_000).unwrap(),
            payment_method: PaymentMethod::Card,
        }
    }

    #[test]
    fn each_event_sets_the_status_it_stands_for() {
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let b = booking();
        let cases = [
            (
                ReservationEvent::ReservationPlaced {
                    booking: b.clone(),
                    placed_at: at,
                },
                "pending",
            ),
            (
                ReservationEvent::ReservationConfirmed {
                    booking: b.clone(),
                    confirmed_at: at,
                },
                "confirmed",
            ),
            (
                ReservationEvent::ReservationRejected {
                    booking: b.clone(),
                    reason: "sold out".into(),
                    rejected_at: at,
                },
                "rejected",
            ),
            (
                ReservationEvent::ReservationCancelled {
                    booking: b.clone(),
                    cancelled_at: at,
                },
                "cancelled",
            ),
        ];
        for (event, status) in cases {
            let row = project(&event, 1);
            assert_eq!(row.status, status);
            assert!(
                STATUSES.contains(&row.status),
                "{} is documented",
                row.status
            );
            assert_eq!(row.booking, b);
        }
    }

    fn lifecycle() -> Vec<(ReservationEvent, u64)> {
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let b = booking();
        vec![
            (
                ReservationEvent::ReservationPlaced {
                    booking: b.clone(),
                    placed_at: at,
                },
                1,
            ),
            (
                ReservationEvent::ReservationConfirmed {
                    booking: b.clone(),
                    confirmed_at: at,
                },
                2,
            ),
            (
                ReservationEvent::ReservationCancelled {
                    booking: b,
                    cancelled_at: at,
                },
                3,
            ),
        ]
    }

    fn fold(order: &[usize]) -> &'static str {
        let events = lifecycle();
        order
            .iter()
            .fold(None, |row, &i| apply(row, &events[i].0, events[i].1))
            .unwrap()
            .status
    }

    #[test]
    fn events_out_of_order_never_move_a_row_backwards() {
        // Every order of placed, confirmed and cancelled ends cancelled.
        for order in [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ] {
            assert_eq!(fold(&order), "cancelled", "{order:?}");
        }
        // A late confirmation after the placement still confirms.
        assert_eq!(fold(&[1, 0]), "confirmed");
        // Redelivering the same event changes nothing.
        assert_eq!(fold(&[0, 1, 1, 0]), "confirmed");
    }

    #[test]
    fn an_event_from_before_versions_always_applies() {
        assert!(supersedes(5, 0));
        assert!(supersedes(1, 2));
        assert!(!supersedes(2, 2));
        assert!(!supersedes(3, 2));
    }

    fn charge(reservation_id: Option<ReservationId>) -> contracts::payment::Charge {
        contracts::payment::Charge {
            payment_id: kernel::ids::PaymentId::new(),
            user_id: UserId::new(),
            amount: Money::parse(15_000).unwrap(),
            reservation_id,
        }
    }

    fn fold_payment(statuses: &[PaymentStatus]) -> Option<PaymentStatus> {
        statuses.iter().fold(None, |held, &incoming| {
            if incoming.supersedes(held) {
                Some(incoming)
            } else {
                held
            }
        })
    }

    #[test]
    fn a_payment_status_never_goes_backwards() {
        use PaymentStatus::*;
        assert_eq!(
            fold_payment(&[Authorised, Captured, Refunded]),
            Some(Refunded)
        );
        assert_eq!(
            fold_payment(&[Refunded, Captured, Authorised]),
            Some(Refunded)
        );
        assert_eq!(fold_payment(&[Captured, Authorised]), Some(Captured));
        assert_eq!(
            fold_payment(&[Voided, Authorised, Authorised]),
            Some(Voided)
        );
        // Captured and voided exclude each other: the first one stays.
        assert_eq!(fold_payment(&[Captured, Voided]), Some(Captured));
        // A declined card can be followed by one that is authorised, but a
        // late decline never hides a payment that went through.
        assert_eq!(fold_payment(&[Declined, Authorised]), Some(Authorised));
        assert_eq!(fold_payment(&[Captured, Declined]), Some(Captured));
    }

    #[test]
    fn payment_events_for_a_booking_are_steps_and_others_are_not() {
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let reservation = ReservationId::new();
        let step = payment_step(&PaymentEvent::PaymentRefunded {
            charge: charge(Some(reservation)),
            refunded_at: at,
        })
        .unwrap();
        assert_eq!(step.reservation_id, reservation);
        assert_eq!(step.status, PaymentStatus::Refunded);
        assert_eq!(
            payment_step(&PaymentEvent::PaymentCaptured {
                charge: charge(None),
                captured_at: at,
            }),
            None
        );
    }

    #[test]
    fn catalog_events_give_a_listing_its_start_and_its_screen() {
        let listing = ListingId::new();
        let screen = ScreenId::new();
        let assigned = CatalogEvent::ScreenAssigned {
            listing_id: listing,
            screen_id: screen,
            screen_name: "Hall 1".into(),
        };
        assert_eq!(
            listing_fact(&assigned),
            Some(ListingFact::Screen {
                listing_id: listing,
                screen_id: screen,
                name: "Hall 1".into()
            })
        );
        let released = CatalogEvent::InventoryReleased {
            reservation_id: ReservationId::new(),
            listing_id: listing,
            quantity: 1,
            seats: Vec::new(),
            available: 10,
        };
        assert_eq!(listing_fact(&released), None);
    }

    #[test]
    fn the_history_holds_each_status_once_in_version_order() {
        let events = lifecycle();
        let entries: Vec<HistoryEntry> = events
            .iter()
            .map(|(event, version)| project(event, *version).history_entry())
            .collect();
        // Cancelled first, then confirmed twice, then placed.
        let history = [2, 1, 1, 0].iter().fold(Vec::new(), |history, &i| {
            record_history(history, entries[i].clone())
        });
        let statuses: Vec<&str> = history.iter().map(|entry| entry.status).collect();
        assert_eq!(statuses, ["pending", "confirmed", "cancelled"]);
    }

    /// A batch's rows, gathered: for every order of a booking's events,
    /// the row kept is the one applying them one by one ends with.
    #[test]
    fn a_batch_keeps_per_booking_the_row_applying_one_by_one_would() {
        let events = lifecycle();
        let other = booking();
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let placed_other = project(
            &ReservationEvent::ReservationPlaced {
                booking: other.clone(),
                placed_at: at,
            },
            1,
        );
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]] {
            let mut changes = Changes::default();
            changes.push(Change::Row(placed_other.clone()));
            for &i in &order {
                changes.push(Change::Row(project(&events[i].0, events[i].1)));
            }
            let newest = changes.newest_rows().unwrap();
            let statuses: Vec<&str> = newest.iter().map(|row| row.status).collect();
            assert_eq!(statuses, ["pending", fold(&order)], "{order:?}");
            assert_eq!(newest[0].booking.reservation_id, other.reservation_id);
        }
        // A row without a version is only right in order: no shortcut.
        let mut unversioned = Changes::default();
        unversioned.push(Change::Row(project(&events[0].0, 0)));
        assert_eq!(unversioned.newest_rows(), None);
    }

    #[test]
    fn a_batch_keeps_each_bookings_furthest_payment_and_last_points() {
        use PaymentStatus::*;
        let at = time::macros::datetime!(2026-11-21 10:00 UTC);
        let (a, b) = (ReservationId::new(), ReservationId::new());
        let step = |reservation_id, status| PaymentStep {
            reservation_id,
            status,
            at,
        };
        let mut changes = Changes::default();
        for (id, status) in [(a, Authorised), (b, Captured), (a, Captured), (a, Voided)] {
            changes.push(Change::Payment(step(id, status)));
        }
        let furthest: Vec<(ReservationId, PaymentStatus)> = changes
            .furthest_payments()
            .iter()
            .map(|step| (step.reservation_id, step.status))
            .collect();
        // Captured then voided: the first of a stage stays, as one by one.
        assert_eq!(furthest, [(a, Captured), (b, Captured)]);
        assert_eq!(
            fold_payment(&[Authorised, Captured, Voided]),
            Some(Captured)
        );

        for change in [
            PointsChange::Earned {
                reservation_id: a,
                points: 10,
            },
            PointsChange::Withdrawn {
                reservation_id: a,
                points: 10,
            },
            PointsChange::Earned {
                reservation_id: b,
                points: 3,
            },
            PointsChange::Earned {
                reservation_id: a,
                points: 12,
            },
        ] {
            changes.push(Change::Points(change));
        }
        assert_eq!(
            changes.last_points(),
            [
                &PointsChange::Earned {
                    reservation_id: a,
                    points: 12
                },
                &PointsChange::Withdrawn {
                    reservation_id: a,
                    points: 10
                },
                &PointsChange::Earned {
                    reservation_id: b,
                    points: 3
                },
            ]
        );
    }
}

//! What each event changes on the dashboard: pure rules over the rows the
//! store holds, one rule per kind of fact.
//!
//! Every rule is order-safe and idempotent on its own, whatever the inbox
//! lets through: a listing keeps the title and size of its latest
//! statement, a booking's inventory only moves forward (held → sold →
//! released), a reservation only takes a newer version of itself, and a
//! points movement is a fact stated once under its own key.

use contracts::catalog::{CapacityKind, CatalogEvent, ListingKind};
use contracts::reservation::{PaymentMethod, ReservationEvent};
use contracts::wallet::WalletEvent;
use std::collections::{BTreeMap, BTreeSet};

use kernel::ids::{ListingId, ReservationId};
use serde::Serialize;
use time::OffsetDateTime;

// ---------------------------------------------------------------- listings

/// A listing as the dashboard holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListingRow {
    pub title: String,
    /// `None` until its registration is seen.
    pub kind: Option<ListingKind>,
    pub total: u32,
    pub held: u32,
    pub sold: u32,
    pub withdrawn: bool,
    /// When the title and total held were stated (registration or update).
    pub stated_at: Option<OffsetDateTime>,
    pub registered_at: Option<OffsetDateTime>,
}

/// What a catalog event says about a listing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingChange {
    Registered {
        listing_id: ListingId,
        kind: ListingKind,
        title: String,
        total: u32,
        at: OffsetDateTime,
    },
    Updated {
        listing_id: ListingId,
        title: String,
        total: u32,
        at: OffsetDateTime,
    },
    Withdrawn {
        listing_id: ListingId,
    },
}

impl ListingChange {
    pub fn listing_id(&self) -> ListingId {
        match self {
            ListingChange::Registered { listing_id, .. }
            | ListingChange::Updated { listing_id, .. }
            | ListingChange::Withdrawn { listing_id } => *listing_id,
        }
    }
}

/// How many a listing sells at once: its tickets, its seats, or one bike.
pub fn capacity_total(capacity: &CapacityKind) -> u32 {
    match capacity {
        CapacityKind::Quota { total } | CapacityKind::Seated { total, .. } => *total,
        CapacityKind::Unit => 1,
    }
}

pub fn listing_change(event: &CatalogEvent) -> Option<ListingChange> {
    match event {
        CatalogEvent::ListingRegistered {
            listing_id,
            kind,
            title,
            capacity,
            registered_at,
            ..
        } => Some(ListingChange::Registered {
            listing_id: *listing_id,
            kind: *kind,
            title: title.clone(),
            total: capacity_total(capacity),
            at: *registered_at,
        }),
        CatalogEvent::ListingUpdated {
            listing_id,
            title,
            capacity,
            updated_at,
            ..
        } => Some(ListingChange::Updated {
            listing_id: *listing_id,
            title: title.clone(),
            total: capacity_total(capacity),
            at: *updated_at,
        }),
        CatalogEvent::ListingWithdrawn { listing_id, .. } => Some(ListingChange::Withdrawn {
            listing_id: *listing_id,
        }),
        CatalogEvent::ScreenRegistered { .. }
        | CatalogEvent::ScreenAssigned { .. }
        | CatalogEvent::TicketsReserved { .. }
        | CatalogEvent::InventorySold { .. }
        | CatalogEvent::InventoryRejected { .. }
        | CatalogEvent::InventoryReleased { .. } => None,
    }
}

/// The listing after `change`. Title and total come from the latest
/// statement (an update stated at the same instant as the registration
/// wins over it); a withdrawal is for good.
pub fn apply_listing(mut row: ListingRow, change: &ListingChange) -> ListingRow {
    let newer = |row: &ListingRow, at: OffsetDateTime, ties_win: bool| {
        row.stated_at
            .is_none_or(|stated| at > stated || (ties_win && at == stated))
    };
    match change {
        ListingChange::Registered {
            kind,
            title,
            total,
            at,
            ..
        } => {
            row.kind = Some(*kind);
            row.registered_at = Some(*at);
            if newer(&row, *at, false) {
                row.title = title.clone();
                row.total = *total;
                row.stated_at = Some(*at);
            }
        }
        ListingChange::Updated {
            title, total, at, ..
        } => {
            if newer(&row, *at, true) {
                row.title = title.clone();
                row.total = *total;
                row.stated_at = Some(*at);
            }
        }
        ListingChange::Withdrawn { .. } => row.withdrawn = true,
    }
    row
}

/// A listing as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DashboardListing)]
pub struct ListingView {
    pub id: String,
    pub title: String,
    pub kind: ListingKind,
    /// Tickets of a quota, seats of a seated showing, 1 for a bike.
    pub total: u32,
    /// Sold to confirmed bookings (given back when one is cancelled or a
    /// rental returned).
    pub sold: u32,
    /// Held for bookings still pending.
    pub held: u32,
    /// total − held − sold.
    pub available: u32,
    /// Bikes only: a booking holds it or it is out on a rental.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub in_use: Option<bool>,
}

impl ListingRow {
    /// What the dashboard shows of it: nothing before its registration is
    /// seen or once it is withdrawn.
    pub fn view(&self, id: &str) -> Option<ListingView> {
        let kind = self.kind.filter(|_| !self.withdrawn)?;
        let taken = self.held.saturating_add(self.sold);
        Some(ListingView {
            id: id.to_owned(),
            title: self.title.clone(),
            kind,
            total: self.total,
            sold: self.sold,
            held: self.held,
            available: self.total.saturating_sub(taken),
            in_use: (kind == ListingKind::Bike).then_some(taken > 0),
        })
    }
}

// --------------------------------------------------------------- inventory

/// Where a booking's inventory is. Each state is a later stage than the
/// one before it; released and rejected both end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Held,
    Sold,
    Released,
    Rejected,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Held => "held",
            Hold::Sold => "sold",
            Hold::Released => "released",
            Hold::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Hold> {
        Some(match text {
            "held" => Hold::Held,
            "sold" => Hold::Sold,
            "released" => Hold::Released,
            "rejected" => Hold::Rejected,
            _ => return None,
        })
    }

    fn stage(self) -> u8 {
        match self {
            Hold::Held => 1,
            Hold::Sold => 2,
            Hold::Released | Hold::Rejected => 3,
        }
    }
}

/// A booking's inventory moved on its listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryMove {
    pub reservation_id: ReservationId,
    pub listing_id: ListingId,
    pub quantity: u32,
    pub to: Hold,
}

pub fn inventory_move(event: &CatalogEvent) -> Option<InventoryMove> {
    let (reservation_id, listing_id, quantity, to) = match event {
        CatalogEvent::TicketsReserved {
            reservation_id,
            listing_id,
            quantity,
            ..
        } => (reservation_id, listing_id, *quantity, Hold::Held),
        CatalogEvent::InventorySold {
            reservation_id,
            listing_id,
            quantity,
            ..
        } => (reservation_id, listing_id, *quantity, Hold::Sold),
        CatalogEvent::InventoryReleased {
            reservation_id,
            listing_id,
            quantity,
            ..
        } => (reservation_id, listing_id, *quantity, Hold::Released),
        CatalogEvent::InventoryRejected {
            reservation_id,
            listing_id,
            ..
        } => (reservation_id, listing_id, 0, Hold::Rejected),
        _ => return None,
    };
    Some(InventoryMove {
        reservation_id: *reservation_id,
        listing_id: *listing_id,
        quantity,
        to,
    })
}

/// A booking's inventory as the dashboard holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRow {
    pub quantity: u32,
    pub state: Hold,
}

/// What a move changes on its listing's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub held: i64,
    pub sold: i64,
}

impl Counts {
    fn of(state: Hold, quantity: u32) -> Counts {
        let quantity = i64::from(quantity);
        match state {
            Hold::Held => Counts {
                held: quantity,
                sold: 0,
            },
            Hold::Sold => Counts {
                held: 0,
                sold: quantity,
            },
            Hold::Released | Hold::Rejected => Counts::default(),
        }
    }

    /// Adds these changes to a listing (never below zero).
    pub fn apply_to(self, row: &mut ListingRow) {
        let add = |count: u32, change: i64| {
            u32::try_from((i64::from(count) + change).max(0)).unwrap_or(u32::MAX)
        };
        row.held = add(row.held, self.held);
        row.sold = add(row.sold, self.sold);
    }
}

/// The booking's inventory after `change`, and what that changes on its
/// listing: what it counted for comes out of its bucket, what it now
/// counts for goes in. `None` when the move is not a later stage than the
/// one held (repeated, or arriving after a later one): nothing changes.
pub fn apply_hold(held: Option<HoldRow>, change: &InventoryMove) -> Option<(HoldRow, Counts)> {
    if held.is_some_and(|held| held.state.stage() >= change.to.stage()) {
        return None;
    }
    let before = held.map_or(Counts::default(), |held| {
        Counts::of(held.state, held.quantity)
    });
    let quantity = match (change.to, held) {
        (Hold::Held | Hold::Sold, _) | (_, None) => change.quantity,
        // A release counts what was held or sold, whatever it says.
        (Hold::Released | Hold::Rejected, Some(held)) => held.quantity,
    };
    let after = Counts::of(change.to, quantity);
    Some((
        HoldRow {
            quantity,
            state: change.to,
        },
        Counts {
            held: after.held - before.held,
            sold: after.sold - before.sold,
        },
    ))
}

// ------------------------------------------------------------ reservations

/// A reservation's status as the dashboard counts it (an expired booking
/// counts as rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
    Returned,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Confirmed,
        Status::Rejected,
        Status::Cancelled,
        Status::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// How far along a booking is, for events without a version: a
    /// status replaces only one of an earlier rank.
    fn rank(self) -> u8 {
        match self {
            Status::Pending => 0,
            Status::Confirmed => 1,
            Status::Rejected | Status::Cancelled | Status::Returned => 2,
        }
    }

    /// Whether a booking in this status is revenue: it was confirmed and
    /// not cancelled (a returned rental was paid for).
    pub fn is_revenue(self) -> bool {
        matches!(self, Status::Confirmed | Status::Returned)
    }
}

/// A reservation as the dashboard holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationRow {
    pub status: Status,
    /// Its version after the event shown (`0`: the event had none).
    pub version: u64,
    pub payment_method: PaymentMethod,
    /// In minor units.
    pub amount: i64,
}

pub fn reservation_row(event: &ReservationEvent, version: u64) -> ReservationRow {
    let status = match event {
        ReservationEvent::ReservationPlaced { .. } => Status::Pending,
        ReservationEvent::ReservationConfirmed { .. } => Status::Confirmed,
        ReservationEvent::ReservationRejected { .. }
        | ReservationEvent::ReservationExpired { .. } => Status::Rejected,
        ReservationEvent::ReservationCancelled { .. } => Status::Cancelled,
        ReservationEvent::ReservationReturned { .. } => Status::Returned,
    };
    let booking = event.booking();
    ReservationRow {
        status,
        version,
        payment_method: booking.payment_method,
        amount: booking.amount.minor_units(),
    }
}

/// Whether `incoming` replaces the row held: a newer version does; when
/// either has no version, a later status does. A redelivered or late event
/// never moves a reservation back, so it is counted once, in its latest
/// status.
pub fn supersedes(held: &ReservationRow, incoming: &ReservationRow) -> bool {
    if held.version > 0 && incoming.version > 0 {
        incoming.version > held.version
    } else {
        incoming.status.rank() > held.status.rank()
    }
}

pub fn apply_reservation(
    held: Option<ReservationRow>,
    incoming: ReservationRow,
) -> Option<ReservationRow> {
    match held {
        Some(held) if !supersedes(&held, &incoming) => None,
        _ => Some(incoming),
    }
}

pub fn payment_method_str(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card => "card",
        PaymentMethod::Points => "points",
    }
}

pub fn parse_payment_method(text: &str) -> Option<PaymentMethod> {
    match text {
        "card" => Some(PaymentMethod::Card),
        "points" => Some(PaymentMethod::Points),
        _ => None,
    }
}

// ------------------------------------------------------------------ points

/// Which way points moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsKind {
    /// Bought with a card, or earned on a card booking.
    Issued,
    /// Paid for a booking.
    Spent,
    /// Given back for a booking paid with points that did not go ahead.
    Refunded,
    /// Earned points taken back with their payment's refund (no longer
    /// issued).
    Withdrawn,
}

impl PointsKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PointsKind::Issued => "issued",
            PointsKind::Spent => "spent",
            PointsKind::Refunded => "refunded",
            PointsKind::Withdrawn => "withdrawn",
        }
    }
}

/// One movement of points, under a key of its own: the wallet states each
/// once (per purchase, or per booking and kind), so the same fact arriving
/// twice is stored once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsFact {
    pub key: String,
    pub kind: PointsKind,
    pub points: u64,
}

pub fn points_fact(event: &WalletEvent) -> Option<PointsFact> {
    let (key, kind, points) = match event {
        WalletEvent::PointsPurchased {
            payment_id, points, ..
        } => (
            format!("purchased:{payment_id}"),
            PointsKind::Issued,
            points,
        ),
        WalletEvent::PointsEarned {
            reservation_id,
            points,
            ..
        } => (
            format!("earned:{reservation_id}"),
            PointsKind::Issued,
            points,
        ),
        WalletEvent::PointsSpent {
            reservation_id,
            points,
            ..
        } => (format!("spent:{reservation_id}"), PointsKind::Spent, points),
        WalletEvent::PointsRefunded {
            reservation_id,
            points,
            ..
        } => (
            format!("refunded:{reservation_id}"),
            PointsKind::Refunded,
            points,
        ),
        // A withdrawal takes back what it could of the points a refunded
        // payment earned: those are no longer issued.
        WalletEvent::PointsWithdrawn {
            reservation_id,
            points,
            shortfall,
            ..
        } => {
            return Some(PointsFact {
                key: format!("withdrawn:{reservation_id}"),
                kind: PointsKind::Withdrawn,
                points: points.saturating_sub(*shortfall),
            })
        }
        // A refusal moved nothing.
        WalletEvent::PointsRefused { .. } => return None,
    };
    Some(PointsFact {
        key,
        kind,
        points: *points,
    })
}

// --------------------------------------------------------------- the whole

/// Bookings by their latest status, each counted once (an expired booking
/// counts as rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub pending: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub returned: u64,
}

impl StatusCounts {
    pub fn add(&mut self, status: Status, count: u64) {
        let slot = match status {
            Status::Pending => &mut self.pending,
            Status::Confirmed => &mut self.confirmed,
            Status::Rejected => &mut self.rejected,
            Status::Cancelled => &mut self.cancelled,
            Status::Returned => &mut self.returned,
        };
        *slot += count;
    }
}

/// Takings in minor units, by how the bookings were paid: amounts of
/// confirmed and returned bookings (cancelled ones are taken off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Revenue {
    #[schema(value_type = kernel::Money)]
    pub card: i64,
    #[schema(value_type = kernel::Money)]
    pub points: i64,
}

impl Revenue {
    pub fn add(&mut self, method: PaymentMethod, amount: i64) {
        match method {
            PaymentMethod::Card => self.card += amount,
            PaymentMethod::Points => self.points += amount,
        }
    }
}

/// Points bought or earned (`issued`), and spent on bookings less those
/// given back (`spent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct PointsTotals {
    pub issued: u64,
    pub spent: u64,
}

impl PointsTotals {
    /// Issued less what was withdrawn; spent less what was refunded.
    pub fn from_sums(issued: u64, withdrawn: u64, spent: u64, refunded: u64) -> PointsTotals {
        PointsTotals {
            issued: issued.saturating_sub(withdrawn),
            spent: spent.saturating_sub(refunded),
        }
    }
}

/// What `GET /dashboard` answers: the admin's live view of listings,
/// bookings, revenue and points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Every listing on sale (withdrawn ones are left out), in
    /// registration order.
    pub listings: Vec<ListingView>,
    #[schema(inline)]
    pub reservations: StatusCounts,
    #[schema(inline)]
    pub revenue: Revenue,
    #[schema(inline)]
    pub points: PointsTotals,
    /// When the view last took in events; `null` before the first.
    #[schema(format = DateTime, required = true)]
    pub updated_at: Option<String>,
}

// ----------------------------------------------------------------- batches

/// What one event changes on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Listing(ListingChange),
    Inventory(InventoryMove),
    Reservation(ReservationId, ReservationRow),
    Points(PointsFact),
}

/// The rows a batch of events touches, as the store held them, changed in
/// memory by the rules above in the events' order: the store reads each
/// row once and writes each changed row once per batch, instead of a read
/// and a write per event (a popular listing's row is touched by every
/// booking's every inventory move).
#[derive(Debug, Clone, Default)]
pub struct Touched {
    listings: BTreeMap<ListingId, ListingRow>,
    holds: BTreeMap<ReservationId, HoldRow>,
    reservations: BTreeMap<ReservationId, ReservationRow>,
    points: BTreeMap<String, PointsFact>,
    changed_listings: BTreeSet<ListingId>,
    /// With the listing each changed hold is on.
    changed_holds: BTreeMap<ReservationId, ListingId>,
    changed_reservations: BTreeSet<ReservationId>,
}

/// The keys of the rows `changes` read: listings, holds, reservations.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Keys {
    pub listings: BTreeSet<ListingId>,
    pub holds: BTreeSet<ReservationId>,
    pub reservations: BTreeSet<ReservationId>,
}

impl Keys {
    pub fn of(changes: &[Change]) -> Keys {
        let mut keys = Keys::default();
        for change in changes {
            match change {
                Change::Listing(change) => {
                    keys.listings.insert(change.listing_id());
                }
                Change::Inventory(moved) => {
                    keys.listings.insert(moved.listing_id);
                    keys.holds.insert(moved.reservation_id);
                }
                Change::Reservation(id, _) => {
                    keys.reservations.insert(*id);
                }
                Change::Points(_) => {}
            }
        }
        keys
    }
}

impl Touched {
    /// Starts from the rows the store holds (a row it does not hold is
    /// absent).
    pub fn new(
        listings: BTreeMap<ListingId, ListingRow>,
        holds: BTreeMap<ReservationId, HoldRow>,
        reservations: BTreeMap<ReservationId, ReservationRow>,
    ) -> Touched {
        Touched {
            listings,
            holds,
            reservations,
            ..Touched::default()
        }
    }

    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Listing(change) => {
                let id = change.listing_id();
                let held = self.listings.get(&id).cloned().unwrap_or_default();
                let row = apply_listing(held.clone(), change);
                if row != held {
                    self.listings.insert(id, row);
                    self.changed_listings.insert(id);
                }
            }
            Change::Inventory(moved) => {
                let held = self.holds.get(&moved.reservation_id).copied();
                let Some((hold, counts)) = apply_hold(held, moved) else {
                    return;
                };
                self.holds.insert(moved.reservation_id, hold);
                self.changed_holds
                    .insert(moved.reservation_id, moved.listing_id);
                counts.apply_to(self.listings.entry(moved.listing_id).or_default());
                self.changed_listings.insert(moved.listing_id);
            }
            Change::Reservation(id, incoming) => {
                let held = self.reservations.get(id).copied();
                if let Some(row) = apply_reservation(held, *incoming) {
                    self.reservations.insert(*id, row);
                    self.changed_reservations.insert(*id);
                }
            }
            Change::Points(fact) => {
                self.points.insert(fact.key.clone(), fact.clone());
            }
        }
    }

    /// The listings to write, each once.
    pub fn listings(&self) -> Vec<(ListingId, &ListingRow)> {
        self.changed_listings
            .iter()
            .map(|id| (*id, &self.listings[id]))
            .collect()
    }

    /// The bookings' inventory to write, each once, with its listing.
    pub fn holds(&self) -> Vec<(ReservationId, ListingId, HoldRow)> {
        self.changed_holds
            .iter()
            .map(|(id, listing)| (*id, *listing, self.holds[id]))
            .collect()
    }

    /// The reservations to write, each once.
    pub fn reservations(&self) -> Vec<(ReservationId, ReservationRow)> {
        self.changed_reservations
            .iter()
            .map(|id| (*id, self.reservations[id]))
            .collect()
    }

    /// The points facts to write, each key once (its last statement).
    pub fn points(&self) -> Vec<&PointsFact> {
        self.points.values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::reservation::Booking;
    use kernel::ids::{PaymentId, UserId};
    use kernel::Money;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-21 10:00 UTC);

    fn registered(kind: ListingKind, capacity: CapacityKind) -> CatalogEvent {
        CatalogEvent::ListingRegistered {
            listing_id: ListingId::new(),
            kind,
            title: "LALALand".into(),
            description: String::new(),
            price: Money::parse(12_000).unwrap(),
            capacity,
            starts_at: None,
            color: None,
            number: None,
            registered_at: AT,
        }
    }

    #[test]
    fn a_listing_counts_its_tickets_its_seats_or_one_bike() {
        let seats = vec!["A-1".parse().unwrap(), "A-2".parse().unwrap()];
        for (kind, capacity, total) in [
            (ListingKind::Movie, CapacityKind::Quota { total: 100 }, 100),
            (
                ListingKind::Musical,
                CapacityKind::Seated {
                    total: 2,
                    seats,
                    sections: Vec::new(),
                },
                2,
            ),
            (ListingKind::Bike, CapacityKind::Unit, 1),
        ] {
            let change = listing_change(&registered(kind, capacity)).unwrap();
            let row = apply_listing(ListingRow::default(), &change);
            let view = row.view("l").unwrap();
            assert_eq!(
                (view.kind, view.total, view.available),
                (kind, total, total)
            );
            assert_eq!(view.in_use, (kind == ListingKind::Bike).then_some(false));
        }
    }

    fn updated(id: ListingId, title: &str, total: u32, at: OffsetDateTime) -> ListingChange {
        ListingChange::Updated {
            listing_id: id,
            title: title.into(),
            total,
            at,
        }
    }

    #[test]
    fn a_listing_shows_its_latest_title_and_size_whatever_the_order() {
        let event = registered(ListingKind::Movie, CapacityKind::Quota { total: 100 });
        let registration = listing_change(&event).unwrap();
        let id = registration.listing_id();
        let later = updated(id, "LALALand (70mm)", 120, datetime!(2026-11-22 10:00 UTC));
        let earlier = updated(id, "La La Land", 110, datetime!(2026-11-21 12:00 UTC));
        for order in [
            vec![&registration, &earlier, &later],
            vec![&registration, &later, &earlier],
            vec![&later, &registration, &earlier],
            vec![&later, &earlier, &registration, &later],
        ] {
            let row = order.iter().fold(ListingRow::default(), |row, change| {
                apply_listing(row, change)
            });
            let view = row.view("l").unwrap();
            assert_eq!((view.title.as_str(), view.total), ("LALALand (70mm)", 120));
        }
        // An update stated at the registration's instant is the newer word.
        let same_instant = updated(id, "Renamed", 90, AT);
        for order in [
            [&registration, &same_instant],
            [&same_instant, &registration],
        ] {
            let row = order.iter().fold(ListingRow::default(), |row, change| {
                apply_listing(row, change)
            });
            assert_eq!(row.title, "Renamed");
        }
    }

    #[test]
    fn a_withdrawn_or_unregistered_listing_is_not_shown() {
        let event = registered(ListingKind::Musical, CapacityKind::Quota { total: 10 });
        let registration = listing_change(&event).unwrap();
        let withdrawn = ListingChange::Withdrawn {
            listing_id: registration.listing_id(),
        };
        let update = updated(registration.listing_id(), "x", 5, AT);
        assert!(apply_listing(ListingRow::default(), &update)
            .view("l")
            .is_none());
        for order in [[&registration, &withdrawn], [&withdrawn, &registration]] {
            let row = order.iter().fold(ListingRow::default(), |row, change| {
                apply_listing(row, change)
            });
            assert!(row.view("l").is_none());
        }
    }

    fn moves(quantity: u32) -> [InventoryMove; 4] {
        let reservation_id = ReservationId::new();
        let listing_id = ListingId::new();
        let events = [
            CatalogEvent::TicketsReserved {
                reservation_id,
                listing_id,
                quantity,
                seats: Vec::new(),
                available: 0,
            },
            CatalogEvent::InventorySold {
                reservation_id,
                listing_id,
                quantity,
                seats: Vec::new(),
            },
            CatalogEvent::InventoryReleased {
                reservation_id,
                listing_id,
                quantity,
                seats: Vec::new(),
                available: 0,
            },
            CatalogEvent::InventoryRejected {
                reservation_id,
                listing_id,
                reason: contracts::catalog::InventoryRejection::InUse,
            },
        ];
        events.map(|event| inventory_move(&event).unwrap())
    }

    /// A listing of 10 after the moves in `order`, each delivered as often
    /// as it appears.
    fn listing_after(moves: &[InventoryMove], order: &[usize]) -> ListingRow {
        let mut listing = ListingRow {
            kind: Some(ListingKind::Movie),
            total: 10,
            ..ListingRow::default()
        };
        let mut hold = None;
        for &i in order {
            if let Some((next, counts)) = apply_hold(hold, &moves[i]) {
                hold = Some(next);
                counts.apply_to(&mut listing);
            }
        }
        listing
    }

    #[test]
    fn a_booking_is_held_then_sold_and_a_release_takes_it_from_where_it_is() {
        let moves = moves(3);
        let counts = |order: &[usize]| {
            let row = listing_after(&moves, order);
            let view = row.view("l").unwrap();
            (view.held, view.sold, view.available)
        };
        assert_eq!(counts(&[0]), (3, 0, 7));
        assert_eq!(counts(&[0, 1]), (0, 3, 7));
        // Released from sold (a cancellation) or from held (a failed payment).
        assert_eq!(counts(&[0, 1, 2]), (0, 0, 10));
        assert_eq!(counts(&[0, 2]), (0, 0, 10));
        // A rejection holds nothing.
        assert_eq!(counts(&[3]), (0, 0, 10));
    }

    #[test]
    fn inventory_moves_repeated_or_late_change_nothing() {
        let moves = moves(3);
        let counts = |order: &[usize]| {
            let row = listing_after(&moves, order);
            (row.held, row.sold)
        };
        assert_eq!(counts(&[0, 0, 1, 1, 0]), (0, 3));
        assert_eq!(counts(&[1, 0]), (0, 3));
        // A release ends it: a late hold or sale never brings it back.
        for order in [[0, 1, 2, 1, 0], [2, 0, 1, 2, 2], [1, 2, 0, 0, 1]] {
            assert_eq!(counts(&order), (0, 0), "{order:?}");
        }
        assert_eq!(counts(&[3, 0, 1]), (0, 0));
    }

    /// A batch read once and written once ends where the events one by
    /// one would: two bookings on one listing, moves repeated and late.
    #[test]
    fn a_batch_writes_each_touched_row_once_with_the_outcome_of_every_event() {
        let (first, second) = (moves(3), moves(2));
        let listing = first[0].listing_id;
        let second: Vec<InventoryMove> = second
            .into_iter()
            .map(|moved| InventoryMove {
                listing_id: listing,
                ..moved
            })
            .collect();
        let held = ListingRow {
            kind: Some(ListingKind::Movie),
            total: 10,
            ..ListingRow::default()
        };
        let mut touched = Touched::new(
            BTreeMap::from([(listing, held.clone())]),
            BTreeMap::new(),
            BTreeMap::new(),
        );
        let batch = [
            Change::Inventory(first[0].clone()),
            Change::Inventory(second[0].clone()),
            Change::Inventory(first[1].clone()),
            Change::Inventory(first[0].clone()),
            Change::Inventory(second[2].clone()),
            Change::Inventory(second[1].clone()),
        ];
        for change in &batch {
            touched.apply(change);
        }
        let written = touched.listings();
        assert_eq!(written.len(), 1);
        // First sold 3; second held 2, then released (a late sale is ignored).
        assert_eq!((written[0].1.held, written[0].1.sold), (0, 3));
        assert_eq!(
            listing_after(&first, &[0, 1, 0]).sold,
            written[0].1.sold,
            "as one by one"
        );
        let holds: Vec<Hold> = touched
            .holds()
            .iter()
            .map(|(_, _, hold)| hold.state)
            .collect();
        assert_eq!(holds.len(), 2);
        assert!(holds.contains(&Hold::Sold) && holds.contains(&Hold::Released));

        assert_eq!(Keys::of(&batch).holds.len(), 2);

        // A row nothing changed is not written: a late reservation event.
        let id = ReservationId::new();
        let confirmed = ReservationRow {
            status: Status::Confirmed,
            version: 2,
            payment_method: PaymentMethod::Card,
            amount: 12_000,
        };
        let placed = ReservationRow {
            status: Status::Pending,
            version: 1,
            ..confirmed
        };
        let mut late = Touched::new(
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::from([(id, confirmed)]),
        );
        late.apply(&Change::Reservation(id, placed));
        assert!(late.reservations().is_empty());
        late.apply(&Change::Reservation(
            id,
            ReservationRow {
                status: Status::Cancelled,
                version: 3,
                ..confirmed
            },
        ));
        assert_eq!(late.reservations()[0].1.status, Status::Cancelled);
    }

    #[test]
    fn a_bike_is_in_use_while_a_booking_holds_or_rents_it() {
        let moves = moves(1);
        let bike = |order: &[usize]| {
            let mut row = listing_after(&moves, order);
            row.kind = Some(ListingKind::Bike);
            row.total = 1;
            let view = row.view("b").unwrap();
            (view.in_use, view.available)
        };
        assert_eq!(bike(&[]), (Some(false), 1));
        assert_eq!(bike(&[0]), (Some(true), 0));
        assert_eq!(bike(&[0, 1]), (Some(true), 0));
        // Brought back: the rental's inventory is released.
        assert_eq!(bike(&[0, 1, 2]), (Some(false), 1));
    }

    fn lifecycle(method: PaymentMethod) -> Vec<ReservationEvent> {
        let booking = Booking {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            listing_id: ListingId::new(),
            listing_title: "LALALand".into(),
            listing_kind: ListingKind::Movie,
            quantity: 2,
            seats: Vec::new(),
            amount: Money::parse(24_000).unwrap(),
            payment_method: method,
        };
        vec![
            ReservationEvent::ReservationPlaced {
                booking: booking.clone(),
                placed_at: AT,
            },
            ReservationEvent::ReservationConfirmed {
                booking: booking.clone(),
                confirmed_at: AT,
            },
            ReservationEvent::ReservationCancelled {
                booking: booking.clone(),
                cancelled_at: AT,
            },
            ReservationEvent::ReservationExpired {
                booking: booking.clone(),
                reason: "no answer".into(),
                expired_at: AT,
            },
            ReservationEvent::ReservationReturned {
                booking,
                returned_at: AT,
            },
        ]
    }

    fn status_after(events: &[ReservationEvent], deliveries: &[(usize, u64)]) -> Status {
        deliveries
            .iter()
            .fold(None, |held, &(i, version)| {
                apply_reservation(held, reservation_row(&events[i], version)).or(held)
            })
            .unwrap()
            .status
    }

    #[test]
    fn each_reservation_event_stands_for_one_status_and_expiry_is_a_rejection() {
        let events = lifecycle(PaymentMethod::Card);
        let statuses: Vec<Status> = events
            .iter()
            .map(|event| reservation_row(event, 1).status)
            .collect();
        assert_eq!(
            statuses,
            [
                Status::Pending,
                Status::Confirmed,
                Status::Cancelled,
                Status::Rejected,
                Status::Returned
            ]
        );
        assert_eq!(reservation_row(&events[0], 1).amount, 24_000);
    }

    #[test]
    fn a_late_or_redelivered_reservation_event_never_moves_it_back() {
        let events = lifecycle(PaymentMethod::Card);
        let (placed, confirmed, cancelled) = ((0, 1), (1, 2), (2, 3));
        for order in [
            [placed, confirmed, cancelled],
            [cancelled, confirmed, placed],
            [confirmed, cancelled, placed],
            [placed, cancelled, confirmed],
        ] {
            assert_eq!(
                status_after(&events, &order),
                Status::Cancelled,
                "{order:?}"
            );
        }
        assert_eq!(
            status_after(&events, &[confirmed, placed, confirmed]),
            Status::Confirmed
        );
        // Without versions, a status gives way only to a later one.
        let unversioned = [(1, 0), (0, 0), (4, 0), (1, 0)];
        assert_eq!(status_after(&events, &unversioned), Status::Returned);
        assert_eq!(status_after(&events, &[(2, 3), (1, 0)]), Status::Cancelled);
    }

    #[test]
    fn confirmed_and_returned_bookings_are_revenue_cancelled_ones_are_not() {
        let revenue: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|status| status.is_revenue())
            .map(Status::as_str)
            .collect();
        assert_eq!(revenue, ["confirmed", "returned"]);
        let mut takings = Revenue::default();
        takings.add(PaymentMethod::Card, 24_000);
        takings.add(PaymentMethod::Points, 5_000);
        assert_eq!(
            serde_json::to_value(takings).unwrap(),
            serde_json::json!({"card": 24_000, "points": 5_000})
        );
    }

    #[test]
    fn points_bought_or_earned_are_issued_refunds_undo_spending_and_withdrawals_issuing() {
        let user_id = UserId::new();
        let reservation_id = ReservationId::new();
        let payment_id = PaymentId::new();
        let events = [
            WalletEvent::PointsPurchased {
                user_id,
                payment_id,
                points: 10_000,
                balance: 10_000,
                purchased_at: AT,
            },
            WalletEvent::PointsEarned {
                user_id,
                reservation_id,
                points: 240,
                balance: 10_240,
                earned_at: AT,
            },
            WalletEvent::PointsSpent {
                user_id,
                reservation_id,
                points: 3_000,
                balance: 7_240,
                spent_at: AT,
            },
            WalletEvent::PointsRefunded {
                user_id,
                reservation_id,
                points: 1_000,
                balance: 8_240,
                refunded_at: AT,
            },
            WalletEvent::PointsRefused {
                user_id,
                reservation_id,
                points: 99_999,
                balance: 8_240,
                reason: "not enough".into(),
                refused_at: AT,
            },
            WalletEvent::PointsWithdrawn {
                user_id,
                reservation_id,
                points: 240,
                shortfall: 0,
                balance: 8_000,
                withdrawn_at: AT,
            },
        ];
        let facts: Vec<PointsFact> = events.iter().filter_map(points_fact).collect();
        let kinds: Vec<(PointsKind, u64)> = facts.iter().map(|f| (f.kind, f.points)).collect();
        assert_eq!(
            kinds,
            [
                (PointsKind::Issued, 10_000),
                (PointsKind::Issued, 240),
                (PointsKind::Spent, 3_000),
                (PointsKind::Refunded, 1_000),
                (PointsKind::Withdrawn, 240)
            ]
        );
        // Every fact has a key of its own; the same event gives the same key.
        let mut keys: Vec<&str> = facts.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 5);
        assert_eq!(points_fact(&events[2]), points_fact(&events[2].clone()));
        assert_eq!(
            PointsTotals::from_sums(10_240, 240, 3_000, 1_000),
            PointsTotals {
                issued: 10_000,
                spent: 2_000
            }
        );
    }

    #[test]
    fn the_dashboard_reads_as_documented() {
        let event = registered(ListingKind::Bike, CapacityKind::Unit);
        let row = apply_listing(ListingRow::default(), &listing_change(&event).unwrap());
        let dashboard = Dashboard {
            listings: vec![row.view("b-1").unwrap()],
            reservations: StatusCounts::default(),
            revenue: Revenue::default(),
            points: PointsTotals::default(),
            updated_at: None,
        };
        assert_eq!(
            serde_json::to_value(dashboard).unwrap(),
            serde_json::json!({
                "listings": [{"id": "b-1", "title": "LALALand", "kind": "bike", "total": 1,
                              "sold": 0, "held": 0, "available": 1, "inUse": false}],
                "reservations": {"pending": 0, "confirmed": 0, "rejected": 0, "cancelled": 0, "returned": 0},
                "revenue": {"card": 0, "points": 0},
                "points": {"issued": 0, "spent": 0},
                "updatedAt": null
            })
        );
    }
}

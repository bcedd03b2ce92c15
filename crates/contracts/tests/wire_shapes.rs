//! Contract tests: the JSON every event puts on the wire is pinned here. A
//! change that renames, removes or retypes a field fails these tests before
//! it can break a consumer (including ones in other languages).

use contracts::catalog::{CapacityKind, CatalogEvent, InventoryRejection, ListingKind};
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::{IntegrationEvent, SCHEMA_VERSION};
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::Money;
use serde_json::{json, Value};

fn ids() -> (ReservationId, UserId, ListingId) {
    (
        "01a1fdc6-4669-7224-80ee-bed2440fa4c3".parse().unwrap(),
        "01a1fdc6-45ec-75f4-86a5-a20223aad838".parse().unwrap(),
        "01a1fdc6-4590-77c0-b16d-a244459e2f62".parse().unwrap(),
    )
}

fn booking() -> Booking {
    let (reservation_id, user_id, listing_id) = ids();
    Booking {
        reservation_id,
        user_id,
        listing_id,
        listing_title: "LALALand".into(),
        listing_kind: ListingKind::Movie,
        quantity: 45,
        amount: Money::parse(540_000).unwrap(),
        payment_method: PaymentMethod::Card,
    }
}

fn booking_json() -> Value {
    json!({
        "reservationId": "01a1fdc6-4669-7224-80ee-bed2440fa4c3",
        "userId": "01a1fdc6-45ec-75f4-86a5-a20223aad838",
        "listingId": "01a1fdc6-4590-77c0-b16d-a244459e2f62",
        "listingTitle": "LALALand",
        "listingKind": "movie",
        "quantity": 45,
        "amount": 540000,
        "paymentMethod": "card"
    })
}

fn at() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-21 10:00:00.5 UTC)
}

/// The envelope's type and data, and that they read back into the same event.
fn assert_wire<E: IntegrationEvent + PartialEq + std::fmt::Debug>(
    event: E,
    event_type: &str,
    data: Value,
) {
    let envelope = event.to_envelope();
    assert_eq!(envelope.event_type, event_type);
    assert_eq!(envelope.schemaversion, SCHEMA_VERSION);
    assert_eq!(envelope.data, data, "payload of {event_type}");
    assert_eq!(E::from_envelope(&envelope).unwrap(), Some(event));
}

#[test]
fn reservation_events_keep_their_shape() {
    assert_wire(
        ReservationEvent::ReservationPlaced {
            booking: booking(),
            placed_at: at(),
        },
        "boxoffice.reservation.placed",
        json!({"booking": booking_json(), "placedAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        ReservationEvent::ReservationConfirmed {
            booking: booking(),
            confirmed_at: at(),
        },
        "boxoffice.reservation.confirmed",
        json!({"booking": booking_json(), "confirmedAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        ReservationEvent::ReservationRejected {
            booking: booking(),
            reason: "sold out".into(),
            rejected_at: at(),
        },
        "boxoffice.reservation.rejected",
        json!({"booking": booking_json(), "reason": "sold out", "rejectedAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        ReservationEvent::ReservationCancelled {
            booking: booking(),
            cancelled_at: at(),
        },
        "boxoffice.reservation.cancelled",
        json!({"booking": booking_json(), "cancelledAt": "2026-11-21T10:00:00.5Z"}),
    );
}

#[test]
fn catalog_events_keep_their_shape() {
    let (reservation_id, _, listing_id) = ids();
    let listing = "01a1fdc6-4590-77c0-b16d-a244459e2f62";
    let reservation = "01a1fdc6-4669-7224-80ee-bed2440fa4c3";
    assert_wire(
        CatalogEvent::ListingRegistered {
            listing_id,
            kind: ListingKind::Movie,
            title: "LALALand".into(),
            description: "".into(),
            price: Money::parse(12_000).unwrap(),
            capacity: CapacityKind::Quota { total: 100 },
            registered_at: at(),
        },
        "boxoffice.catalog.listing-registered",
        json!({
            "listingId": listing, "kind": "movie", "title": "LALALand", "description": "",
            "price": 12000, "capacity": {"type": "quota", "total": 100},
            "registeredAt": "2026-11-21T10:00:00.5Z"
        }),
    );
    assert_wire(
        CatalogEvent::TicketsReserved {
            reservation_id,
            listing_id,
            quantity: 45,
            available: 55,
        },
        "boxoffice.catalog.tickets-reserved",
        json!({"reservationId": reservation, "listingId": listing, "quantity": 45, "available": 55}),
    );
    assert_wire(
        CatalogEvent::InventoryRejected {
            reservation_id,
            listing_id,
            reason: InventoryRejection::SoldOut {
                requested: 57,
                remaining: 55,
            },
        },
        "boxoffice.catalog.inventory-rejected",
        json!({"reservationId": reservation, "listingId": listing,
               "reason": {"code": "soldOut", "requested": 57, "remaining": 55}}),
    );
    assert_wire(
        CatalogEvent::InventoryReleased {
            reservation_id,
            listing_id,
            quantity: 45,
            available: 100,
        },
        "boxoffice.catalog.inventory-released",
        json!({"reservationId": reservation, "listingId": listing, "quantity": 45, "available": 100}),
    );
}

#[test]
fn every_event_is_keyed_and_correlated_by_its_aggregate() {
    let placed = ReservationEvent::ReservationPlaced {
        booking: booking(),
        placed_at: at(),
    }
    .to_envelope();
    assert_eq!(placed.subject, "01a1fdc6-4669-7224-80ee-bed2440fa4c3");
    assert_eq!(placed.correlationid, placed.subject);
    let (reservation_id, _, listing_id) = ids();
    let held = CatalogEvent::TicketsReserved {
        reservation_id,
        listing_id,
        quantity: 1,
        available: 0,
    }
    .outgoing(Some(&placed));
    assert_eq!(
        held.envelope.subject,
        listing_id.to_string(),
        "inventory events are keyed by listing"
    );
    assert_eq!(
        held.envelope.correlationid,
        reservation_id.to_string(),
        "and correlated by reservation"
    );
    assert_eq!(held.envelope.causationid, Some(placed.id));
}

#[test]
fn an_event_of_another_family_is_not_mine_and_a_broken_one_is_an_error() {
    let placed = ReservationEvent::ReservationPlaced {
        booking: booking(),
        placed_at: at(),
    }
    .to_envelope();
    assert_eq!(CatalogEvent::from_envelope(&placed).unwrap(), None);
    let mut broken = placed.clone();
    broken.data = json!({"booking": {"quantity": "many"}});
    assert!(ReservationEvent::from_envelope(&broken).is_err());
    let mut future = placed;
    future.schemaversion = 2;
    assert!(ReservationEvent::from_envelope(&future).is_err());
}

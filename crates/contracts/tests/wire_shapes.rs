//! Contract tests: the JSON every event puts on the wire is pinned here. A
//! change that renames, removes or retypes a field fails these tests before
//! it can break a consumer (including ones in other languages).

use contracts::catalog::{
    CapacityKind, CatalogEvent, InventoryRejection, ListingKind, SeatSection,
};
use contracts::payment::{Charge, PaymentEvent};
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::shape::Shape;
use contracts::wallet::WalletEvent;
use contracts::{documents, IntegrationEvent, Routing, SCHEMA_VERSION};
use kernel::ids::{ListingId, PaymentId, ReservationId, ScreenId, UserId};
use kernel::{Money, SeatLabel};
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
        seats: Vec::new(),
        amount: Money::parse(540_000).unwrap(),
        payment_method: PaymentMethod::Card,
    }
}

fn seats(labels: &[&str]) -> Vec<SeatLabel> {
    labels.iter().map(|label| label.parse().unwrap()).collect()
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

/// The envelope's type and data, and that they read back into the same
/// event; that the whole event is what its published schema describes
/// (no field more or less, each of its type); and that its key and
/// correlation are where the contract says they are taken from.
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

    let catalogue = documents::catalogue();
    let contract = catalogue.event(event_type).expect("a published type");
    let schema = documents::event_schema(&catalogue, contract);
    let wire = serde_json::to_value(&envelope).unwrap();
    assert_eq!(
        Shape::of(&schema, &schema).mismatches(&wire),
        Vec::<String>::new(),
        "{event_type} against its schema: {wire:#}"
    );
    let routing = contract.routing;
    assert_eq!(
        Routing::resolve(routing.key, &data),
        Some(envelope.subject.as_str()),
        "the key of {event_type}"
    );
    assert_eq!(
        Routing::resolve(routing.correlation, &data),
        Some(envelope.correlationid.as_str()),
        "the correlation of {event_type}"
    );
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
    assert_wire(
        ReservationEvent::ReservationExpired {
            booking: booking(),
            reason: "not confirmed within 120 seconds".into(),
            expired_at: at(),
        },
        "boxoffice.reservation.expired",
        json!({"booking": booking_json(), "reason": "not confirmed within 120 seconds",
               "expiredAt": "2026-11-21T10:00:00.5Z"}),
    );
}

#[test]
fn a_seat_booking_names_its_seats_and_a_quota_booking_has_none_on_the_wire() {
    let mut seated = booking();
    seated.quantity = 2;
    seated.seats = seats(&["A-1", "A-2"]);
    let mut expected = booking_json();
    expected["quantity"] = json!(2);
    expected["seats"] = json!(["A-1", "A-2"]);
    assert_wire(
        ReservationEvent::ReservationPlaced {
            booking: seated,
            placed_at: at(),
        },
        "boxoffice.reservation.placed",
        json!({"booking": expected, "placedAt": "2026-11-21T10:00:00.5Z"}),
    );
    // A booking written before seats existed still reads.
    let old = serde_json::from_value::<Booking>(booking_json()).unwrap();
    assert!(old.seats.is_empty());
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
            starts_at: None,
            color: None,
            number: None,
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
            seats: Vec::new(),
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
            seats: Vec::new(),
            available: 100,
        },
        "boxoffice.catalog.inventory-released",
        json!({"reservationId": reservation, "listingId": listing, "quantity": 45, "available": 100}),
    );
}

#[test]
fn musical_and_bike_listing_events_keep_their_shape() {
    let (_, _, listing_id) = ids();
    let listing = "01a1fdc6-4590-77c0-b16d-a244459e2f62";
    let vip = SeatSection {
        name: "VIP".into(),
        price: Money::parse(150_000).unwrap(),
        seats: seats(&["A-1", "A-2"]),
    };
    let seat_map = CapacityKind::Seated {
        total: 4,
        seats: seats(&["A-1", "A-2", "B-1", "B-2"]),
        sections: vec![vip],
    };
    assert_eq!(
        seat_map.seat_price("A-2".parse().unwrap(), Money::parse(90_000).unwrap()),
        Money::parse(150_000).unwrap()
    );
    assert_eq!(
        seat_map.seat_price("B-1".parse().unwrap(), Money::parse(90_000).unwrap()),
        Money::parse(90_000).unwrap()
    );
    assert_wire(
        CatalogEvent::ListingUpdated {
            listing_id,
            title: "Wicked".into(),
            description: "Act one and two".into(),
            price: Money::parse(90_000).unwrap(),
            capacity: seat_map,
            starts_at: Some(at()),
            color: None,
            updated_at: at(),
        },
        "boxoffice.catalog.listing-updated",
        json!({
            "listingId": listing, "title": "Wicked", "description": "Act one and two",
            "price": 90000,
            "capacity": {"type": "seated", "total": 4, "seats": ["A-1", "A-2", "B-1", "B-2"],
                         "sections": [{"name": "VIP", "price": 150000, "seats": ["A-1", "A-2"]}]},
            "startsAt": "2026-11-21T10:00:00.5Z", "updatedAt": "2026-11-21T10:00:00.5Z"
        }),
    );
    assert_wire(
        CatalogEvent::ListingWithdrawn {
            listing_id,
            cancel_reservations: true,
            withdrawn_at: at(),
        },
        "boxoffice.catalog.listing-withdrawn",
        json!({"listingId": listing, "cancelReservations": true,
               "withdrawnAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        CatalogEvent::ListingRegistered {
            listing_id,
            kind: ListingKind::Bike,
            title: "Bike 2".into(),
            description: "".into(),
            price: Money::parse(1_000).unwrap(),
            capacity: CapacityKind::Unit,
            starts_at: None,
            color: Some("red".into()),
            number: Some(2),
            registered_at: at(),
        },
        "boxoffice.catalog.listing-registered",
        json!({
            "listingId": listing, "kind": "bike", "title": "Bike 2", "description": "",
            "price": 1000, "capacity": {"type": "unit"}, "color": "red", "number": 2,
            "registeredAt": "2026-11-21T10:00:00.5Z"
        }),
    );
}

#[test]
fn screen_and_seat_events_keep_their_shape() {
    let (reservation_id, _, listing_id) = ids();
    let listing = "01a1fdc6-4590-77c0-b16d-a244459e2f62";
    let reservation = "01a1fdc6-4669-7224-80ee-bed2440fa4c3";
    let screen_id: ScreenId = "01a1fdc6-4500-7000-8000-000000000001".parse().unwrap();
    let screen = "01a1fdc6-4500-7000-8000-000000000001";
    assert_wire(
        CatalogEvent::ScreenRegistered {
            screen_id,
            name: "Hall 1".into(),
            rows: 10,
            seats_per_row: 12,
            blocked: seats(&["A-1"]),
            registered_at: at(),
        },
        "boxoffice.catalog.screen-registered",
        json!({"screenId": screen, "name": "Hall 1", "rows": 10, "seatsPerRow": 12,
               "blocked": ["A-1"], "registeredAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        CatalogEvent::ListingRegistered {
            listing_id,
            kind: ListingKind::Movie,
            title: "Dune".into(),
            description: "".into(),
            price: Money::parse(15_000).unwrap(),
            color: None,
            number: None,
            capacity: CapacityKind::Seated {
                sections: Vec::new(),
                total: 2,
                seats: seats(&["A-1", "A-2"]),
            },
            starts_at: Some(at()),
            registered_at: at(),
        },
        "boxoffice.catalog.listing-registered",
        json!({
            "listingId": listing, "kind": "movie", "title": "Dune", "description": "",
            "price": 15000, "capacity": {"type": "seated", "total": 2, "seats": ["A-1", "A-2"]},
            "startsAt": "2026-11-21T10:00:00.5Z", "registeredAt": "2026-11-21T10:00:00.5Z"
        }),
    );
    assert_wire(
        CatalogEvent::ScreenAssigned {
            listing_id,
            screen_id,
            screen_name: "Hall 1".into(),
        },
        "boxoffice.catalog.screen-assigned",
        json!({"listingId": listing, "screenId": screen, "screenName": "Hall 1"}),
    );
    assert_wire(
        CatalogEvent::TicketsReserved {
            reservation_id,
            listing_id,
            quantity: 1,
            seats: seats(&["A-1"]),
            available: 1,
        },
        "boxoffice.catalog.tickets-reserved",
        json!({"reservationId": reservation, "listingId": listing, "quantity": 1,
               "seats": ["A-1"], "available": 1}),
    );
    assert_wire(
        CatalogEvent::InventorySold {
            reservation_id,
            listing_id,
            quantity: 1,
            seats: seats(&["A-1"]),
        },
        "boxoffice.catalog.inventory-sold",
        json!({"reservationId": reservation, "listingId": listing, "quantity": 1, "seats": ["A-1"]}),
    );
    let taken = InventoryRejection::SeatTaken {
        seats: seats(&["A-1"]),
    };
    assert_eq!(taken.to_string(), "seat unavailable: A-1 is taken");
    assert_wire(
        CatalogEvent::InventoryRejected {
            reservation_id,
            listing_id,
            reason: taken,
        },
        "boxoffice.catalog.inventory-rejected",
        json!({"reservationId": reservation, "listingId": listing,
               "reason": {"code": "seatTaken", "seats": ["A-1"]}}),
    );
}

#[test]
fn payment_events_keep_their_shape() {
    let (reservation_id, user_id, _) = ids();
    let payment_id: PaymentId = "01a1fdc6-4700-7000-8000-000000000002".parse().unwrap();
    let charge = Charge {
        payment_id,
        user_id,
        amount: Money::parse(15_000).unwrap(),
        reservation_id: Some(reservation_id),
    };
    let charge_json = json!({
        "paymentId": "01a1fdc6-4700-7000-8000-000000000002",
        "userId": "01a1fdc6-45ec-75f4-86a5-a20223aad838",
        "amount": 15000,
        "reservationId": "01a1fdc6-4669-7224-80ee-bed2440fa4c3"
    });
    let at_json = "2026-11-21T10:00:00.5Z";
    assert_wire(
        PaymentEvent::PaymentAuthorised {
            charge: charge.clone(),
            authorised_at: at(),
        },
        "boxoffice.payment.authorised",
        json!({"charge": charge_json, "authorisedAt": at_json}),
    );
    assert_wire(
        PaymentEvent::PaymentDeclined {
            charge: charge.clone(),
            reason: "amount over the card's limit".into(),
            declined_at: at(),
        },
        "boxoffice.payment.declined",
        json!({"charge": charge_json, "reason": "amount over the card's limit", "declinedAt": at_json}),
    );
    assert_wire(
        PaymentEvent::PaymentCaptured {
            charge: charge.clone(),
            captured_at: at(),
        },
        "boxoffice.payment.captured",
        json!({"charge": charge_json, "capturedAt": at_json}),
    );
    assert_wire(
        PaymentEvent::PaymentVoided {
            charge: charge.clone(),
            voided_at: at(),
        },
        "boxoffice.payment.voided",
        json!({"charge": charge_json, "voidedAt": at_json}),
    );
    let refunded = PaymentEvent::PaymentRefunded {
        charge: charge.clone(),
        refunded_at: at(),
    };
    assert_eq!(
        refunded.to_envelope().subject,
        reservation_id.to_string(),
        "a booking's payment is keyed by the booking"
    );
    assert_wire(
        refunded,
        "boxoffice.payment.refunded",
        json!({"charge": charge_json, "refundedAt": at_json}),
    );
}

#[test]
fn a_payment_for_no_booking_is_keyed_by_itself() {
    let (_, user_id, _) = ids();
    let payment_id: PaymentId = "01a1fdc6-4700-7000-8000-000000000003".parse().unwrap();
    assert_wire(
        PaymentEvent::PaymentCaptured {
            charge: Charge {
                payment_id,
                user_id,
                amount: Money::parse(30_000).unwrap(),
                reservation_id: None,
            },
            captured_at: at(),
        },
        "boxoffice.payment.captured",
        json!({"charge": {
            "paymentId": "01a1fdc6-4700-7000-8000-000000000003",
            "userId": "01a1fdc6-45ec-75f4-86a5-a20223aad838",
            "amount": 30000
        }, "capturedAt": "2026-11-21T10:00:00.5Z"}),
    );
}

#[test]
fn wallet_events_keep_their_shape() {
    let (reservation_id, user_id, _) = ids();
    let earned = WalletEvent::PointsEarned {
        user_id,
        reservation_id,
        points: 1_500,
        balance: 1_500,
        earned_at: at(),
    };
    assert_eq!(earned.to_envelope().subject, user_id.to_string());
    assert_wire(
        earned,
        "boxoffice.wallet.points-earned",
        json!({"userId": "01a1fdc6-45ec-75f4-86a5-a20223aad838",
               "reservationId": "01a1fdc6-4669-7224-80ee-bed2440fa4c3",
               "points": 1500, "balance": 1500, "earnedAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        WalletEvent::PointsWithdrawn {
            user_id,
            reservation_id,
            points: 1_000,
            shortfall: 500,
            balance: 0,
            withdrawn_at: at(),
        },
        "boxoffice.wallet.points-withdrawn",
        json!({"userId": "01a1fdc6-45ec-75f4-86a5-a20223aad838",
               "reservationId": "01a1fdc6-4669-7224-80ee-bed2440fa4c3",
               "points": 1000, "shortfall": 500, "balance": 0,
               "withdrawnAt": "2026-11-21T10:00:00.5Z"}),
    );
}

#[test]
fn points_bought_spent_refused_and_refunded_keep_their_shape() {
    let (reservation_id, user_id, _) = ids();
    let user = "01a1fdc6-45ec-75f4-86a5-a20223aad838";
    let reservation = "01a1fdc6-4669-7224-80ee-bed2440fa4c3";
    let payment_id: PaymentId = "01a1fdc6-4700-7000-8000-000000000001".parse().unwrap();
    let purchased = WalletEvent::PointsPurchased {
        user_id,
        payment_id,
        points: 3_000,
        balance: 8_000,
        purchased_at: at(),
    };
    let envelope = purchased.to_envelope();
    assert_eq!(envelope.subject, user);
    assert_eq!(envelope.correlationid, payment_id.to_string());
    assert_eq!(purchased.reservation_id(), None);
    assert_wire(
        purchased,
        "boxoffice.wallet.points-purchased",
        json!({"userId": user, "paymentId": "01a1fdc6-4700-7000-8000-000000000001",
               "points": 3000, "balance": 8000, "purchasedAt": "2026-11-21T10:00:00.5Z"}),
    );
    let spent = WalletEvent::PointsSpent {
        user_id,
        reservation_id,
        points: 1_000,
        balance: 7_000,
        spent_at: at(),
    };
    assert_eq!(spent.to_envelope().correlationid, reservation);
    assert_wire(
        spent,
        "boxoffice.wallet.points-spent",
        json!({"userId": user, "reservationId": reservation, "points": 1000, "balance": 7000,
               "spentAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        WalletEvent::PointsRefused {
            user_id,
            reservation_id,
            points: 1_000,
            balance: 500,
            reason: "not enough points: 500 of 1000".into(),
            refused_at: at(),
        },
        "boxoffice.wallet.points-refused",
        json!({"userId": user, "reservationId": reservation, "points": 1000, "balance": 500,
               "reason": "not enough points: 500 of 1000", "refusedAt": "2026-11-21T10:00:00.5Z"}),
    );
    assert_wire(
        WalletEvent::PointsRefunded {
            user_id,
            reservation_id,
            points: 1_000,
            balance: 8_000,
            refunded_at: at(),
        },
        "boxoffice.wallet.points-refunded",
        json!({"userId": user, "reservationId": reservation, "points": 1000, "balance": 8000,
               "refundedAt": "2026-11-21T10:00:00.5Z"}),
    );
}

#[test]
fn a_returned_rental_keeps_its_shape() {
    let mut expected = json!({"booking": booking_json()});
    expected["returnedAt"] = json!("2026-11-21T10:00:00.5Z");
    assert_wire(
        ReservationEvent::ReservationReturned {
            booking: booking(),
            returned_at: at(),
        },
        "boxoffice.reservation.returned",
        expected,
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
        seats: Vec::new(),
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
    let error = ReservationEvent::from_envelope(&broken)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("boxoffice.reservation.placed") && error.contains("\"many\""),
        "{error}"
    );
    let mut future = placed;
    future.schemaversion = 2;
    assert!(ReservationEvent::from_envelope(&future).is_err());
}

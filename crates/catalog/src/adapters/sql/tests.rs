//! The SQL adapter and the inventory policy on a real database: SQLite in
//! a temp dir, and PostgreSQL when `BOXOFFICE_TEST_POSTGRES` names a server.

use std::sync::Arc;

use contracts::catalog::{CapacityKind, CatalogEvent, InventoryRejection, ListingKind};
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::{Envelope, Money, SeatLabel};
use runtime::consumer::EventHandler;
use runtime::retry::is_transient;
use runtime::Store;

use super::*;
use crate::adapters::policy::InventoryPolicy;
use crate::domain::seats::SeatStatus;
use crate::domain::{ListingDraft, SeatingDraft};
use crate::Settings;

struct Catalog {
    _dir: Option<tempfile::TempDir>,
    store: Store,
    listings: Listings,
    screens: Screens,
    policy: Arc<InventoryPolicy>,
}

impl Catalog {
    async fn sqlite() -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let url = runtime::store::sqlite_url(dir.path(), "catalog");
        Catalog::on(&url, Some(dir)).await
    }

    async fn on(url: &str, dir: Option<tempfile::TempDir>) -> Catalog {
        let store = Store::connect(url, MIGRATIONS).await.unwrap();
        let listings = Listings::new(store.clone());
        let screens = Screens::new(store.clone());
        screens
            .ensure(Settings::default().screens().unwrap())
            .await
            .unwrap();
        Catalog {
            _dir: dir,
            policy: Arc::new(InventoryPolicy::new(listings.clone())),
            store,
            listings,
            screens,
        }
    }

    /// A seated showing on the smallest screen (Hall 3, 6 × 8: 48 seats).
    async fn showing(&self) -> ListingId {
        let listing = NewListing::parse(ListingDraft {
            title: Some("Seated".into()),
            price: Some(1_500),
            seating: Some(SeatingDraft {
                rows: Some(2),
                seats_per_row: Some(2),
                ..SeatingDraft::default()
            }),
            ..ListingDraft::default()
        })
        .unwrap();
        self.listings.register(listing).await.unwrap().id
    }

    async fn quota(&self, tickets: i64) -> ListingId {
        let listing = NewListing::parse(ListingDraft {
            title: Some("Quota".into()),
            price: Some(1_500),
            tickets: Some(tickets),
            ..ListingDraft::default()
        })
        .unwrap();
        self.listings.register(listing).await.unwrap().id
    }

    /// Applies one event as the consumer does: prepare, handle, commit;
    /// passing faults (a lost race) are retried.
    async fn apply(&self, envelope: &Envelope) {
        loop {
            let mut tx = self.store.begin().await.unwrap();
            let outcome = async {
                self.policy.prepare(&mut tx, &[envelope]).await?;
                self.policy.handle(&mut tx, envelope).await
            }
            .await;
            match outcome {
                Ok(()) => return self.store.commit(tx).await.unwrap(),
                Err(error) if is_transient(&error) => {
                    drop(tx);
                    tokio::task::yield_now().await;
                }
                Err(error) => panic!("{error:#}"),
            }
        }
    }

    /// Every catalog event in the outbox about reservations (screens and
    /// listings left out), in order.
    async fn inventory_events(&self) -> Vec<CatalogEvent> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(self.store.reader())
            .await
            .unwrap();
        rows.iter()
            .map(|row| serde_json::from_str::<Envelope>(row).unwrap())
            .filter_map(|envelope| CatalogEvent::from_envelope(&envelope).unwrap())
            .filter(|event| {
                !matches!(
                    event,
                    CatalogEvent::ScreenRegistered { .. }
                        | CatalogEvent::ListingRegistered { .. }
                        | CatalogEvent::ScreenAssigned { .. }
                )
            })
            .collect()
    }

    async fn seat(&self, listing: ListingId, label: &str) -> SeatStatus {
        let seat: SeatLabel = label.parse().unwrap();
        self.listings
            .seat_map(listing)
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == seat)
            .map(|(_, status)| status)
            .unwrap()
    }

    async fn available(&self, listing: ListingId) -> u32 {
        let record = self.listings.find(listing).await.unwrap().unwrap();
        record.quota.available()
    }
}

fn labels(seats: &[&str]) -> Vec<SeatLabel> {
    seats.iter().map(|seat| seat.parse().unwrap()).collect()
}

fn booking(listing: ListingId, seats: &[&str]) -> Booking {
    Booking {
        reservation_id: ReservationId::new(),
        user_id: UserId::new(),
        listing_id: listing,
        listing_title: "Seated".into(),
        listing_kind: ListingKind::Movie,
        quantity: seats.len().max(1) as u32,
        seats: labels(seats),
        amount: Money::parse(1_500).unwrap(),
        payment_method: PaymentMethod::Card,
    }
}

fn placed(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationPlaced {
        booking: booking.clone(),
        placed_at: kernel::now(),
    }
    .to_envelope()
}

fn confirmed(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationConfirmed {
        booking: booking.clone(),
        confirmed_at: kernel::now(),
    }
    .to_envelope()
}

fn cancelled(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationCancelled {
        booking: booking.clone(),
        cancelled_at: kernel::now(),
    }
    .to_envelope()
}

fn expired(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationExpired {
        booking: booking.clone(),
        reason: "no answer".into(),
        expired_at: kernel::now(),
    }
    .to_envelope()
}

fn rejected(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationRejected {
        booking: booking.clone(),
        reason: "payment declined".into(),
        rejected_at: kernel::now(),
    }
    .to_envelope()
}

fn reserved_seats(event: &CatalogEvent) -> Option<&[SeatLabel]> {
    match event {
        CatalogEvent::TicketsReserved { seats, .. } => Some(seats),
        _ => None,
    }
}

fn rejection(event: &CatalogEvent) -> Option<&InventoryRejection> {
    match event {
        CatalogEvent::InventoryRejected { reason, .. } => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn a_seated_showing_gets_the_smallest_screen_and_its_seats() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let record = catalog.listings.find(listing).await.unwrap().unwrap();
    assert_eq!(record.screen.unwrap().name, "Hall 3");
    assert_eq!((record.quota.total(), record.quota.available()), (48, 48));
    let map = catalog.listings.seat_map(listing).await.unwrap();
    assert_eq!(map.len(), 48);
    assert_eq!(map[0].0.to_string(), "A-1");
    assert_eq!(map[8].0.to_string(), "B-1");
    assert!(map
        .iter()
        .all(|(_, status)| *status == SeatStatus::Available));

    let rows: Vec<String> = sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY seq")
        .fetch_all(catalog.store.reader())
        .await
        .unwrap();
    let events: Vec<CatalogEvent> = rows
        .iter()
        .filter_map(|row| CatalogEvent::from_envelope(&serde_json::from_str(row).unwrap()).unwrap())
        .collect();
    let n = events.len();
    assert!(matches!(
        &events[n - 2],
        CatalogEvent::ListingRegistered { capacity: CapacityKind::Seated { total: 48, seats, .. }, .. }
            if seats.len() == 48
    ));
    assert!(matches!(
        &events[n - 1],
        CatalogEvent::ScreenAssigned { screen_name, .. } if screen_name == "Hall 3"
    ));
}

#[tokio::test]
async fn configured_screens_are_added_once() {
    let catalog = Catalog::sqlite().await;
    let again = catalog
        .screens
        .ensure(Settings::default().screens().unwrap())
        .await
        .unwrap();
    assert!(again.is_empty());
    let registered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE envelope LIKE '%screen-registered%'")
            .fetch_one(catalog.store.reader())
            .await
            .unwrap();
    assert_eq!(registered, 3);
    assert_eq!(
        catalog.screens.list(None, 10).await.unwrap().unwrap().len(),
        3
    );
}

#[tokio::test]
async fn a_screen_busy_at_that_time_is_not_given_to_a_second_showing() {
    let catalog = Catalog::sqlite().await;
    let at = |text: &str| Some(text.to_owned());
    let draft = |starts_at: Option<String>| ListingDraft {
        title: Some("Late show".into()),
        price: Some(1_000),
        seating: Some(SeatingDraft {
            rows: Some(6),
            seats_per_row: Some(8),
            ..SeatingDraft::default()
        }),
        starts_at,
        ..ListingDraft::default()
    };
    let register = |draft| async {
        catalog
            .listings
            .register(NewListing::parse(draft).unwrap())
            .await
    };
    let first = register(draft(at("2026-11-21T18:00:00Z"))).await.unwrap();
    assert_eq!(first.screen.as_ref().unwrap().name, "Hall 3");
    let second = register(draft(at("2026-11-21T20:00:00Z"))).await.unwrap();
    assert_eq!(second.screen.as_ref().unwrap().name, "Hall 2");
    let third = register(draft(at("2026-11-21T21:00:00Z"))).await.unwrap();
    assert_eq!(third.screen.as_ref().unwrap().name, "Hall 3");

    let hall3 = first.screen.unwrap().id;
    let mut named = draft(at("2026-11-21T22:30:00Z"));
    named.seating = Some(SeatingDraft {
        screen_id: Some(hall3.to_string()),
        ..SeatingDraft::default()
    });
    let busy = register(named).await.unwrap_err();
    assert!(
        matches!(&busy, RegisterError::Assignment(AssignmentError::Busy { listing, .. }) if *listing == third.id),
        "{busy}"
    );
    let mut huge = draft(None);
    huge.seating = Some(SeatingDraft {
        rows: Some(30),
        seats_per_row: Some(40),
        ..SeatingDraft::default()
    });
    let none = register(huge).await.unwrap_err();
    assert_eq!(
        none.to_string(),
        "no free screen fits a showing of 30 rows × 40 seats (largest: Hall 1, 10 × 12)"
    );
}

#[tokio::test]
async fn two_bookings_of_the_same_seat_reserve_it_once() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let (first, second) = (booking(listing, &["A-1"]), booking(listing, &["A-1"]));
    catalog.apply(&placed(&first)).await;
    catalog.apply(&placed(&second)).await;
    let events = catalog.inventory_events().await;
    assert_eq!(events.iter().filter_map(reserved_seats).count(), 1);
    assert_eq!(
        events.iter().filter_map(rejection).collect::<Vec<_>>(),
        [&InventoryRejection::SeatTaken {
            seats: labels(&["A-1"])
        }]
    );
    assert_eq!(catalog.seat(listing, "A-1").await, SeatStatus::Held);
    assert_eq!(catalog.available(listing).await, 47);
}

#[tokio::test]
async fn overlapping_bookings_are_never_both_held_and_the_loser_keeps_nothing() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let first = booking(listing, &["A-1", "A-2"]);
    let second = booking(listing, &["A-2", "A-3"]);
    catalog.apply(&placed(&first)).await;
    catalog.apply(&placed(&second)).await;
    let events = catalog.inventory_events().await;
    assert_eq!(
        events.iter().filter_map(reserved_seats).collect::<Vec<_>>(),
        [labels(&["A-1", "A-2"])]
    );
    assert_eq!(
        events.iter().filter_map(rejection).collect::<Vec<_>>(),
        [&InventoryRejection::SeatTaken {
            seats: labels(&["A-2"])
        }]
    );
    assert_eq!(catalog.seat(listing, "A-3").await, SeatStatus::Available);
    assert_eq!(catalog.available(listing).await, 46);
}

#[tokio::test]
async fn a_redelivered_booking_is_decided_once() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let winner = booking(listing, &["B-1"]);
    let loser = booking(listing, &["B-1"]);
    let (won, lost) = (placed(&winner), placed(&loser));
    catalog.apply(&won).await;
    catalog.apply(&lost).await;
    catalog.apply(&won).await;
    catalog.apply(&lost).await;
    // Even with the seat free again, the refused booking stays refused.
    catalog.apply(&cancelled(&winner)).await;
    catalog.apply(&lost).await;
    let events = catalog.inventory_events().await;
    assert_eq!(events.iter().filter_map(reserved_seats).count(), 1);
    assert_eq!(events.iter().filter_map(rejection).count(), 1);
    assert_eq!(catalog.available(listing).await, 48);
}

#[tokio::test]
async fn a_confirmed_booking_sells_its_seats_once() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let bought = booking(listing, &["C-3", "C-4"]);
    catalog.apply(&placed(&bought)).await;
    catalog.apply(&confirmed(&bought)).await;
    catalog.apply(&confirmed(&bought)).await;
    assert_eq!(catalog.seat(listing, "C-3").await, SeatStatus::Sold);
    assert_eq!(catalog.seat(listing, "C-4").await, SeatStatus::Sold);
    let sold: Vec<_> = catalog
        .inventory_events()
        .await
        .into_iter()
        .filter_map(|event| match event {
            CatalogEvent::InventorySold {
                seats, quantity, ..
            } => Some((seats, quantity)),
            _ => None,
        })
        .collect();
    assert_eq!(sold, [(labels(&["C-3", "C-4"]), 2)]);
    // A confirmation of something never held sells nothing.
    catalog.apply(&confirmed(&booking(listing, &["D-1"]))).await;
    assert_eq!(catalog.seat(listing, "D-1").await, SeatStatus::Available);
}

#[tokio::test]
async fn a_cancelled_or_expired_booking_frees_its_seats_for_the_next_customer() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let sold = booking(listing, &["A-1"]);
    let pending = booking(listing, &["A-2"]);
    catalog.apply(&placed(&sold)).await;
    catalog.apply(&confirmed(&sold)).await;
    catalog.apply(&placed(&pending)).await;
    assert_eq!(catalog.available(listing).await, 46);

    catalog.apply(&cancelled(&sold)).await;
    catalog.apply(&cancelled(&sold)).await;
    catalog.apply(&expired(&pending)).await;
    assert_eq!(catalog.seat(listing, "A-1").await, SeatStatus::Available);
    assert_eq!(catalog.seat(listing, "A-2").await, SeatStatus::Available);
    assert_eq!(catalog.available(listing).await, 48);
    let released: Vec<_> = catalog
        .inventory_events()
        .await
        .into_iter()
        .filter_map(|event| match event {
            CatalogEvent::InventoryReleased { seats, .. } => Some(seats),
            _ => None,
        })
        .collect();
    assert_eq!(released, [labels(&["A-1"]), labels(&["A-2"])]);

    let next = booking(listing, &["A-1", "A-2"]);
    catalog.apply(&placed(&next)).await;
    assert_eq!(catalog.seat(listing, "A-2").await, SeatStatus::Held);
}

#[tokio::test]
async fn a_rejection_catalog_caused_releases_nothing() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let first = booking(listing, &["A-1"]);
    let second = booking(listing, &["A-1"]);
    catalog.apply(&placed(&first)).await;
    catalog.apply(&placed(&second)).await;
    let before = catalog.inventory_events().await.len();
    catalog.apply(&rejected(&second)).await;
    assert_eq!(catalog.inventory_events().await.len(), before);
    assert_eq!(catalog.seat(listing, "A-1").await, SeatStatus::Held);
    // A rejection after a hold (payment declined) gives the seat back.
    catalog.apply(&rejected(&first)).await;
    assert_eq!(catalog.seat(listing, "A-1").await, SeatStatus::Available);
}

#[tokio::test]
async fn bookings_that_do_not_suit_the_listing_are_rejected_with_the_reason() {
    let catalog = Catalog::sqlite().await;
    let seated = catalog.showing().await;
    let quota = catalog.quota(10).await;
    catalog
        .apply(&placed(&booking(seated, &["A-1", "G-1", "A-9"])))
        .await;
    catalog.apply(&placed(&booking(quota, &["A-1"]))).await;
    catalog.apply(&placed(&booking(seated, &[]))).await;
    let reasons: Vec<InventoryRejection> = catalog
        .inventory_events()
        .await
        .iter()
        .filter_map(rejection)
        .cloned()
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(
        reasons[0],
        InventoryRejection::UnknownSeats {
            seats: labels(&["G-1", "A-9"])
        }
    );
    assert!(
        matches!(&reasons[1], InventoryRejection::Unsuitable { detail } if detail.contains("quota"))
    );
    assert!(
        matches!(&reasons[2], InventoryRejection::Unsuitable { detail } if detail.contains("name the seats"))
    );
    assert_eq!(catalog.seat(seated, "A-1").await, SeatStatus::Available);
    assert_eq!(catalog.available(quota).await, 10);
}

#[tokio::test]
async fn a_quota_is_held_sold_and_given_back_as_before() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.quota(10).await;
    let mut tickets = booking(listing, &[]);
    tickets.quantity = 4;
    catalog.apply(&placed(&tickets)).await;
    assert_eq!(catalog.available(listing).await, 6);
    catalog.apply(&confirmed(&tickets)).await;
    assert_eq!(catalog.available(listing).await, 6);
    let mut too_many = booking(listing, &[]);
    too_many.quantity = 7;
    catalog.apply(&placed(&too_many)).await;
    catalog.apply(&cancelled(&tickets)).await;
    assert_eq!(catalog.available(listing).await, 10);
    let events = catalog.inventory_events().await;
    assert!(
        matches!(
            events.as_slice(),
            [
                CatalogEvent::TicketsReserved {
                    quantity: 4,
                    available: 6,
                    ..
                },
                CatalogEvent::InventorySold { quantity: 4, .. },
                CatalogEvent::InventoryRejected {
                    reason: InventoryRejection::SoldOut {
                        requested: 7,
                        remaining: 6
                    },
                    ..
                },
                CatalogEvent::InventoryReleased {
                    quantity: 4,
                    available: 10,
                    ..
                },
            ]
        ),
        "{events:#?}"
    );
}

/// Two catalog replicas (two pools on one PostgreSQL database) race 50
/// bookings for the same few seats: each seat ends with one holder.
#[tokio::test]
async fn racing_replicas_on_postgres_sell_each_seat_once() {
    let Some(server) = std::env::var("BOXOFFICE_TEST_POSTGRES").ok() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this test: set BOXOFFICE_TEST_POSTGRES"
        );
        return;
    };
    let database = format!("catalog_seats_{}", ReservationId::new().as_uuid().simple());
    let url = format!("{}/{database}", server.trim_end_matches('/'));
    let one = Arc::new(Catalog::on(&url, None).await);
    let two = Arc::new(Catalog::on(&url, None).await);
    let listing = one.showing().await;
    let wanted = [
        ["A-1", "A-2"],
        ["A-2", "A-3"],
        ["A-3", "A-4"],
        ["A-4", "A-1"],
        ["A-1", "A-3"],
    ];
    let bookings: Vec<Booking> = (0..50)
        .map(|n| booking(listing, &wanted[n % wanted.len()]))
        .collect();
    let mut racing = tokio::task::JoinSet::new();
    for (n, booking) in bookings.iter().enumerate() {
        let replica = if n % 2 == 0 { one.clone() } else { two.clone() };
        let envelope = placed(booking);
        racing.spawn(async move { replica.apply(&envelope).await });
    }
    while let Some(done) = racing.join_next().await {
        done.unwrap();
    }
    let events = one.inventory_events().await;
    let mut held: Vec<SeatLabel> = events
        .iter()
        .filter_map(reserved_seats)
        .flatten()
        .copied()
        .collect();
    let reserved = held.len();
    held.sort();
    held.dedup();
    assert_eq!(
        held.len(),
        reserved,
        "a seat was reserved twice: {events:#?}"
    );
    assert_eq!(
        events.iter().filter_map(reserved_seats).count()
            + events.iter().filter_map(rejection).count(),
        50
    );
    let holders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM seat_holds WHERE listing_id = $1")
        .bind(listing.to_string())
        .fetch_one(one.store.reader())
        .await
        .unwrap();
    assert_eq!(holders as usize, reserved);
    assert_eq!(one.available(listing).await as usize, 48 - reserved);
}

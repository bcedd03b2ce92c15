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
use crate::domain::seat_map::{SeatMapPatch, SectionDraft};
use crate::domain::seats::SeatStatus;
use crate::domain::{ListingChangeDraft, ListingDraft, SeatingDraft};
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

    /// A musical of `rows` × `per_row` seats with these sections.
    async fn musical(&self, rows: i64, per_row: i64, sections: Vec<SectionDraft>) -> ListingId {
        let listing = NewListing::parse(ListingDraft {
            kind: Some(ListingKind::Musical),
            title: Some("Wicked".into()),
            price: Some(90_000),
            seating: Some(SeatingDraft {
                rows: Some(rows),
                seats_per_row: Some(per_row),
                sections: Some(sections),
                ..SeatingDraft::default()
            }),
            ..ListingDraft::default()
        })
        .unwrap();
        self.listings.register(listing).await.unwrap().id
    }

    async fn bike(&self, color: &str) -> ListingRecord {
        let listing = NewListing::parse(ListingDraft {
            kind: Some(ListingKind::Bike),
            color: Some(color.into()),
            ..ListingDraft::default()
        })
        .unwrap();
        self.listings.register(listing).await.unwrap()
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

    /// Every catalog event in the outbox, in order.
    async fn events(&self) -> Vec<CatalogEvent> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(self.store.reader())
            .await
            .unwrap();
        rows.iter()
            .map(|row| serde_json::from_str::<Envelope>(row).unwrap())
            .filter_map(|envelope| CatalogEvent::from_envelope(&envelope).unwrap())
            .collect()
    }

    /// Every catalog event in the outbox about reservations (screens and
    /// listings left out), in order.
    async fn inventory_events(&self) -> Vec<CatalogEvent> {
        self.events()
            .await
            .into_iter()
            .filter(|event| {
                !matches!(
                    event,
                    CatalogEvent::ScreenRegistered { .. }
                        | CatalogEvent::ListingRegistered { .. }
                        | CatalogEvent::ListingUpdated { .. }
                        | CatalogEvent::ListingWithdrawn { .. }
                        | CatalogEvent::ScreenAssigned { .. }
                )
            })
            .collect()
    }

    /// What the listing stands at, on sale or withdrawn.
    async fn stored(&self, listing: ListingId) -> ListingRecord {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM listings WHERE id = $1"))
            .bind(listing.to_string())
            .fetch_one(self.store.reader())
            .await
            .unwrap();
        from_row(&row).unwrap()
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

/// A bike rental as reservation books it: one, no seats.
fn rental(listing: ListingId) -> Booking {
    Booking {
        listing_kind: ListingKind::Bike,
        listing_title: "Bike".into(),
        amount: Money::parse(1_000).unwrap(),
        payment_method: PaymentMethod::Points,
        ..booking(listing, &[])
    }
}

fn returned(booking: &Booking) -> Envelope {
    ReservationEvent::ReservationReturned {
        booking: booking.clone(),
        returned_at: kernel::now(),
    }
    .to_envelope()
}

/// A database of its own on the PostgreSQL server `BOXOFFICE_TEST_POSTGRES`
/// names; `None` without one (CI always has one).
fn postgres(purpose: &str) -> Option<String> {
    runtime::store::test_postgres_url("catalog", purpose)
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
    let Some(url) = postgres("seats") else {
        return;
    };
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

fn labels_of(seats: &[SeatLabel]) -> String {
    kernel::seat::list(seats)
}

fn vip(rows: &[&str]) -> SectionDraft {
    SectionDraft {
        name: "VIP".into(),
        price: 150_000,
        rows: rows.iter().map(|row| (*row).to_owned()).collect(),
    }
}

fn seating(rows: Option<i64>, sections: Option<Vec<SectionDraft>>) -> ListingChangeDraft {
    ListingChangeDraft {
        seating: Some(SeatMapPatch {
            rows,
            seats_per_row: None,
            sections,
        }),
        ..ListingChangeDraft::default()
    }
}

#[tokio::test]
async fn a_musical_sells_its_own_seats_with_section_prices_and_gets_no_screen() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.musical(3, 2, vec![vip(&["A"])]).await;
    let record = catalog.listings.find(listing).await.unwrap().unwrap();
    assert_eq!(record.screen, None);
    assert_eq!(record.sold_by(), SoldBy::Seats);
    assert_eq!((record.quota.total(), record.quota.available()), (6, 6));
    assert_eq!(record.sections[0].name(), "VIP");
    let events = catalog.events().await;
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, CatalogEvent::ScreenAssigned { .. })),
        "{events:#?}"
    );
    let Some(CatalogEvent::ListingRegistered {
        kind: ListingKind::Musical,
        capacity:
            CapacityKind::Seated {
                total,
                seats,
                sections,
            },
        ..
    }) = events.last()
    else {
        panic!("{events:#?}");
    };
    assert_eq!(*total, 6);
    assert_eq!(labels_of(seats), "A-1, A-2, B-1, B-2, C-1, C-2");
    assert_eq!(sections[0].price, Money::parse(150_000).unwrap());
    assert_eq!(labels_of(&sections[0].seats), "A-1, A-2");

    let front = booking(listing, &["A-1", "A-2"]);
    catalog.apply(&placed(&front)).await;
    catalog.apply(&placed(&booking(listing, &["A-2"]))).await;
    catalog.apply(&placed(&booking(listing, &["D-1"]))).await;
    assert_eq!(catalog.seat(listing, "A-2").await, SeatStatus::Held);
    assert_eq!(catalog.available(listing).await, 4);
    let reasons: Vec<_> = catalog
        .inventory_events()
        .await
        .iter()
        .filter_map(rejection)
        .cloned()
        .collect();
    assert_eq!(
        reasons,
        [
            InventoryRejection::SeatTaken {
                seats: labels(&["A-2"])
            },
            InventoryRejection::UnknownSeats {
                seats: labels(&["D-1"])
            }
        ]
    );
}

#[tokio::test]
async fn bikes_are_numbered_on_after_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let url = runtime::store::sqlite_url(dir.path(), "catalog");
    bikes_are_numbered_on_across_restarts(&url).await;
}

#[tokio::test]
async fn bikes_are_numbered_on_after_postgres_is_reconnected() {
    let Some(url) = postgres("bikes") else {
        return;
    };
    bikes_are_numbered_on_across_restarts(&url).await;
}

async fn bikes_are_numbered_on_across_restarts(url: &str) {
    let catalog = Catalog::on(url, None).await;
    let first = catalog.bike("red").await;
    let second = catalog.bike("blue").await;
    assert_eq!((first.number, first.title.as_str()), (Some(1), "Bike 1"));
    assert_eq!((second.number, second.title.as_str()), (Some(2), "Bike 2"));
    assert_eq!(first.price, Money::parse(1_000).unwrap());
    assert_eq!(first.color.as_deref(), Some("red"));
    catalog.store.close().await;
    drop(catalog);

    let reopened = Catalog::on(url, None).await;
    let third = reopened.bike("green").await;
    assert_eq!((third.number, third.title.as_str()), (Some(3), "Bike 3"));
    let found = reopened.listings.find(third.id).await.unwrap().unwrap();
    assert_eq!(found, third);
    let Some(CatalogEvent::ListingRegistered {
        capacity,
        color,
        number,
        ..
    }) = reopened.events().await.pop()
    else {
        panic!("a bike is announced");
    };
    assert_eq!(capacity, CapacityKind::Unit);
    assert_eq!((color.as_deref(), number), (Some("green"), Some(3)));
}

#[tokio::test]
async fn a_bike_is_rented_to_one_customer_at_a_time_and_again_once_returned() {
    let catalog = Catalog::sqlite().await;
    let bike = catalog.bike("red").await.id;
    let first = rental(bike);
    let second = rental(bike);
    catalog.apply(&placed(&first)).await;
    catalog.apply(&placed(&second)).await;
    catalog.apply(&confirmed(&first)).await;
    assert_eq!(catalog.available(bike).await, 0);
    catalog.apply(&returned(&first)).await;
    assert_eq!(catalog.available(bike).await, 1);
    let third = rental(bike);
    catalog.apply(&placed(&third)).await;
    catalog.apply(&cancelled(&third)).await;
    let mut seated = rental(bike);
    seated.seats = labels(&["A-1"]);
    catalog.apply(&placed(&seated)).await;
    let mut two = rental(bike);
    two.quantity = 2;
    catalog.apply(&placed(&two)).await;
    assert_eq!(catalog.available(bike).await, 1);
    let events = catalog.inventory_events().await;
    assert!(
        matches!(
            events.as_slice(),
            [
                CatalogEvent::TicketsReserved {
                    quantity: 1,
                    available: 0,
                    ..
                },
                CatalogEvent::InventoryRejected {
                    reason: InventoryRejection::InUse,
                    ..
                },
                CatalogEvent::InventorySold { quantity: 1, .. },
                CatalogEvent::InventoryReleased {
                    quantity: 1,
                    available: 1,
                    ..
                },
                CatalogEvent::TicketsReserved { available: 0, .. },
                CatalogEvent::InventoryReleased { available: 1, .. },
                CatalogEvent::InventoryRejected {
                    reason: InventoryRejection::Unsuitable { .. },
                    ..
                },
                CatalogEvent::InventoryRejected {
                    reason: InventoryRejection::Unsuitable { .. },
                    ..
                },
            ]
        ),
        "{events:#?}"
    );
}

/// 50 customers book one bike at the same moment, on `replicas` catalog
/// replicas: one gets it, the others hear it is in use.
async fn fifty_customers_race_for_one_bike(replicas: &[Arc<Catalog>]) {
    let bike = replicas[0].bike("red").await.id;
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..50 {
        let replica = replicas[n % replicas.len()].clone();
        let envelope = placed(&rental(bike));
        racing.spawn(async move { replica.apply(&envelope).await });
    }
    while let Some(done) = racing.join_next().await {
        done.unwrap();
    }
    let events = replicas[0].inventory_events().await;
    let held = events
        .iter()
        .filter(|event| matches!(event, CatalogEvent::TicketsReserved { .. }))
        .count();
    let in_use = events
        .iter()
        .filter_map(rejection)
        .filter(|reason| **reason == InventoryRejection::InUse)
        .count();
    assert_eq!((held, in_use), (1, 49), "{events:#?}");
    let live: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE listing_id = $1 AND status = 'held'")
            .bind(bike.to_string())
            .fetch_one(replicas[0].store.reader())
            .await
            .unwrap();
    assert_eq!(live, 1);
    assert_eq!(replicas[0].available(bike).await, 0);
}

#[tokio::test]
async fn fifty_customers_booking_one_bike_at_once_rent_it_once() {
    let catalog = Arc::new(Catalog::sqlite().await);
    fifty_customers_race_for_one_bike(&[catalog]).await;
}

#[tokio::test]
async fn racing_replicas_on_postgres_rent_a_bike_once() {
    let Some(url) = postgres("bike_race") else {
        return;
    };
    let one = Arc::new(Catalog::on(&url, None).await);
    let two = Arc::new(Catalog::on(&url, None).await);
    fifty_customers_race_for_one_bike(&[one, two]).await;
}

#[tokio::test]
async fn a_seat_map_change_that_would_drop_booked_seats_is_refused_naming_them() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.musical(10, 2, vec![]).await;
    let pending = booking(listing, &["J-1"]);
    let bought = booking(listing, &["J-2"]);
    catalog.apply(&placed(&pending)).await;
    catalog.apply(&placed(&bought)).await;
    catalog.apply(&confirmed(&bought)).await;

    let refused = catalog
        .listings
        .update(listing, seating(Some(9), None))
        .await
        .unwrap_err();
    assert!(matches!(refused, ChangeError::BookedSeats(_)), "{refused}");
    assert_eq!(
        refused.to_string(),
        "seats J-1, J-2 are booked and would be removed"
    );
    assert_eq!(catalog.listings.seat_map(listing).await.unwrap().len(), 20);
    assert!(!catalog
        .events()
        .await
        .iter()
        .any(|event| matches!(event, CatalogEvent::ListingUpdated { .. })));

    let grown = catalog
        .listings
        .update(listing, seating(Some(11), Some(vec![vip(&["A"])])))
        .await
        .unwrap();
    assert_eq!((grown.quota.total(), grown.quota.available()), (22, 20));
    assert_eq!(catalog.seat(listing, "K-2").await, SeatStatus::Available);
    assert_eq!(catalog.seat(listing, "J-2").await, SeatStatus::Sold);
    let Some(CatalogEvent::ListingUpdated {
        capacity:
            CapacityKind::Seated {
                total: 22,
                seats,
                sections,
            },
        ..
    }) = catalog.events().await.pop()
    else {
        panic!("a changed seat map is announced");
    };
    assert_eq!(seats.len(), 22);
    assert_eq!(labels_of(&sections[0].seats), "A-1, A-2");

    catalog.apply(&cancelled(&pending)).await;
    catalog.apply(&cancelled(&bought)).await;
    let shrunk = catalog
        .listings
        .update(listing, seating(Some(9), None))
        .await
        .unwrap();
    assert_eq!((shrunk.quota.total(), shrunk.quota.available()), (18, 18));
    assert_eq!(shrunk.sections[0].name(), "VIP");
    let map = catalog.listings.seat_map(listing).await.unwrap();
    assert_eq!(map.last().unwrap().0.to_string(), "I-2");
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM listing_seats WHERE listing_id = $1")
            .bind(listing.to_string())
            .fetch_one(catalog.store.reader())
            .await
            .unwrap();
    assert_eq!(stored, 18);
}

#[tokio::test]
async fn a_change_is_announced_in_full_and_an_invalid_one_changes_nothing() {
    let catalog = Catalog::sqlite().await;
    let bike = catalog.bike("red").await;
    let changed = catalog
        .listings
        .update(
            bike.id,
            ListingChangeDraft {
                color: Some("green".into()),
                price: Some(1_200),
                ..ListingChangeDraft::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.color.as_deref(), Some("green"));
    assert_eq!(changed.title, "Bike 1");
    assert_eq!(
        catalog.listings.find(bike.id).await.unwrap().unwrap(),
        changed
    );
    assert!(matches!(
        catalog.events().await.pop(),
        Some(CatalogEvent::ListingUpdated { capacity: CapacityKind::Unit, price, title, .. })
            if price == Money::parse(1_200).unwrap() && title == "Bike 1"
    ));

    let refused = catalog
        .listings
        .update(
            bike.id,
            ListingChangeDraft {
                title: Some("Renamed".into()),
                starts_at: Some(Some("2026-11-21T19:30:00Z".into())),
                ..ListingChangeDraft::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, ChangeError::Invalid(_)), "{refused}");
    assert_eq!(
        catalog.listings.find(bike.id).await.unwrap().unwrap(),
        changed
    );
    assert!(matches!(
        catalog
            .listings
            .update(ListingId::new(), ListingChangeDraft::default())
            .await,
        Err(ChangeError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_showing_moves_only_to_a_time_its_screen_is_free() {
    let catalog = Catalog::sqlite().await;
    let hall3 = |start: &str| ListingDraft {
        title: Some("Late show".into()),
        price: Some(1_000),
        seating: Some(SeatingDraft {
            rows: Some(6),
            seats_per_row: Some(8),
            ..SeatingDraft::default()
        }),
        starts_at: Some(start.to_owned()),
        ..ListingDraft::default()
    };
    let register = |draft| async {
        catalog
            .listings
            .register(NewListing::parse(draft).unwrap())
            .await
            .unwrap()
    };
    let early = register(hall3("2026-11-21T18:00:00Z")).await;
    let late = register(hall3("2026-11-21T22:00:00Z")).await;
    assert_eq!(early.screen, late.screen);
    let move_late = |start: &str| {
        catalog.listings.update(
            late.id,
            ListingChangeDraft {
                starts_at: Some(Some(start.to_owned())),
                ..ListingChangeDraft::default()
            },
        )
    };
    let busy = move_late("2026-11-21T19:00:00Z").await.unwrap_err();
    assert!(
        matches!(&busy, ChangeError::ScreenBusy(AssignmentError::Busy { listing, .. }) if *listing == early.id),
        "{busy}"
    );
    // Its own old time is no obstacle.
    move_late("2026-11-21T23:00:00Z").await.unwrap();
    // A withdrawn showing frees its screen.
    catalog.listings.withdraw(early.id, false).await.unwrap();
    let moved = move_late("2026-11-21T19:00:00Z").await.unwrap();
    assert_eq!(
        moved.starts_at,
        Some(time::macros::datetime!(2026-11-21 19:00 UTC))
    );
}

#[tokio::test]
async fn a_listing_with_live_bookings_is_withdrawn_only_with_them_cancelled() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.quota(10).await;
    let mut pending = booking(listing, &[]);
    pending.quantity = 4;
    let bought = booking(listing, &[]);
    let refused = booking(listing, &["A-1"]);
    catalog.apply(&placed(&pending)).await;
    catalog.apply(&placed(&bought)).await;
    catalog.apply(&confirmed(&bought)).await;
    catalog.apply(&placed(&refused)).await;

    let live = catalog.listings.withdraw(listing, false).await.unwrap_err();
    assert_eq!(
        live.to_string(),
        format!("listing {listing} has 2 live reservations; delete with ?cancelReservations=true to cancel and refund them")
    );
    assert!(catalog.listings.find(listing).await.unwrap().is_some());

    catalog.listings.withdraw(listing, true).await.unwrap();
    assert!(matches!(
        catalog.events().await.pop(),
        Some(CatalogEvent::ListingWithdrawn { listing_id, cancel_reservations: true, .. })
            if listing_id == listing
    ));
    assert!(catalog.listings.find(listing).await.unwrap().is_none());
    assert!(catalog.stored(listing).await.withdrawn_at.is_some());
    assert!(matches!(
        catalog.listings.withdraw(listing, true).await,
        Err(WithdrawError::NotFound(_))
    ));
    assert!(matches!(
        catalog
            .listings
            .update(
                listing,
                ListingChangeDraft {
                    title: Some("Back".into()),
                    ..ListingChangeDraft::default()
                }
            )
            .await,
        Err(ChangeError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_withdrawn_listing_refuses_new_bookings_but_gives_back_the_old_ones() {
    let catalog = Catalog::sqlite().await;
    let listing = catalog.showing().await;
    let held = booking(listing, &["A-1"]);
    let bought = booking(listing, &["A-2"]);
    catalog.apply(&placed(&held)).await;
    catalog.apply(&placed(&bought)).await;
    catalog.apply(&confirmed(&bought)).await;
    catalog.listings.withdraw(listing, true).await.unwrap();

    let late = booking(listing, &["A-3"]);
    catalog.apply(&placed(&late)).await;
    catalog.apply(&cancelled(&held)).await;
    catalog.apply(&cancelled(&bought)).await;
    let events = catalog.inventory_events().await;
    let n = events.len();
    assert!(
        matches!(
            &events[n - 3..],
            [
                CatalogEvent::InventoryRejected {
                    reason: InventoryRejection::Withdrawn,
                    ..
                },
                CatalogEvent::InventoryReleased { available: 47, .. },
                CatalogEvent::InventoryReleased { available: 48, .. },
            ]
        ),
        "{events:#?}"
    );
    assert_eq!(catalog.seat(listing, "A-2").await, SeatStatus::Available);
    assert_eq!(catalog.seat(listing, "A-3").await, SeatStatus::Available);
    // A listing nobody booked needs no cancelling.
    let unbooked = catalog.bike("red").await.id;
    catalog.listings.withdraw(unbooked, false).await.unwrap();
    catalog.apply(&placed(&rental(unbooked))).await;
    assert!(matches!(
        catalog.inventory_events().await.pop(),
        Some(CatalogEvent::InventoryRejected {
            reason: InventoryRejection::Withdrawn,
            ..
        })
    ));
}

#[tokio::test]
async fn listings_are_listed_by_kind_without_the_withdrawn_ones() {
    let catalog = Catalog::sqlite().await;
    let movie = catalog.quota(5).await;
    let musical = catalog.musical(2, 2, vec![]).await;
    let kept = catalog.bike("red").await.id;
    let gone = catalog.bike("blue").await.id;
    catalog.listings.withdraw(gone, false).await.unwrap();
    let listings = &catalog.listings;
    let ids = |kind| async move {
        listings
            .list(kind, None, 10)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(|listing| listing.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(None).await, [movie, musical, kept]);
    assert_eq!(ids(Some(ListingKind::Bike)).await, [kept]);
    assert_eq!(ids(Some(ListingKind::Musical)).await, [musical]);
    assert_eq!(ids(Some(ListingKind::Movie)).await, [movie]);
    // A page cannot continue from a withdrawn listing.
    assert!(catalog
        .listings
        .list(None, Some(gone), 10)
        .await
        .unwrap()
        .is_none());
}

/// One catalog's outcome of a scenario, its ids replaced by names: the
/// events it announced, what is left of each listing, each hold's status
/// and each claimed seat.
async fn outcome(catalog: &Catalog, names: &[(String, &str)]) -> Vec<String> {
    let name = |text: String| {
        names
            .iter()
            .fold(text, |text, (id, name)| text.replace(id.as_str(), name))
    };
    let mut seen: Vec<String> = catalog
        .inventory_events()
        .await
        .iter()
        .map(|event| name(format!("{event:?}")))
        .collect();
    let holds: Vec<(String, String)> =
        sqlx::query_as("SELECT reservation_id, status FROM holds ORDER BY reservation_id")
            .fetch_all(catalog.store.reader())
            .await
            .unwrap();
    let seats: Vec<(String, String, String)> =
        sqlx::query_as("SELECT seat, reservation_id, status FROM seat_holds ORDER BY seat")
            .fetch_all(catalog.store.reader())
            .await
            .unwrap();
    let mut rows: Vec<String> =
        holds
            .into_iter()
            .map(|(reservation, status)| name(format!("hold {reservation} {status}")))
            .chain(seats.into_iter().map(|(seat, reservation, status)| {
                name(format!("seat {seat} {reservation} {status}"))
            }))
            .collect();
    rows.sort();
    seen.extend(rows);
    seen
}

/// Tickets and seats held, refused, sold, given back and redelivered, on
/// `catalog`'s two new listings, applied one event at a time or all as one
/// consumer batch; the outcome with names for ids.
async fn inventory_scenario(catalog: &Catalog, as_one_batch: bool) -> Vec<String> {
    let quota = catalog.quota(3).await;
    let seated = catalog.showing().await;
    let with = |listing, quantity| Booking {
        quantity,
        ..booking(listing, &[])
    };
    let (a, b, c, d) = (
        with(quota, 2),
        with(quota, 2),
        with(quota, 1),
        with(quota, 1),
    );
    let (s1, s2, s3) = (
        booking(seated, &["A-1", "A-2"]),
        booking(seated, &["A-2"]),
        booking(seated, &["B-1"]),
    );
    let events = [
        placed(&a),
        placed(&b), // sold out: 1 left
        placed(&c),
        confirmed(&a),
        cancelled(&c), // gives 1 back
        placed(&d),
        placed(&a),  // a redelivery: nothing
        expired(&b), // refused earlier: nothing to give back
        confirmed(&d),
        placed(&s1),
        placed(&s2), // A-2 is taken
        placed(&s3),
        confirmed(&s1),
        cancelled(&s1), // a sold booking cancelled gives its seats back
        placed(&s2),    // a redelivery of a refusal: nothing new
        rejected(&s3),
    ];
    if as_one_batch {
        let batch: Vec<&Envelope> = events.iter().collect();
        let mut tx = catalog.store.begin().await.unwrap();
        catalog.policy.prepare(&mut tx, &batch).await.unwrap();
        catalog
            .policy
            .handle_batch(&mut tx, &batch, "catalog.inventory")
            .await
            .unwrap();
        catalog.store.commit(tx).await.unwrap();
    } else {
        for event in &events {
            catalog.apply(event).await;
        }
    }
    let names = [
        (quota.to_string(), "quota"),
        (seated.to_string(), "seated"),
        (a.reservation_id.to_string(), "a"),
        (b.reservation_id.to_string(), "b"),
        (c.reservation_id.to_string(), "c"),
        (d.reservation_id.to_string(), "d"),
        (s1.reservation_id.to_string(), "s1"),
        (s2.reservation_id.to_string(), "s2"),
        (s3.reservation_id.to_string(), "s3"),
    ];
    let mut seen = outcome(catalog, &names).await;
    seen.push(format!(
        "quota available {}",
        catalog.available(quota).await
    ));
    seen.push(format!(
        "seated available {}",
        catalog.available(seated).await
    ));
    seen
}

async fn a_batch_ends_where_one_event_at_a_time_ends(one_by_one: &Catalog, batched: &Catalog) {
    let expected = inventory_scenario(one_by_one, false).await;
    assert!(
        expected.contains(&"quota available 0".to_owned())
            && expected.contains(&"seated available 48".to_owned())
            && expected
                .iter()
                .any(|seen| seen.starts_with("InventoryRejected") && seen.contains("SeatTaken")),
        "the scenario holds, refuses, sells and gives back: {expected:#?}"
    );
    assert_eq!(inventory_scenario(batched, true).await, expected);
}

#[tokio::test]
async fn a_batch_of_reservation_events_ends_where_one_at_a_time_ends_on_sqlite() {
    a_batch_ends_where_one_event_at_a_time_ends(&Catalog::sqlite().await, &Catalog::sqlite().await)
        .await;
}

#[tokio::test]
async fn a_batch_of_reservation_events_ends_where_one_at_a_time_ends_on_postgres() {
    let (Some(one), Some(other)) = (postgres("one_by_one"), postgres("batched")) else {
        return;
    };
    a_batch_ends_where_one_event_at_a_time_ends(
        &Catalog::on(&one, None).await,
        &Catalog::on(&other, None).await,
    )
    .await;
}

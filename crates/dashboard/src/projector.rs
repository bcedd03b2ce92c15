//! The projector: catalog, reservation and wallet events applied to the
//! dashboard's view in the consumer's transaction. Events of other
//! families, and those that change nothing on the dashboard, are ignored.

use async_trait::async_trait;
use contracts::catalog::CatalogEvent;
use contracts::reservation::ReservationEvent;
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::{handling, EventHandler};
use runtime::store::Tx;

use time::OffsetDateTime;

use crate::projection::{self, Change};
use crate::store::DashboardView;

pub struct Projector {
    view: DashboardView,
}

impl Projector {
    pub fn new(view: DashboardView) -> Projector {
        Projector { view }
    }
}

/// Whether the dashboard reads events of this type.
fn reads(event: &Envelope) -> bool {
    let event_type = event.event_type.as_str();
    [
        CatalogEvent::TYPES,
        ReservationEvent::TYPES,
        WalletEvent::TYPES,
    ]
    .iter()
    .any(|types| types.contains(&event_type))
}

#[async_trait]
impl EventHandler for Projector {
    /// A batch with events the dashboard reads counts as one change.
    async fn prepare(&self, tx: &mut Tx, events: &[&Envelope]) -> anyhow::Result<()> {
        if events.iter().any(|event| reads(event)) {
            self.view.touch(tx, OffsetDateTime::now_utc()).await?;
        }
        Ok(())
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        let changes: Vec<Change> = change_of(event)?.into_iter().collect();
        self.view.apply_all(tx, &changes).await
    }

    /// The whole batch read, decided and written together (each touched
    /// row read once and written once); each event is read in its own span.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            let change = handling(group, event, || change_of(event))?;
            changes.extend(change);
        }
        self.view.apply_all(tx, &changes).await
    }
}

/// What `event` changes on the dashboard, if anything.
fn change_of(event: &Envelope) -> anyhow::Result<Option<Change>> {
    if let Some(reservation_event) = ReservationEvent::from_envelope(event)? {
        let version = event.subjectversion.unwrap_or(0);
        let row = projection::reservation_row(&reservation_event, version);
        let id = reservation_event.booking().reservation_id;
        return Ok(Some(Change::Reservation(id, row)));
    }
    if let Some(catalog_event) = CatalogEvent::from_envelope(event)? {
        if let Some(change) = projection::listing_change(&catalog_event) {
            return Ok(Some(Change::Listing(change)));
        }
        return Ok(projection::inventory_move(&catalog_event).map(Change::Inventory));
    }
    if let Some(wallet_event) = WalletEvent::from_envelope(event)? {
        return Ok(projection::points_fact(&wallet_event).map(Change::Points));
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    /// `contracts/consumers/dashboard.json` states what the projector reads
    /// from each event, checked against the producers' schemas by the
    /// contracts crate; it must name every event the projector reads.
    #[test]
    fn its_published_expectations_name_every_event_it_reads() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../contracts/consumers/dashboard.json"
        ))
        .unwrap();
        let read: std::collections::BTreeSet<&str> = [
            CatalogEvent::TYPES,
            ReservationEvent::TYPES,
            WalletEvent::TYPES,
        ]
        .concat()
        .into_iter()
        .collect();
        assert_eq!(expectations.event_types(), read);
    }

    use contracts::catalog::{CapacityKind, InventoryRejection, ListingKind};
    use contracts::reservation::{Booking, PaymentMethod};
    use kernel::ids::{ListingId, PaymentId, ReservationId, UserId};
    use kernel::Money;
    use runtime::store::sqlite_url;
    use runtime::Store;
    use serde_json::{json, Value};
    use time::macros::datetime;

    use super::*;
    use crate::store::MIGRATIONS;

    pub(crate) struct Given {
        _dir: tempfile::TempDir,
        pub store: Store,
        pub view: DashboardView,
        projector: Projector,
    }

    pub(crate) async fn given() -> Given {
        let dir = tempfile::tempdir().unwrap();
        given_on(&sqlite_url(dir.path(), "dashboard"), dir).await
    }

    async fn given_on(url: &str, dir: tempfile::TempDir) -> Given {
        let store = Store::connect(url, MIGRATIONS).await.unwrap();
        let view = DashboardView::new(store.clone());
        Given {
            _dir: dir,
            projector: Projector::new(view.clone()),
            view,
            store,
        }
    }

    fn at(day: u8) -> OffsetDateTime {
        datetime!(2026-11-01 10:00 UTC).replace_day(day).unwrap()
    }

    /// A movie of `tickets` at 12000 a ticket.
    pub(crate) fn movie(tickets: u32) -> (ListingId, Envelope) {
        let id = ListingId::new();
        let event = CatalogEvent::ListingRegistered {
            listing_id: id,
            kind: ListingKind::Movie,
            title: "LALALand".into(),
            description: String::new(),
            price: Money::parse(12_000).unwrap(),
            capacity: CapacityKind::Quota { total: tickets },
            starts_at: None,
            color: None,
            number: None,
            registered_at: at(1),
        };
        (id, event.to_envelope())
    }

    /// One booking of `quantity` tickets and the events of its life.
    pub(crate) struct Booked {
        pub booking: Booking,
    }

    impl Booked {
        pub(crate) fn new(listing: ListingId, quantity: u32, method: PaymentMethod) -> Booked {
            Booked {
                booking: Booking {
                    reservation_id: ReservationId::new(),
                    user_id: UserId::new(),
                    listing_id: listing,
                    listing_title: "LALALand".into(),
                    listing_kind: ListingKind::Movie,
                    quantity,
                    seats: Vec::new(),
                    amount: Money::parse(12_000 * i64::from(quantity)).unwrap(),
                    payment_method: method,
                },
            }
        }

        pub(crate) fn placed(&self) -> Envelope {
            ReservationEvent::ReservationPlaced {
                booking: self.booking.clone(),
                placed_at: at(2),
            }
            .to_envelope()
            .at_version(1)
        }

        pub(crate) fn confirmed(&self) -> Envelope {
            ReservationEvent::ReservationConfirmed {
                booking: self.booking.clone(),
                confirmed_at: at(2),
            }
            .to_envelope()
            .at_version(2)
        }

        fn cancelled(&self) -> Envelope {
            ReservationEvent::ReservationCancelled {
                booking: self.booking.clone(),
                cancelled_at: at(3),
            }
            .to_envelope()
            .at_version(3)
        }

        fn returned(&self) -> Envelope {
            ReservationEvent::ReservationReturned {
                booking: self.booking.clone(),
                returned_at: at(3),
            }
            .to_envelope()
            .at_version(3)
        }

        fn expired(&self) -> Envelope {
            ReservationEvent::ReservationExpired {
                booking: self.booking.clone(),
                reason: "nobody answered".into(),
                expired_at: at(3),
            }
            .to_envelope()
            .at_version(2)
        }

        pub(crate) fn reserved(&self) -> Envelope {
            CatalogEvent::TicketsReserved {
                reservation_id: self.booking.reservation_id,
                listing_id: self.booking.listing_id,
                quantity: self.booking.quantity,
                seats: Vec::new(),
                available: 0,
            }
            .to_envelope()
        }

        pub(crate) fn sold(&self) -> Envelope {
            CatalogEvent::InventorySold {
                reservation_id: self.booking.reservation_id,
                listing_id: self.booking.listing_id,
                quantity: self.booking.quantity,
                seats: Vec::new(),
            }
            .to_envelope()
        }

        fn released(&self) -> Envelope {
            CatalogEvent::InventoryReleased {
                reservation_id: self.booking.reservation_id,
                listing_id: self.booking.listing_id,
                quantity: self.booking.quantity,
                seats: Vec::new(),
                available: 0,
            }
            .to_envelope()
        }

        fn refused(&self) -> Envelope {
            CatalogEvent::InventoryRejected {
                reservation_id: self.booking.reservation_id,
                listing_id: self.booking.listing_id,
                reason: InventoryRejection::SoldOut {
                    requested: self.booking.quantity,
                    remaining: 0,
                },
            }
            .to_envelope()
        }
    }

    impl Given {
        /// Delivers one event as the consumer does: a batch of one.
        pub(crate) async fn deliver(&self, event: &Envelope) {
            let mut tx = self.store.begin().await.unwrap();
            self.projector.prepare(&mut tx, &[event]).await.unwrap();
            self.projector.handle(&mut tx, event).await.unwrap();
            self.store.commit(tx).await.unwrap();
        }

        /// Every event in one batch, as the consumer applies what it took
        /// from the bus at once.
        async fn deliver_all(&self, events: &[Envelope]) {
            let events: Vec<&Envelope> = events.iter().collect();
            let mut tx = self.store.begin().await.unwrap();
            self.projector.prepare(&mut tx, &events).await.unwrap();
            self.projector
                .handle_batch(&mut tx, &events, "dashboard")
                .await
                .unwrap();
            self.store.commit(tx).await.unwrap();
        }

        /// The events one by one, each its own batch.
        async fn deliver_each(&self, events: &[Envelope]) {
            for event in events {
                self.deliver(event).await;
            }
        }

        async fn dashboard(&self) -> Value {
            serde_json::to_value(self.view.dashboard().await.unwrap()).unwrap()
        }

        async fn listing(&self, id: ListingId) -> Value {
            let dashboard = self.dashboard().await;
            dashboard["listings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|listing| listing["id"] == id.to_string())
                .cloned()
                .unwrap_or(Value::Null)
        }
    }

    fn counts(listing: &Value) -> (u64, u64, u64, u64) {
        let n = |field: &str| listing[field].as_u64().unwrap();
        (n("total"), n("held"), n("sold"), n("available"))
    }

    #[tokio::test]
    async fn a_booking_is_held_sold_and_given_back_and_counted_in_its_latest_status() {
        let given = given().await;
        let (listing, registered) = movie(100);
        let booked = Booked::new(listing, 45, PaymentMethod::Card);
        given
            .deliver_all(&[registered, booked.placed(), booked.reserved()])
            .await;
        assert_eq!(counts(&given.listing(listing).await), (100, 45, 0, 55));
        assert_eq!(given.dashboard().await["reservations"]["pending"], 1);

        given
            .deliver_all(&[booked.confirmed(), booked.sold()])
            .await;
        let dashboard = given.dashboard().await;
        assert_eq!(counts(&given.listing(listing).await), (100, 0, 45, 55));
        assert_eq!(
            dashboard["reservations"],
            json!({"pending": 0, "confirmed": 1, "rejected": 0, "cancelled": 0, "returned": 0})
        );
        assert_eq!(dashboard["revenue"], json!({"card": 540_000, "points": 0}));
        assert_eq!(dashboard["listings"][0]["title"], "LALALand");
        assert_eq!(dashboard["listings"][0]["kind"], "movie");
        assert!(dashboard["listings"][0].get("inUse").is_none());

        given
            .deliver_all(&[booked.cancelled(), booked.released()])
            .await;
        let dashboard = given.dashboard().await;
        assert_eq!(counts(&given.listing(listing).await), (100, 0, 0, 100));
        assert_eq!(dashboard["reservations"]["cancelled"], 1);
        assert_eq!(dashboard["reservations"]["confirmed"], 0);
        assert_eq!(dashboard["revenue"], json!({"card": 0, "points": 0}));
    }

    #[tokio::test]
    async fn events_repeated_late_or_backwards_are_counted_once_in_their_latest_state() {
        let given = given().await;
        let (listing, registered) = movie(10);
        let first = Booked::new(listing, 3, PaymentMethod::Card);
        let second = Booked::new(listing, 2, PaymentMethod::Points);
        let third = Booked::new(listing, 4, PaymentMethod::Card);
        // Each `…()` is a new envelope: the inbox cannot tell them apart,
        // the rules must.
        given
            .deliver_all(&[
                first.sold(),
                first.reserved(),
                first.sold(),
                first.confirmed(),
                first.placed(),
                first.confirmed(),
                registered,
                second.reserved(),
                second.released(),
                second.reserved(),
                second.expired(),
                second.placed(),
                third.refused(),
                third.placed(),
                third.reserved(),
            ])
            .await;
        let dashboard = given.dashboard().await;
        assert_eq!(counts(&given.listing(listing).await), (10, 0, 3, 7));
        assert_eq!(
            dashboard["reservations"],
            json!({"pending": 1, "confirmed": 1, "rejected": 1, "cancelled": 0, "returned": 0})
        );
        assert_eq!(dashboard["revenue"], json!({"card": 36_000, "points": 0}));
    }

    #[tokio::test]
    async fn returned_rentals_stay_revenue_and_bookings_paid_with_points_count_as_points() {
        let given = given().await;
        let (listing, registered) = movie(10);
        let rental = Booked::new(listing, 1, PaymentMethod::Card);
        let with_points = Booked::new(listing, 2, PaymentMethod::Points);
        given
            .deliver_all(&[
                registered,
                rental.placed(),
                rental.confirmed(),
                rental.returned(),
                with_points.placed(),
                with_points.confirmed(),
            ])
            .await;
        let dashboard = given.dashboard().await;
        assert_eq!(dashboard["reservations"]["returned"], 1);
        assert_eq!(dashboard["reservations"]["confirmed"], 1);
        assert_eq!(
            dashboard["revenue"],
            json!({"card": 12_000, "points": 24_000})
        );
    }

    #[tokio::test]
    async fn a_bike_is_in_use_while_rented_and_a_withdrawn_listing_leaves_the_list() {
        let given = given().await;
        let bike = ListingId::new();
        let registered = CatalogEvent::ListingRegistered {
            listing_id: bike,
            kind: ListingKind::Bike,
            title: "Bike 7".into(),
            description: String::new(),
            price: Money::parse(1_000).unwrap(),
            capacity: CapacityKind::Unit,
            starts_at: None,
            color: Some("red".into()),
            number: Some(7),
            registered_at: at(1),
        };
        let rental = Booked::new(bike, 1, PaymentMethod::Card);
        given
            .deliver_all(&[registered.to_envelope(), rental.reserved(), rental.sold()])
            .await;
        let shown = given.listing(bike).await;
        assert_eq!(counts(&shown), (1, 0, 1, 0));
        assert_eq!(shown["inUse"], true);

        given.deliver(&rental.released()).await;
        let shown = given.listing(bike).await;
        assert_eq!(
            (shown["inUse"].clone(), shown["available"].clone()),
            (json!(false), json!(1))
        );

        let renamed = CatalogEvent::ListingUpdated {
            listing_id: bike,
            title: "Bike 7 (blue)".into(),
            description: String::new(),
            price: Money::parse(1_000).unwrap(),
            capacity: CapacityKind::Unit,
            starts_at: None,
            color: Some("blue".into()),
            updated_at: at(4),
        };
        given.deliver(&renamed.to_envelope()).await;
        assert_eq!(given.listing(bike).await["title"], "Bike 7 (blue)");

        let withdrawn = CatalogEvent::ListingWithdrawn {
            listing_id: bike,
            cancel_reservations: false,
            withdrawn_at: at(5),
        };
        given.deliver(&withdrawn.to_envelope()).await;
        given.deliver(&registered.to_envelope()).await;
        assert_eq!(given.listing(bike).await, Value::Null);
        assert_eq!(given.dashboard().await["listings"], json!([]));
    }

    #[tokio::test]
    async fn points_issued_and_spent_count_each_movement_once() {
        let given = given().await;
        let user_id = UserId::new();
        let reservation_id = ReservationId::new();
        let events = [
            WalletEvent::PointsPurchased {
                user_id,
                payment_id: PaymentId::new(),
                points: 10_000,
                balance: 10_000,
                purchased_at: at(1),
            },
            WalletEvent::PointsEarned {
                user_id,
                reservation_id: ReservationId::new(),
                points: 540,
                balance: 10_540,
                earned_at: at(2),
            },
            WalletEvent::PointsSpent {
                user_id,
                reservation_id,
                points: 3_000,
                balance: 7_540,
                spent_at: at(2),
            },
            WalletEvent::PointsRefused {
                user_id,
                reservation_id: ReservationId::new(),
                points: 50_000,
                balance: 7_540,
                reason: "not enough points".into(),
                refused_at: at(2),
            },
            WalletEvent::PointsRefunded {
                user_id,
                reservation_id,
                points: 3_000,
                balance: 10_540,
                refunded_at: at(3),
            },
        ];
        for event in events.iter().chain(events.iter()) {
            given.deliver(&event.to_envelope()).await;
        }
        assert_eq!(
            given.dashboard().await["points"],
            json!({"issued": 10_540, "spent": 0})
        );
    }

    #[tokio::test]
    async fn the_change_count_moves_with_the_events_the_dashboard_reads() {
        let given = given().await;
        assert_eq!(given.view.changes().await.unwrap(), 0);
        assert_eq!(given.dashboard().await["updatedAt"], Value::Null);
        let (_, registered) = movie(10);
        given.deliver(&registered).await;
        assert_eq!(given.view.changes().await.unwrap(), 1);
        assert!(given.dashboard().await["updatedAt"].is_string());
        // A payment event is not one of the dashboard's.
        let payment = contracts::payment::PaymentEvent::PaymentVoided {
            charge: contracts::payment::Charge {
                payment_id: PaymentId::new(),
                user_id: UserId::new(),
                amount: Money::parse(1).unwrap(),
                reservation_id: None,
            },
            voided_at: at(1),
        };
        given.deliver(&payment.to_envelope()).await;
        assert_eq!(given.view.changes().await.unwrap(), 1);
    }

    /// The same view on PostgreSQL, when `BOXOFFICE_TEST_POSTGRES` names a
    /// server: the statements, the sums and the row locks of both engines.
    #[tokio::test]
    async fn the_view_reads_the_same_on_postgres() {
        let Some(server) = std::env::var("BOXOFFICE_TEST_POSTGRES").ok() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs this test: set BOXOFFICE_TEST_POSTGRES"
            );
            return;
        };
        // One by one, and all in one batch (duplicates and late events in
        // it: one statement must not write a row twice on PostgreSQL).
        for batched in [false, true] {
            let database = format!("dashboard_{}", ReservationId::new().as_uuid().simple());
            let url = format!("{}/{database}", server.trim_end_matches('/'));
            let given = given_on(&url, tempfile::tempdir().unwrap()).await;
            let (listing, registered) = movie(10);
            let kept = Booked::new(listing, 3, PaymentMethod::Card);
            let with_points = Booked::new(listing, 2, PaymentMethod::Points);
            let dropped = Booked::new(listing, 4, PaymentMethod::Card);
            let spent = WalletEvent::PointsSpent {
                user_id: with_points.booking.user_id,
                reservation_id: with_points.booking.reservation_id,
                points: 24_000,
                balance: 0,
                spent_at: at(2),
            };
            let events = [
                kept.sold(),
                registered,
                kept.reserved(),
                kept.confirmed(),
                kept.placed(),
                with_points.placed(),
                with_points.reserved(),
                with_points.sold(),
                with_points.confirmed(),
                spent.to_envelope(),
                spent.to_envelope(),
                dropped.placed(),
                dropped.reserved(),
                dropped.sold(),
                dropped.confirmed(),
                dropped.cancelled(),
                dropped.released(),
                dropped.confirmed(),
            ];
            if batched {
                given.deliver_all(&events).await;
            } else {
                given.deliver_each(&events).await;
            }
            let dashboard = given.dashboard().await;
            assert_eq!(
                counts(&given.listing(listing).await),
                (10, 0, 5, 5),
                "batched: {batched}"
            );
            assert_eq!(
                dashboard["reservations"],
                json!({"pending": 0, "confirmed": 2, "rejected": 0, "cancelled": 1, "returned": 0})
            );
            assert_eq!(
                dashboard["revenue"],
                json!({"card": 36_000, "points": 24_000})
            );
            assert_eq!(dashboard["points"], json!({"issued": 0, "spent": 24_000}));
            let batches = if batched { 1 } else { 18 };
            assert_eq!(given.view.changes().await.unwrap(), batches);
            given.store.close().await;
        }
    }
}

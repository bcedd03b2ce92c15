//! The projector: every event my-page reads, applied to its view in the
//! consumer's transaction. Events of a family it does not read, and the
//! events of its families that show nothing, change nothing.

use async_trait::async_trait;
use contracts::catalog::CatalogEvent;
use contracts::payment::PaymentEvent;
use contracts::reservation::ReservationEvent;
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::{handling, EventHandler};

use crate::projection::{self, Change, Changes};
use crate::view::Projection;

/// Applies events to the view through its port, whichever store holds it.
pub struct Projector<V> {
    view: V,
}

impl<V> Projector<V> {
    pub fn new(view: V) -> Projector<V> {
        Projector { view }
    }
}

/// The events this handler acts on (bookings, their payments and points, and the listing facts shown with them); the others pass it by.
const SHOWN: &[&str] = &[
    "boxoffice.reservation.placed",
    "boxoffice.reservation.confirmed",
    "boxoffice.reservation.rejected",
    "boxoffice.reservation.expired",
    "boxoffice.reservation.cancelled",
    "boxoffice.reservation.returned",
    "boxoffice.payment.authorised",
    "boxoffice.payment.declined",
    "boxoffice.payment.captured",
    "boxoffice.payment.voided",
    "boxoffice.payment.refunded",
    "boxoffice.wallet.points-earned",
    "boxoffice.wallet.points-withdrawn",
    "boxoffice.wallet.points-spent",
    "boxoffice.wallet.points-refunded",
    "boxoffice.catalog.listing-registered",
    "boxoffice.catalog.listing-updated",
    "boxoffice.catalog.screen-assigned",
];

/// What `event` changes on my-page, if anything.
fn change_of(event: &Envelope) -> anyhow::Result<Option<Change>> {
    if let Some(reservation_event) = ReservationEvent::from_envelope(event)? {
        let version = event.subjectversion.unwrap_or(0);
        return Ok(Some(Change::Row(projection::project(
            &reservation_event,
            version,
        ))));
    }
    if let Some(payment_event) = PaymentEvent::from_envelope(event)? {
        return Ok(projection::payment_step(&payment_event).map(Change::Payment));
    }
    if let Some(wallet_event) = WalletEvent::from_envelope(event)? {
        return Ok(projection::points_change(&wallet_event).map(Change::Points));
    }
    if let Some(catalog_event) = CatalogEvent::from_envelope(event)? {
        return Ok(projection::listing_fact(&catalog_event).map(Change::Listing));
    }
    Ok(None)
}

#[async_trait]
impl<V: Projection> EventHandler<V::Tx> for Projector<V> {
    fn wants(&self, event: &Envelope) -> bool {
        SHOWN.contains(&event.event_type.as_str())
    }

    async fn handle(&self, tx: &mut V::Tx, event: &Envelope) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        if let Some(change) = change_of(event)? {
            changes.push(change);
        }
        self.view.apply_all(tx, &changes).await
    }

    /// The whole batch's changes gathered and written together (one
    /// statement per table on SQL); each event is read in its own span.
    async fn handle_batch(
        &self,
        tx: &mut V::Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut changes = Changes::default();
        for event in events {
            let change = handling(group, event, || change_of(event))?;
            if let Some(change) = change {
                changes.push(change);
            }
        }
        self.view.apply_all(tx, &changes).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::SHOWN {
            assert!(contracts::is_published_type(event_type), "{event_type}");
        }
    }

    /// `contracts/consumers/mypage.json` states what this context reads
    /// from each event it wants, checked against the producers' schemas
    /// by the contracts crate; it must name exactly these events.
    #[test]
    fn its_published_expectations_name_exactly_the_events_it_wants() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../contracts/consumers/mypage.json"
        ))
        .unwrap();
        let named: std::collections::BTreeSet<&str> =
            expectations.event_types().into_iter().collect();
        assert_eq!(named, super::SHOWN.iter().copied().collect());
    }

    use std::sync::Arc;

    use contracts::catalog::{CapacityKind, ListingKind};
    use contracts::payment::Charge;
    use contracts::reservation::{Booking, PaymentMethod};
    use kernel::ids::{ListingId, PaymentId, ReservationId, ScreenId, UserId};
    use kernel::Money;
    use kv::KvStore;
    use runtime::consumer::UnitOfWork;
    use runtime::store::sqlite_url;
    use runtime::Store;
    use time::macros::datetime;
    use time::OffsetDateTime;

    use super::*;
    use crate::kv_view::KvReservations;
    use crate::store::{MyReservations, MIGRATIONS};
    use crate::view::View;

    /// Delivers an event as the consumer would: in a unit of work of the
    /// store, committed.
    #[async_trait]
    pub(crate) trait Deliver: Send + Sync {
        async fn deliver(&self, event: &Envelope);

        /// Every event in one batch, as a consumer applies what it took
        /// from the bus at once.
        async fn deliver_batch(&self, events: &[Envelope]);
    }

    struct Through<S: UnitOfWork, V> {
        store: S,
        projector: Projector<V>,
    }

    #[async_trait]
    impl<S: UnitOfWork, V: Projection<Tx = S::Tx>> Deliver for Through<S, V> {
        async fn deliver(&self, event: &Envelope) {
            let mut tx = self.store.begin().await.unwrap();
            self.projector.handle(&mut tx, event).await.unwrap();
            self.store.commit(tx).await.unwrap();
        }

        async fn deliver_batch(&self, events: &[Envelope]) {
            let events: Vec<&Envelope> = events.iter().collect();
            let mut tx = self.store.begin().await.unwrap();
            self.projector
                .handle_batch(&mut tx, &events, "mypage")
                .await
                .unwrap();
            self.store.commit(tx).await.unwrap();
        }
    }

    /// The stores my-page can be kept in; every test of the projection
    /// runs on each of them.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Kept {
        Sql,
        Postgres,
        Redb,
        Redis,
    }

    /// The stores to test on: PostgreSQL when `BOXOFFICE_TEST_POSTGRES`
    /// names a server and Redis when `BOXOFFICE_TEST_REDIS` does (both
    /// required under `CI=true`).
    pub(crate) fn stores(test: &str) -> Vec<Kept> {
        let mut kept = vec![Kept::Sql, Kept::Redb];
        if postgres_for_tests().is_some() {
            kept.push(Kept::Postgres);
        }
        if kv::redis_for_tests(test).is_some() {
            kept.push(Kept::Redis);
        }
        kept
    }

    fn postgres_for_tests() -> Option<String> {
        let server = std::env::var("BOXOFFICE_TEST_POSTGRES").ok();
        assert!(
            server.is_some() || std::env::var_os("CI").is_none(),
            "CI runs my-page's tests on PostgreSQL too: set BOXOFFICE_TEST_POSTGRES"
        );
        server
    }

    pub(crate) struct Given {
        _dir: tempfile::TempDir,
        pub view: Arc<dyn View>,
        through: Box<dyn Deliver>,
        pub booking: Booking,
        pub screen: ScreenId,
    }

    pub(crate) async fn given() -> Given {
        given_in(Kept::Sql).await
    }

    pub(crate) async fn given_in(kept: Kept) -> Given {
        eprintln!("on {kept:?}");
        let dir = tempfile::tempdir().unwrap();
        let (view, through): (Arc<dyn View>, Box<dyn Deliver>) = match kept {
            Kept::Sql | Kept::Postgres => {
                let url = match kept {
                    Kept::Postgres => format!(
                        "{}/mypage_{}",
                        postgres_for_tests().unwrap().trim_end_matches('/'),
                        ReservationId::new().as_uuid().simple()
                    ),
                    _ => sqlite_url(dir.path(), "mypage"),
                };
                let store = Store::connect(&url, MIGRATIONS).await.unwrap();
                let view = MyReservations::new(store.clone());
                (
                    Arc::new(view.clone()),
                    Box::new(Through {
                        store,
                        projector: Projector::new(view),
                    }),
                )
            }
            Kept::Redb | Kept::Redis => {
                let url = match kept {
                    Kept::Redis => kv::redis_for_tests("mypage").unwrap(),
                    _ => format!("redb://{}", dir.path().join("mypage.redb").display()),
                };
                let namespace = format!("mypage-test-{}", ReservationId::new());
                let store = KvStore::connect(&url, &namespace).await.unwrap();
                let view = KvReservations::new(store.clone());
                (
                    Arc::new(view.clone()),
                    Box::new(Through {
                        store,
                        projector: Projector::new(view),
                    }),
                )
            }
        };
        Given {
            _dir: dir,
            view,
            through,
            booking: Booking {
                reservation_id: ReservationId::new(),
                user_id: UserId::new(),
                listing_id: ListingId::new(),
                listing_title: "LALALand".into(),
                listing_kind: ListingKind::Movie,
                quantity: 2,
                seats: vec!["A-1".parse().unwrap(), "A-2".parse().unwrap()],
                amount: Money::parse(15_000).unwrap(),
                payment_method: PaymentMethod::Card,
            },
            screen: ScreenId::new(),
        }
    }

    fn at(day: u8) -> OffsetDateTime {
        datetime!(2026-11-01 10:00 UTC).replace_day(day).unwrap()
    }

    impl Given {
        pub async fn deliver(&self, event: &Envelope) {
            self.through.deliver(event).await;
        }

        /// The events one by one, or all in one batch.
        pub async fn deliver_all(&self, events: &[Envelope], batched: bool) {
            if batched {
                self.through.deliver_batch(events).await;
            } else {
                for event in events {
                    self.deliver(event).await;
                }
            }
        }

        pub fn placed(&self) -> Envelope {
            ReservationEvent::ReservationPlaced {
                booking: self.booking.clone(),
                placed_at: at(1),
            }
            .to_envelope()
            .at_version(1)
        }

        pub fn confirmed(&self) -> Envelope {
            ReservationEvent::ReservationConfirmed {
                booking: self.booking.clone(),
                confirmed_at: at(2),
            }
            .to_envelope()
            .at_version(2)
        }

        pub fn cancelled(&self) -> Envelope {
            ReservationEvent::ReservationCancelled {
                booking: self.booking.clone(),
                cancelled_at: at(3),
            }
            .to_envelope()
            .at_version(3)
        }

        fn charge(&self) -> Charge {
            Charge {
                payment_id: PaymentId::new(),
                user_id: self.booking.user_id,
                amount: self.booking.amount,
                reservation_id: Some(self.booking.reservation_id),
            }
        }

        pub fn authorised(&self) -> Envelope {
            PaymentEvent::PaymentAuthorised {
                charge: self.charge(),
                authorised_at: at(1),
            }
            .to_envelope()
        }

        pub fn captured(&self) -> Envelope {
            PaymentEvent::PaymentCaptured {
                charge: self.charge(),
                captured_at: at(2),
            }
            .to_envelope()
        }

        pub fn refunded(&self) -> Envelope {
            PaymentEvent::PaymentRefunded {
                charge: self.charge(),
                refunded_at: at(3),
            }
            .to_envelope()
        }

        pub fn earned(&self) -> Envelope {
            WalletEvent::PointsEarned {
                user_id: self.booking.user_id,
                reservation_id: self.booking.reservation_id,
                points: 1_500,
                balance: 1_500,
                earned_at: at(2),
            }
            .to_envelope()
        }

        pub fn withdrawn(&self) -> Envelope {
            WalletEvent::PointsWithdrawn {
                user_id: self.booking.user_id,
                reservation_id: self.booking.reservation_id,
                points: 1_000,
                shortfall: 500,
                balance: 0,
                withdrawn_at: at(3),
            }
            .to_envelope()
        }

        fn seat_map(&self) -> CapacityKind {
            CapacityKind::Seated {
                total: 2,
                seats: self.booking.seats.clone(),
                sections: Vec::new(),
            }
        }

        pub fn registered(&self) -> Envelope {
            CatalogEvent::ListingRegistered {
                listing_id: self.booking.listing_id,
                kind: ListingKind::Movie,
                title: "LALALand".into(),
                description: String::new(),
                price: Money::parse(7_500).unwrap(),
                capacity: self.seat_map(),
                starts_at: Some(datetime!(2026-12-24 19:30 UTC)),
                color: None,
                number: None,
                registered_at: at(1),
            }
            .to_envelope()
        }

        pub fn renamed(&self, title: &str) -> Envelope {
            CatalogEvent::ListingUpdated {
                listing_id: self.booking.listing_id,
                title: title.into(),
                description: String::new(),
                price: Money::parse(7_500).unwrap(),
                capacity: self.seat_map(),
                starts_at: Some(datetime!(2026-12-25 19:30 UTC)),
                color: None,
                updated_at: at(4),
            }
            .to_envelope()
        }

        pub fn spent(&self) -> Envelope {
            WalletEvent::PointsSpent {
                user_id: self.booking.user_id,
                reservation_id: self.booking.reservation_id,
                points: 15_000,
                balance: 0,
                spent_at: at(1),
            }
            .to_envelope()
        }

        pub fn screen_assigned(&self) -> Envelope {
            CatalogEvent::ScreenAssigned {
                listing_id: self.booking.listing_id,
                screen_id: self.screen,
                screen_name: "Hall 1".into(),
            }
            .to_envelope()
        }

        async fn detail(&self) -> serde_json::Value {
            let detail = self
                .view
                .find(self.booking.reservation_id, None)
                .await
                .unwrap()
                .unwrap();
            serde_json::to_value(detail).unwrap()
        }
    }

    #[tokio::test]
    async fn a_booking_shows_its_listing_payment_points_and_history() {
        let batched_or_not = stores("a_booking_shows_its_listing_payment_points_and_history")
            .into_iter()
            .flat_map(|kept| [(kept, false), (kept, true)]);
        for (kept, batched) in batched_or_not {
            eprintln!("batched: {batched}");
            let given = given_in(kept).await;
            let events = [
                given.registered(),
                given.screen_assigned(),
                given.placed(),
                given.authorised(),
                given.confirmed(),
                given.captured(),
                given.earned(),
            ];
            given.deliver_all(&events, batched).await;

            let detail = given.detail().await;
            assert_eq!(detail["status"], "confirmed");
            assert_eq!(detail["seats"], serde_json::json!(["A-1", "A-2"]));
            assert_eq!(detail["paymentMethod"], "card");
            assert_eq!(
                detail["screen"],
                serde_json::json!({"id": given.screen.to_string(), "name": "Hall 1"})
            );
            assert_eq!(detail["startsAt"], "2026-12-24T19:30:00.000000Z");
            assert_eq!(detail["payment"], serde_json::json!({"status": "captured"}));
            assert_eq!(
                detail["points"],
                serde_json::json!({"earned": 1_500, "withdrawn": 0, "spent": 0, "refunded": 0})
            );
            assert_eq!(
                detail["history"],
                serde_json::json!([
                    {"status": "pending", "at": "2026-11-01T10:00:00.000000Z"},
                    {"status": "confirmed", "at": "2026-11-02T10:00:00.000000Z"},
                ])
            );
        }
    }

    #[tokio::test]
    async fn events_arriving_late_redelivered_or_before_the_booking_are_neither_lost_nor_repeated()
    {
        let batched_or_not = stores(
            "events_arriving_late_redelivered_or_before_the_booking_are_neither_lost_nor_repeated",
        )
        .into_iter()
        .flat_map(|kept| [(kept, false), (kept, true)]);
        for (kept, batched) in batched_or_not {
            eprintln!("batched: {batched}");
            let given = given_in(kept).await;
            // Payment, points and listing facts before the booking is known;
            // then the booking's own events backwards, and some twice (in
            // one batch too: a store must not write a row twice in one
            // statement).
            let events = [
                given.refunded(),
                given.withdrawn(),
                given.earned(),
                given.captured(),
                given.screen_assigned(),
                given.cancelled(),
                given.confirmed(),
                given.authorised(),
                given.placed(),
                given.confirmed(),
                given.registered(),
                given.withdrawn(),
                given.refunded(),
            ];
            given.deliver_all(&events, batched).await;
            let redelivered = given.cancelled();
            given.deliver(&redelivered).await;
            given.deliver(&redelivered).await;

            let detail = given.detail().await;
            assert_eq!(detail["status"], "cancelled");
            assert_eq!(detail["payment"], serde_json::json!({"status": "refunded"}));
            assert_eq!(
                detail["points"],
                serde_json::json!({"earned": 1_500, "withdrawn": 1_000, "spent": 0, "refunded": 0})
            );
            assert_eq!(detail["screen"]["name"], "Hall 1");
            assert_eq!(detail["startsAt"], "2026-12-24T19:30:00.000000Z");
            let statuses: Vec<&str> = detail["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| entry["status"].as_str().unwrap())
                .collect();
            assert_eq!(statuses, ["pending", "confirmed", "cancelled"]);
        }
    }

    #[tokio::test]
    async fn a_renamed_listing_shows_its_new_title_on_bookings_old_and_new() {
        for kept in stores("a_renamed_listing_shows_its_new_title_on_bookings_old_and_new") {
            let given = given_in(kept).await;
            for event in [given.registered(), given.placed(), given.spent()] {
                given.deliver(&event).await;
            }
            given.deliver(&given.renamed("LALALand (sing-along)")).await;
            // A booking event still naming the old title does not undo it.
            given.deliver(&given.confirmed()).await;

            let detail = given.detail().await;
            assert_eq!(detail["title"], "LALALand (sing-along)");
            assert_eq!(detail["startsAt"], "2026-12-25T19:30:00.000000Z");
            assert_eq!(detail["points"]["spent"], 15_000);
            let mine = given
                .view
                .for_user(&given.booking.user_id.to_string(), None, 10)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(mine[0].title, "LALALand (sing-along)");
        }
    }

    #[tokio::test]
    async fn a_booking_without_payment_or_listing_facts_shows_none() {
        for kept in stores("a_booking_without_payment_or_listing_facts_shows_none") {
            let given = given_in(kept).await;
            given.deliver(&given.placed()).await;

            let detail = given.detail().await;
            assert_eq!(detail["payment"], serde_json::Value::Null);
            assert!(detail.get("screen").is_none());
            assert!(detail.get("startsAt").is_none());
            assert_eq!(
                detail["points"],
                serde_json::json!({"earned": 0, "withdrawn": 0, "spent": 0, "refunded": 0})
            );
            // Only its owner finds it, when an owner is asked for.
            let stranger = UserId::new().to_string();
            assert!(given
                .view
                .find(given.booking.reservation_id, Some(stranger))
                .await
                .unwrap()
                .is_none());
        }
    }
}

//! The messaging toolkit against a real SQLite store and the embedded log:
//! passing faults are waited out, rejections are parked and replayable,
//! unreadable records and outbox rows do not block what comes after them,
//! and a failed publish re-sends from the first event the bus did not take.

use runtime::store::Tx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bus_embedded::EmbeddedBus;
use kernel::bus::{EventBus, Outgoing, PublishError, Subscription};
use kernel::shutdown;
use kernel::Envelope;
use runtime::consumer::{Consumer, EventHandler};
use runtime::dead_letters::Replayers;
use runtime::http::Page;
use runtime::store::{sqlite_url, Store};
use sqlx::Row;

const TOPIC: &str = "boxoffice.test";

fn event(key: &str, n: u64) -> Outgoing {
    Outgoing {
        topic: TOPIC.to_owned(),
        envelope: Envelope::new(
            "/boxoffice/test",
            "boxoffice.test.counted",
            1,
            key,
            key,
            serde_json::json!({ "n": n }),
        ),
    }
}

/// Counts what it applies; fails as it is told to, per event number.
#[derive(Default)]
struct Counter {
    /// n → how many more times to fail with a passing fault.
    outages: Mutex<HashMap<u64, u32>>,
    /// Numbers it rejects (until told otherwise).
    rejects: Mutex<Vec<u64>>,
    /// How many events each batch it was handed held.
    batches: Mutex<Vec<usize>>,
}

#[async_trait]
impl EventHandler for Counter {
    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        let n = event.data["n"].as_u64().unwrap();
        if let Some(left) = self.outages.lock().unwrap().get_mut(&n) {
            if *left > 0 {
                *left -= 1;
                return Err(
                    anyhow::Error::new(sqlx::Error::PoolTimedOut).context("reaching the store")
                );
            }
        }
        if self.rejects.lock().unwrap().contains(&n) {
            anyhow::bail!("event {n} breaks a rule");
        }
        sqlx::query("INSERT INTO counted (n) VALUES ($1)")
            .bind(n as i64)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Called once per batch with all its events: where its size shows.
    async fn prepare(&self, _tx: &mut Tx, events: &[&Envelope]) -> anyhow::Result<()> {
        self.batches.lock().unwrap().push(events.len());
        Ok(())
    }
}

const COUNTED: &[runtime::store::MigrationScript] = &[runtime::store::MigrationScript {
    version: 100,
    description: "test: counted",
    sqlite: "CREATE TABLE counted (n BIGINT NOT NULL);",
    postgres: "CREATE TABLE counted (n BIGINT NOT NULL);",
}];

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    bus: EmbeddedBus,
    handler: Arc<Counter>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "svc"), COUNTED)
        .await
        .unwrap();
    let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
    Rig {
        _dir: dir,
        store,
        bus,
        handler: Arc::new(Counter::default()),
    }
}

impl Rig {
    fn consumer(&self) -> Consumer {
        Consumer {
            group: "test.counter".to_owned(),
            topics: vec![TOPIC],
            store: self.store.clone(),
            bus: Arc::new(self.bus.clone()),
            handler: self.handler.clone(),
        }
    }

    /// Runs the consumer until `count` events are committed (bounded), then stops it.
    async fn consume_until(&self, count: usize) {
        let (trigger, shutdown) = shutdown::channel();
        let running = tokio::spawn(self.consumer().run(shutdown));
        self.wait_for_count(count).await;
        trigger.fire();
        running.await.unwrap().unwrap();
    }

    /// Waits (bounded) until `count` events are committed.
    async fn wait_for_count(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.counted().await.len() < count {
            assert!(
                Instant::now() < deadline,
                "committed so far: {:?}",
                self.counted().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn counted(&self) -> Vec<i64> {
        sqlx::query("SELECT n FROM counted ORDER BY n")
            .fetch_all(self.store.reader())
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<i64, _>("n").unwrap())
            .collect()
    }

    async fn dead_letters(&self) -> Vec<runtime::dead_letters::DeadLetterView> {
        runtime::dead_letters::list(&self.store, &Page::parse(None, None).unwrap())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_store_outage_is_waited_out_and_nothing_is_dead_lettered() {
    let rig = rig().await;
    // Event 2 meets an outage longer than the old five tries would survive.
    rig.handler.outages.lock().unwrap().insert(2, 6);
    let events: Vec<Outgoing> = (1..=5).map(|n| event("k", n)).collect();
    rig.bus.publish(&events).await.unwrap();

    rig.consume_until(5).await;

    assert_eq!(rig.counted().await, vec![1, 2, 3, 4, 5]);
    assert!(rig.dead_letters().await.is_empty());
    assert_eq!(rig.handler.outages.lock().unwrap()[&2], 0);
}

#[tokio::test]
async fn a_consumer_behind_takes_larger_batches_and_the_usual_ones_once_caught_up() {
    let rig = rig().await;
    let events: Vec<Outgoing> = (1..=4000).map(|n| event("k", n)).collect();
    rig.bus.publish(&events).await.unwrap();

    let (trigger, shutdown) = shutdown::channel();
    let running = tokio::spawn(rig.consumer().run(shutdown));
    rig.wait_for_count(4000).await;
    let behind = rig.handler.batches.lock().unwrap().clone();
    assert_eq!(behind.iter().sum::<usize>(), 4000, "{behind:?}");
    assert_eq!(behind.get(..3), Some(&[256, 2048, 1696][..]), "{behind:?}");

    // Caught up, the same consumer takes the usual batches again.
    let more: Vec<Outgoing> = (4001..=4300).map(|n| event("k", n)).collect();
    rig.bus.publish(&more).await.unwrap();
    rig.wait_for_count(4300).await;
    trigger.fire();
    running.await.unwrap().unwrap();
    let after = rig.handler.batches.lock().unwrap()[behind.len()..].to_vec();
    assert_eq!(after.iter().sum::<usize>(), 300, "{after:?}");
    assert!(after.iter().all(|&size| size <= 256), "{after:?}");
}

#[tokio::test]
async fn a_rejected_event_is_parked_unprocessed_and_a_replay_applies_it_once() {
    let rig = rig().await;
    rig.handler.rejects.lock().unwrap().push(2);
    let events: Vec<Outgoing> = (1..=3).map(|n| event("k", n)).collect();
    rig.bus.publish(&events).await.unwrap();

    // The others are not held back by it.
    rig.consume_until(2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.dead_letters().await.is_empty() {
        assert!(Instant::now() < deadline, "event 2 was never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rig.counted().await, vec![1, 3]);
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.consumer, "test.counter");
    assert_eq!(letter.event_type.as_deref(), Some("boxoffice.test.counted"));
    assert_eq!(letter.attempts, 5);
    assert_eq!(letter.status, "dead");
    assert!(
        letter.error.contains("event 2 breaks a rule"),
        "{}",
        letter.error
    );

    let mut replayers = Replayers::default();
    replayers.add("test.counter", rig.store.clone(), rig.handler.clone());
    let id: i64 = letter.id.parse().unwrap();

    // Still rejected: the letter stays, with one more attempt.
    let again = replayers.replay(id).await.unwrap_err();
    assert!(again.to_string().contains("rejected again"), "{again}");
    assert_eq!(rig.dead_letters().await[0].attempts, 6);

    // Once the cause is fixed, a replay applies it as a first delivery would.
    rig.handler.rejects.lock().unwrap().clear();
    let replayed = replayers.replay(id).await.unwrap().unwrap();
    assert_eq!(replayed.status, "replayed");
    assert_eq!(rig.counted().await, vec![1, 2, 3]);
    // And only once, however often it is asked.
    replayers.replay(id).await.unwrap();
    assert_eq!(rig.counted().await, vec![1, 2, 3]);
}

#[tokio::test]
async fn an_unreadable_log_entry_is_kept_as_a_dead_letter_and_the_rest_is_applied() {
    let rig = rig().await;
    rig.bus.publish(&[event("k", 1)]).await.unwrap();
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        rig._dir.path().join("bus.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("INSERT INTO log (topic, event_key, envelope) VALUES ($1, 'k', '{\"truncated')")
        .bind(TOPIC)
        .execute(&raw)
        .await
        .unwrap();
    rig.bus.publish(&[event("k", 3)]).await.unwrap();

    rig.consume_until(2).await;

    assert_eq!(rig.counted().await, vec![1, 3]);
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].raw.as_deref(), Some("{\"truncated"));
    assert_eq!(letters[0].event_id, None);
}

/// A bus that takes only the first `accept` events of a publish, once.
struct Flaky {
    inner: EmbeddedBus,
    accept_once: Mutex<Option<usize>>,
    published: Mutex<Vec<u64>>,
}

#[async_trait]
impl EventBus for Flaky {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), PublishError> {
        let limit = self.accept_once.lock().unwrap().take();
        let taken = limit.unwrap_or(events.len()).min(events.len());
        self.inner.publish(&events[..taken]).await?;
        self.published.lock().unwrap().extend(
            events[..taken]
                .iter()
                .map(|e| e.envelope.data["n"].as_u64().unwrap()),
        );
        if taken < events.len() {
            return Err(PublishError {
                delivered: taken,
                attempted: events.len(),
                reason: anyhow::anyhow!("the broker went away"),
            });
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        self.inner.subscribe(group, topics).await
    }

    async fn is_ready(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_failed_publish_resends_from_the_first_event_the_bus_did_not_take() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "producer"), &[])
        .await
        .unwrap();
    let bus = Arc::new(Flaky {
        inner: EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap(),
        accept_once: Mutex::new(Some(3)),
        published: Mutex::new(Vec::new()),
    });
    let mut tx = store.begin().await.unwrap();
    let events: Vec<Outgoing> = (1..=6).map(|n| event("k", n)).collect();
    runtime::outbox::append(&mut tx, &events).await.unwrap();
    // And one row that is not an event, in the middle.
    sqlx::query("INSERT INTO outbox (topic, envelope) VALUES ($1, 'garbage')")
        .bind(TOPIC)
        .execute(&mut *tx)
        .await
        .unwrap();
    runtime::outbox::append(&mut tx, &[event("k", 7)])
        .await
        .unwrap();
    store.commit(tx).await.unwrap();

    let (trigger, shutdown) = shutdown::channel();
    let relay = tokio::spawn(runtime::outbox::relay(store.clone(), bus.clone(), shutdown));
    let deadline = Instant::now() + Duration::from_secs(30);
    while bus.published.lock().unwrap().len() < 7 {
        assert!(
            Instant::now() < deadline,
            "published {:?}",
            bus.published.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.fire();
    relay.await.unwrap().unwrap();

    // Each event once, in outbox order: nothing taken was sent again ahead
    // of what followed it.
    assert_eq!(*bus.published.lock().unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(left, 0);
    let letters = runtime::dead_letters::list(&store, &Page::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].consumer, "outbox-relay");
    assert_eq!(letters[0].raw.as_deref(), Some("garbage"));
}

#[tokio::test]
async fn timestamps_written_before_they_had_a_fixed_width_are_rewritten_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&sqlite_url(dir.path(), "old"), COUNTED)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    sqlx::query("CREATE TABLE stamps (at TEXT)")
        .execute(&mut *tx)
        .await
        .unwrap();
    for old in [
        "2026-11-21T10:00:00.51Z",
        "2026-11-21T10:00:00.5Z",
        "2026-11-21T10:00:00Z",
        "2026-11-21T10:00:00.123456789Z",
        "2026-11-21T10:00:01.000000Z",
    ] {
        sqlx::query("INSERT INTO stamps (at) VALUES ($1)")
            .bind(old)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::raw_sql(runtime::fixed_width_timestamps!(("stamps", "at")))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let sorted: Vec<String> = sqlx::query("SELECT at FROM stamps ORDER BY at")
        .fetch_all(store.reader())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("at").unwrap())
        .collect();
    assert_eq!(
        sorted,
        vec![
            "2026-11-21T10:00:00.000000Z",
            "2026-11-21T10:00:00.123456Z",
            "2026-11-21T10:00:00.500000Z",
            "2026-11-21T10:00:00.510000Z",
            "2026-11-21T10:00:01.000000Z",
        ]
    );
}

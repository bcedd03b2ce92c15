//! Key-value stores for the read models, behind one port.
//!
//! A read model that is only ever looked up by key (a customer's bookings,
//! one booking in full) needs neither joins nor a query planner: a value
//! per key, read in one round trip, is all it asks of its store. Two
//! adapters answer the same port ([`KvBackend`]):
//!
//! - [`Redb`], embedded (`boxoffice up`): one file, ACID write
//!   transactions, pure Rust.
//! - [`Redis`], shared by the replicas in distributed mode.
//!
//! # Exactly-once effect
//!
//! A consumer applies a batch into a [`KvTx`]: it reads keys (remembering
//! what each held) and buffers its writes, the inbox markers of the batch's
//! events among them. [`KvStore`]'s commit then applies the writes only if
//! every key read still holds what was read — in one redb write
//! transaction, or one Lua script on Redis (which runs atomically). An
//! event applied by another replica meanwhile has changed its inbox key, so
//! the commit is refused and the batch is applied again, finding the event
//! done: a redelivered event changes nothing, as with the SQL inbox, and
//! the consumer loop is the same ([`runtime::consumer::UnitOfWork`]).

mod embedded;
mod remote;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use kernel::bus::{Delivery, Malformed};
use kernel::ids::EventId;
use runtime::consumer::UnitOfWork;
use runtime::retry::Contention;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use embedded::Redb;
pub use remote::Redis;

pub type Value = Vec<u8>;

/// One atomic change: applied only if every `expected` key still holds
/// what it held when read (`None`: absent).
#[derive(Debug, Default)]
pub struct Commit {
    pub expected: Vec<(String, Option<Value>)>,
    /// Keys set (`Some`) or removed (`None`).
    pub writes: Vec<(String, Option<Value>)>,
}

/// What a key-value store must offer a read model.
#[async_trait]
pub trait KvBackend: Send + Sync + std::fmt::Debug + 'static {
    /// The values of `keys`, in order (`None`: absent).
    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Value>>>;

    /// Applies `commit` atomically; `false` (and nothing written) when an
    /// expected key no longer holds what was read.
    async fn commit(&self, commit: Commit) -> anyhow::Result<bool>;

    /// Removes every key starting with `prefix`; how many there were.
    async fn clear(&self, prefix: &str) -> anyhow::Result<u64>;

    /// Whether the store answers.
    async fn ping(&self) -> anyhow::Result<()>;
}

/// A read model's store: a backend and the namespace of its keys
/// (`mypage:`), so that one Redis can hold several read models.
#[derive(Clone, Debug)]
pub struct KvStore {
    backend: Arc<dyn KvBackend>,
    namespace: String,
}

impl KvStore {
    /// Opens `url`: `redb://<path of the file>` or `redis://host:port[/db]`
    /// (`rediss://` with TLS), for the read model `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<KvStore> {
        let backend: Arc<dyn KvBackend> = if let Some(path) = url.strip_prefix("redb://") {
            anyhow::ensure!(
                !path.is_empty(),
                "a redb url names a file: redb://<path>, got {url:?}"
            );
            Arc::new(Redb::open(std::path::Path::new(path))?)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Arc::new(Redis::connect(url).await?)
        } else {
            anyhow::bail!(
                "unsupported key-value store url {:?}: expected redb://<path> or redis://…",
                runtime::store::redact(url)
            );
        };
        Ok(KvStore::new(backend, namespace))
    }

    pub fn new(backend: Arc<dyn KvBackend>, namespace: &str) -> KvStore {
        KvStore {
            backend,
            namespace: format!("{namespace}:"),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// Reads outside any batch (the read model's queries).
    pub async fn get_many_json<T: DeserializeOwned>(
        &self,
        keys: &[String],
    ) -> anyhow::Result<Vec<Option<T>>> {
        let full: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        let values = self.backend.get_many(&full).await?;
        values
            .into_iter()
            .zip(keys)
            .map(|(value, key)| decode(key, value))
            .collect()
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> anyhow::Result<Option<T>> {
        let mut values = self.get_many_json(&[key.to_owned()]).await?;
        Ok(values.pop().flatten())
    }

    /// Starts a batch of changes.
    pub fn begin(&self) -> KvTx {
        KvTx {
            store: self.clone(),
            read: BTreeMap::new(),
            written: BTreeMap::new(),
        }
    }

    /// Applies the batch, or refuses it with [`Contention`] (a passing
    /// fault: applying it again reads the new state).
    pub async fn commit(&self, tx: KvTx) -> anyhow::Result<()> {
        if tx.written.is_empty() {
            return Ok(());
        }
        let commit = Commit {
            expected: tx.read.into_iter().collect(),
            writes: tx.written.into_iter().collect(),
        };
        if self.backend.commit(commit).await? {
            Ok(())
        } else {
            Err(Contention(format!("a key of {}", self.namespace)).into())
        }
    }

    /// Removes the whole read model and its inbox (before a rebuild).
    pub async fn clear(&self) -> anyhow::Result<u64> {
        self.backend.clear(&self.namespace).await
    }

    pub async fn is_ready(&self) -> bool {
        self.backend.ping().await.is_ok()
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: Option<Value>) -> anyhow::Result<Option<T>> {
    value
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading the stored value of {key:?}"))
        })
        .transpose()
}

/// A batch of changes in the making: what it read (checked again at
/// commit) and what it will write. Reads see the batch's own writes.
#[derive(Debug)]
pub struct KvTx {
    store: KvStore,
    read: BTreeMap<String, Option<Value>>,
    written: BTreeMap<String, Option<Value>>,
}

impl KvTx {
    /// The values of `keys` as this batch sees them.
    pub async fn get_many(&mut self, keys: &[String]) -> anyhow::Result<Vec<Option<Value>>> {
        let full: Vec<String> = keys.iter().map(|key| self.store.key(key)).collect();
        let missing: Vec<String> = full
            .iter()
            .filter(|key| !self.written.contains_key(*key) && !self.read.contains_key(*key))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let values = self.store.backend.get_many(&missing).await?;
            self.read.extend(missing.into_iter().zip(values));
        }
        Ok(full
            .iter()
            .map(|key| match self.written.get(key) {
                Some(value) => value.clone(),
                None => self.read.get(key).cloned().flatten(),
            })
            .collect())
    }

    pub async fn get_json<T: DeserializeOwned>(&mut self, key: &str) -> anyhow::Result<Option<T>> {
        let value = self.get_many(&[key.to_owned()]).await?.pop().flatten();
        decode(key, value)
    }

    pub fn put(&mut self, key: &str, value: Value) {
        self.written.insert(self.store.key(key), Some(value));
    }

    pub fn put_json<T: Serialize>(&mut self, key: &str, value: &T) -> anyhow::Result<()> {
        self.put(key, serde_json::to_vec(value)?);
        Ok(())
    }
}

fn inbox_key(consumer: &str, event: EventId) -> String {
    format!("inbox:{consumer}:{event}")
}

/// A dead letter as the key-value store keeps it (under
/// `dead:{consumer}:{topic}:{partition}:{offset}`).
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetter {
    event_id: Option<String>,
    event_type: Option<String>,
    envelope: Option<serde_json::Value>,
    raw: Option<String>,
    error: String,
    attempts: u32,
}

#[async_trait]
impl UnitOfWork for KvStore {
    type Tx = KvTx;

    async fn begin(&self) -> anyhow::Result<KvTx> {
        Ok(KvStore::begin(self))
    }

    async fn record_new(
        &self,
        tx: &mut KvTx,
        consumer: &str,
        events: &[EventId],
    ) -> anyhow::Result<HashSet<EventId>> {
        let keys: Vec<String> = events
            .iter()
            .map(|event| inbox_key(consumer, *event))
            .collect();
        let seen = tx.get_many(&keys).await.context("reading the inbox")?;
        let mut fresh = HashSet::new();
        for ((event, key), seen) in events.iter().zip(&keys).zip(seen) {
            if seen.is_none() && fresh.insert(*event) {
                tx.put(key, b"1".to_vec());
            }
        }
        Ok(fresh)
    }

    async fn park_malformed(
        &self,
        tx: &mut KvTx,
        consumer: &str,
        record: &Malformed,
    ) -> anyhow::Result<()> {
        let letter = DeadLetter {
            event_id: None,
            event_type: None,
            envelope: None,
            raw: Some(String::from_utf8_lossy(&record.raw).into_owned()),
            error: record.error.clone(),
            attempts: 1,
        };
        let key = format!(
            "dead:{consumer}:{}:{}:{}",
            record.topic, record.partition, record.offset
        );
        tx.put_json(&key, &letter)
    }

    async fn park_event(
        &self,
        tx: &mut KvTx,
        consumer: &str,
        delivery: &Delivery,
        error: &str,
        attempts: u32,
    ) -> anyhow::Result<()> {
        let event = &delivery.envelope;
        let letter = DeadLetter {
            event_id: Some(event.id.to_string()),
            event_type: Some(event.event_type.clone()),
            envelope: Some(serde_json::to_value(event)?),
            raw: None,
            error: error.to_owned(),
            attempts,
        };
        let key = format!(
            "dead:{consumer}:{}:{}:{}",
            delivery.topic, delivery.partition, delivery.offset
        );
        tx.put_json(&key, &letter)
    }

    async fn commit(&self, tx: KvTx) -> anyhow::Result<()> {
        KvStore::commit(self, tx).await
    }
}

/// The port's contract, written once and run against every adapter.
#[cfg(test)]
mod contract {
    use super::*;

    /// Reads see the batch's writes; a commit whose reads went stale
    /// writes nothing; clearing removes the namespace's keys only.
    pub async fn a_store_keeps_its_promises(store: &KvStore, other: &KvStore) {
        store.clear().await.unwrap();
        other.clear().await.unwrap();
        let mut tx = store.begin();
        assert_eq!(tx.get_json::<i64>("n").await.unwrap(), None);
        tx.put_json("n", &1).unwrap();
        assert_eq!(tx.get_json::<i64>("n").await.unwrap(), Some(1));
        store.commit(tx).await.unwrap();
        assert_eq!(store.get_json::<i64>("n").await.unwrap(), Some(1));

        // Two batches read n; the first to commit wins, the other is refused
        // whole (its other write is not applied either).
        let mut first = store.begin();
        let mut second = store.begin();
        let a: i64 = first.get_json("n").await.unwrap().unwrap();
        let b: i64 = second.get_json("n").await.unwrap().unwrap();
        first.put_json("n", &(a + 1)).unwrap();
        second.put_json("n", &(b + 10)).unwrap();
        second.put_json("m", &7).unwrap();
        store.commit(first).await.unwrap();
        let refused = store.commit(second).await.unwrap_err();
        assert!(runtime::retry::is_transient(&refused), "{refused:#}");
        assert_eq!(store.get_json::<i64>("n").await.unwrap(), Some(2));
        assert_eq!(store.get_json::<i64>("m").await.unwrap(), None);

        // A key read as absent and created meanwhile refuses the commit too.
        let mut late = store.begin();
        assert_eq!(late.get_json::<i64>("fresh").await.unwrap(), None);
        let mut early = store.begin();
        early.put_json("fresh", &1).unwrap();
        store.commit(early).await.unwrap();
        late.put_json("fresh", &2).unwrap();
        assert!(store.commit(late).await.is_err());

        // Namespaces do not see each other; clearing one leaves the other.
        let mut tx = other.begin();
        tx.put_json("n", &100).unwrap();
        other.commit(tx).await.unwrap();
        assert_eq!(store.get_json::<i64>("n").await.unwrap(), Some(2));
        assert!(store.clear().await.unwrap() >= 2);
        assert_eq!(store.get_json::<i64>("n").await.unwrap(), None);
        assert_eq!(other.get_json::<i64>("n").await.unwrap(), Some(100));
        assert!(store.is_ready().await);
    }

    /// The inbox: an event recorded once is not fresh again, in the same
    /// batch or a later one; a batch refused at commit leaves no marker.
    pub async fn the_inbox_recognises_redelivered_events(store: &KvStore) {
        store.clear().await.unwrap();
        let (a, b, c) = (EventId::new(), EventId::new(), EventId::new());
        let mut tx = UnitOfWork::begin(store).await.unwrap();
        let fresh = store.record_new(&mut tx, "p", &[a, b, a]).await.unwrap();
        assert_eq!(fresh, HashSet::from([a, b]));
        UnitOfWork::commit(store, tx).await.unwrap();

        let mut tx = UnitOfWork::begin(store).await.unwrap();
        let fresh = store.record_new(&mut tx, "p", &[a, c]).await.unwrap();
        assert_eq!(fresh, HashSet::from([c]));
        let other = store.record_new(&mut tx, "q", &[a]).await.unwrap();
        assert_eq!(other, HashSet::from([a]));
        drop(tx);

        // Two members recording the same event: one commit wins.
        let mut first = UnitOfWork::begin(store).await.unwrap();
        let mut second = UnitOfWork::begin(store).await.unwrap();
        assert_eq!(
            store.record_new(&mut first, "p", &[c]).await.unwrap().len(),
            1
        );
        assert_eq!(
            store
                .record_new(&mut second, "p", &[c])
                .await
                .unwrap()
                .len(),
            1
        );
        UnitOfWork::commit(store, first).await.unwrap();
        assert!(UnitOfWork::commit(store, second).await.is_err());
        let mut tx = UnitOfWork::begin(store).await.unwrap();
        assert!(store
            .record_new(&mut tx, "p", &[c])
            .await
            .unwrap()
            .is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn redb_pair(dir: &tempfile::TempDir) -> (KvStore, KvStore) {
        let url = format!("redb://{}", dir.path().join("views.redb").display());
        let store = KvStore::connect(&url, "one").await.unwrap();
        let other = KvStore::new(store.backend.clone(), "two");
        (store, other)
    }

    #[tokio::test]
    async fn redb_keeps_the_stores_promises() {
        let dir = tempfile::tempdir().unwrap();
        let (store, other) = redb_pair(&dir).await;
        contract::a_store_keeps_its_promises(&store, &other).await;
        contract::the_inbox_recognises_redelivered_events(&store).await;
    }

    /// Runs against `BOXOFFICE_TEST_REDIS` (`host:port`); says it was
    /// skipped without it, and fails instead under `CI=true`.
    #[tokio::test]
    async fn redis_keeps_the_stores_promises() {
        let Some(url) = redis_for_tests("redis_keeps_the_stores_promises") else {
            return;
        };
        let namespace = format!("test-{}", EventId::new());
        let store = KvStore::connect(&url, &namespace).await.unwrap();
        let other = KvStore::new(store.backend.clone(), &format!("{namespace}-other"));
        contract::a_store_keeps_its_promises(&store, &other).await;
        contract::the_inbox_recognises_redelivered_events(&store).await;
        other.clear().await.unwrap();
        store.clear().await.unwrap();
    }

    #[tokio::test]
    async fn an_unknown_url_is_refused_naming_the_schemes() {
        let error = KvStore::connect("mongodb://x", "n").await.unwrap_err();
        assert!(error.to_string().contains("redb://"), "{error}");
    }
}

/// The Redis url tests run against: `BOXOFFICE_TEST_REDIS` (`host:port` or
/// a url). Without it a test is skipped, saying so, except under
/// `CI=true`, where that is a failure.
pub fn redis_for_tests(test: &str) -> Option<String> {
    match std::env::var("BOXOFFICE_TEST_REDIS") {
        Ok(address) if !address.is_empty() => Some(if address.contains("://") {
            address
        } else {
            format!("redis://{address}")
        }),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: BOXOFFICE_TEST_REDIS is not set, and CI=true requires it"
            );
            eprintln!("{test}: skipped (set BOXOFFICE_TEST_REDIS=host:port to run it)");
            None
        }
    }
}

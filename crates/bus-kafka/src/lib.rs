//! The Kafka `EventBus`: any Kafka-protocol broker, through librdkafka
//! (the `rdkafka` crate, built from its bundled sources).
//!
//! - Producing: one idempotent producer per process (`acks=all`, retries
//!   without duplicates or reordering), records keyed by the envelope's
//!   subject with the Java client's partitioner (`murmur2_random`), so one
//!   aggregate's events land on one partition in order, whichever language
//!   produced them. Attributes travel as CloudEvents headers (binary mode).
//! - Consuming: one consumer per subscription in a Kafka consumer group,
//!   auto-commit off; positions are committed only after the consumer loop
//!   has committed the batch's database transaction (see
//!   `runtime::consumer`). A crash re-delivers; inboxes make that harmless.
//! - Topics: one per producing context, created at start when missing, with
//!   a configurable partition count (partitions bound how many replicas of
//!   a consumer group share the work).

mod binary_mode;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::FutureExt;
use kernel::bus::{Batch, Delivery, EventBus, Malformed, Outgoing, PublishError, Subscription};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

pub use binary_mode::{decode, encode, Record};

/// How long `next_batch` waits for a first event before returning empty.
const POLL: Duration = Duration::from_millis(250);
/// How long `close` waits for the final commit and the group leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish may take before it fails (the relay then retries).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the broker is and how topics and groups behave. It is also the
/// `[kafka]` section of boxoffice's configuration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Partitions of topics this process creates.
    pub partitions: i32,
    /// Replication factor of topics this process creates.
    pub replication_factor: i32,
    /// How long a silent group member keeps its partitions.
    pub session_timeout_ms: u32,
    /// Names this process in broker logs and metrics (set per service,
    /// not configured).
    #[serde(skip)]
    pub client_id: String,
    /// Members of each consumer group per process (see
    /// `EventBus::members_per_group`).
    pub consumers_per_group: usize,
    /// Longest a fetch waits at the broker for new records. Brokers that
    /// answer as soon as records arrive make this only an idle-poll period;
    /// brokers that wait it out (tansu) add it to every hop's latency.
    pub fetch_wait_max_ms: u32,
    /// Prefixes every topic and consumer group (`<namespace>.boxoffice.catalog`),
    /// so several deployments can share one cluster without seeing each other.
    pub namespace: Option<String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap_servers: "127.0.0.1:9092".into(),
            partitions: 4,
            replication_factor: 1,
            session_timeout_ms: 6000,
            client_id: "boxoffice".into(),
            consumers_per_group: 1,
            fetch_wait_max_ms: 10,
            namespace: None,
        }
    }
}

/// A connection to the broker. Cheap to clone.
#[derive(Clone)]
pub struct KafkaBus {
    settings: Arc<KafkaSettings>,
    producer: FutureProducer,
    admin: Arc<AdminClient<DefaultClientContext>>,
    created: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Connects and makes sure `topics` exist.
    pub async fn connect(settings: KafkaSettings, topics: &[&str]) -> anyhow::Result<KafkaBus> {
        let producer: FutureProducer = base_config(&settings)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Same key, same partition as the Java client would choose.
            .set("partitioner", "murmur2_random")
            // Latency over batching: the outbox relay already sends batches.
            .set("linger.ms", "1")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .create()
            .context("creating the Kafka producer")?;
        let admin: AdminClient<DefaultClientContext> = base_config(&settings)
            .create()
            .context("creating the Kafka admin client")?;
        let bus = KafkaBus {
            settings: Arc::new(settings),
            producer,
            admin: Arc::new(admin),
            created: Arc::default(),
        };
        bus.ensure_topics(topics).await?;
        Ok(bus)
    }

    /// Creates the topics that do not exist yet (once per process).
    pub async fn ensure_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        let missing: Vec<&str> = {
            let created = self.created.lock().expect("topic set poisoned");
            topics
                .iter()
                .copied()
                .filter(|t| !created.contains(*t))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let qualified: Vec<String> = missing
            .iter()
            .map(|name| self.settings.qualified(name))
            .collect();
        let new_topics: Vec<NewTopic> = qualified
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication_factor),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = self
            .admin
            .create_topics(&new_topics, &options)
            .await
            .with_context(|| {
                format!(
                    "creating topics on {} (is the broker up?)",
                    self.settings.bootstrap_servers
                )
            })?;
        for result in results {
            match result {
                Ok(name) => {
                    tracing::info!(topic = %name, partitions = self.settings.partitions, "topic created")
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
            }
        }
        self.created
            .lock()
            .expect("topic set poisoned")
            .extend(missing.iter().map(|t| (*t).to_owned()));
        Ok(())
    }

    /// Partitions of `topic`, as the broker reports them.
    pub async fn partition_count(&self, topic: &str) -> anyhow::Result<usize> {
        let producer = self.producer.clone();
        let topic = self.settings.qualified(topic);
        tokio::task::spawn_blocking(move || {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))?;
            Ok(metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0))
        })
        .await?
    }
}

impl KafkaSettings {
    /// The broker's name for a topic or group.
    fn qualified(&self, name: &str) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}.{name}"),
            None => name.to_owned(),
        }
    }

    /// The name boxoffice knows a broker topic by.
    fn unqualified<'a>(&self, name: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .and_then(|namespace| name.strip_prefix(namespace))
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(name)
    }
}

fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", &settings.client_id)
        .set("enable.metrics.push", "false")
        // Requests are small and latency matters: Nagle's algorithm held a
        // produce or fetch request back until the previous segment's
        // acknowledgement, which the peer may delay.
        .set("socket.nagle.disable", "true")
        // Hand librdkafka's own log lines to `tracing`.
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    config
}

#[async_trait]
impl EventBus for KafkaBus {
    /// Commits the earliest offset the broker still holds on every
    /// partition of `topics`, for the group's own name (rather than reading
    /// with a new group id: the name stays the one metrics, dashboards and
    /// every replica's configuration know, and no stale group is left
    /// behind). The broker takes such a commit only from outside a group
    /// with no live members, so the service must be stopped: a refusal
    /// says so.
    async fn rewind(&self, group: &str, topics: &[&str]) -> anyhow::Result<()> {
        self.ensure_topics(topics).await?;
        let settings = self.settings.clone();
        let group = settings.qualified(group);
        let topics: Vec<String> = topics.iter().map(|t| settings.qualified(t)).collect();
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = base_config(&settings)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .context("creating a Kafka consumer")?;
            let mut earliest = TopicPartitionList::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
                let partitions = metadata
                    .topics()
                    .first()
                    .map(|t| t.partitions().len())
                    .unwrap_or(0);
                for partition in 0..i32::try_from(partitions)? {
                    let (low, _) = consumer
                        .fetch_watermarks(topic, partition, Duration::from_secs(10))
                        .with_context(|| format!("reading where {topic}/{partition} starts"))?;
                    earliest.add_partition_offset(topic, partition, Offset::Offset(low))?;
                }
            }
            consumer
                .commit(&earliest, CommitMode::Sync)
                .with_context(|| {
                    format!("moving {group} to the start of its topics (are its members stopped?)")
                })?;
            // A commit accepted as a whole may still refuse partitions.
            let answered = consumer.committed_offsets(earliest.clone(), Duration::from_secs(10))?;
            for element in answered.elements() {
                if let Err(error) = element.error() {
                    anyhow::bail!(
                        "{group} was not moved on {}/{}: {error} (are its members stopped?)",
                        element.topic(),
                        element.partition()
                    );
                }
            }
            Ok(())
        })
        .await?
    }

    async fn publish(&self, events: &[Outgoing]) -> Result<(), PublishError> {
        // Enqueue strictly in order (the idempotent producer keeps that order
        // per partition), then wait for every acknowledgement.
        let failed = |delivered: usize, reason: anyhow::Error| PublishError {
            delivered,
            attempted: events.len(),
            reason,
        };
        let mut acks = Vec::with_capacity(events.len());
        let topics: Vec<String> = events
            .iter()
            .map(|event| self.settings.qualified(&event.topic))
            .collect();
        for (event, topic) in events.iter().zip(&topics) {
            let record = encode(&event.envelope).map_err(|e| failed(0, e))?;
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let mut pending = FutureRecord::to(topic)
                .key(event.envelope.key())
                .payload(&record.value)
                .headers(headers);
            loop {
                match self.producer.send_result(pending) {
                    Ok(ack) => break acks.push(ack),
                    // The local queue is full: let it drain, then retry this
                    // record before any later one.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        pending = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // Nothing of this batch is known to be acknowledged yet.
                    Err((error, _)) => {
                        return Err(failed(
                            0,
                            anyhow::Error::new(error).context("enqueueing an event"),
                        ))
                    }
                }
            }
        }
        // Only the events before the first failure count as delivered: the
        // relay re-sends from there, so a key's events never reach the topic
        // in another order than the outbox's (later ones that did arrive are
        // sent again as duplicates, which inboxes absorb).
        let reports = futures::future::join_all(acks).await;
        for (index, (report, event)) in reports.into_iter().zip(events).enumerate() {
            let reason = match report {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => {
                    anyhow::Error::new(error).context(format!("publishing to {}", event.topic))
                }
                Err(_) => anyhow::anyhow!("the producer dropped a delivery report"),
            };
            return Err(failed(index, reason));
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        anyhow::ensure!(
            !topics.is_empty(),
            "a subscription needs at least one topic"
        );
        self.ensure_topics(topics).await?;
        let qualified: Vec<String> = topics.iter().map(|t| self.settings.qualified(t)).collect();
        let qualified: Vec<&str> = qualified.iter().map(String::as_str).collect();
        let consumer: StreamConsumer<GroupMember> = base_config(&self.settings)
            .set("group.id", self.settings.qualified(group))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                self.settings.session_timeout_ms.to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.settings.session_timeout_ms / 3).max(100).to_string(),
            )
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait_max_ms.to_string(),
            )
            .create_with_context(GroupMember {
                group: group.to_owned(),
            })
            .context("creating a Kafka consumer")?;
        consumer
            .subscribe(&qualified)
            .with_context(|| format!("subscribing {group} to {qualified:?}"))?;
        Ok(Box::new(KafkaSubscription {
            settings: self.settings.clone(),
            group: group.to_owned(),
            consumer: Arc::new(consumer),
            committed: BTreeMap::new(),
        }))
    }

    fn members_per_group(&self) -> usize {
        self.settings.consumers_per_group
    }

    async fn is_ready(&self) -> bool {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// Says in the log which partitions this member owns as the group
/// rebalances: the first thing to look at when work is not shared.
struct GroupMember {
    group: String,
}

impl ClientContext for GroupMember {}

impl ConsumerContext for GroupMember {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let describe = |list: &TopicPartitionList| {
            list.elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect::<Vec<_>>()
                .join(",")
        };
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(group = %self.group, partitions = %describe(list), count = list.count(), "partitions assigned")
            }
            Rebalance::Revoke(list) => {
                tracing::info!(group = %self.group, partitions = %describe(list), "partitions revoked")
            }
            Rebalance::Error(error) => {
                tracing::warn!(group = %self.group, error = %error, "rebalance failed")
            }
        }
    }

    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(error) = result {
            // The inbox absorbs what a lost commit re-delivers.
            tracing::debug!(group = %self.group, error = %error, "offset commit failed");
        }
    }
}

struct KafkaSubscription {
    settings: Arc<KafkaSettings>,
    group: String,
    consumer: Arc<StreamConsumer<GroupMember>>,
    /// Next offset to read, per (broker topic, partition), as last committed.
    committed: BTreeMap<(String, i32), i64>,
}

impl KafkaSubscription {
    /// The record as an event, or as a malformed record the consumer keeps.
    fn take(&self, message: &rdkafka::message::BorrowedMessage<'_>, batch: &mut Batch) {
        let headers = message
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect::<Vec<_>>());
        let topic = self.settings.unqualified(message.topic()).to_owned();
        match decode(headers.unwrap_or_default(), message.payload()) {
            Ok(envelope) => batch.deliveries.push(Delivery {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                envelope: Arc::new(envelope),
            }),
            // Retrying cannot fix it: hand it on to be kept as a dead letter,
            // and move past it, or it would block its partition.
            Err(error) => batch.malformed.push(Malformed {
                topic,
                partition: message.partition(),
                offset: message.offset(),
                raw: message.payload().unwrap_or_default().to_vec(),
                error: format!("not a boxoffice CloudEvent: {error:#}"),
            }),
        }
    }
}

fn offsets(next: &BTreeMap<(String, i32), i64>) -> anyhow::Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    Ok(list)
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next_batch(&mut self, max: usize) -> anyhow::Result<Batch> {
        let mut batch = Batch::default();
        let first = match tokio::time::timeout(POLL, self.consumer.recv()).await {
            Err(_) => return Ok(batch),
            Ok(message) => message.context("reading from Kafka")?,
        };
        self.take(&first, &mut batch);
        drop(first);
        // Whatever librdkafka has already fetched joins the batch, without waiting.
        for _ in 1..max {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => self.take(&message, &mut batch),
                Some(Err(error)) => {
                    tracing::warn!(group = %self.group, error = %error, "Kafka read error");
                    break;
                }
                None => break,
            }
        }
        Ok(batch)
    }

    async fn commit(&mut self, handled: &Batch) -> anyhow::Result<()> {
        // Only the partitions this batch touched: committing every partition
        // ever seen could move back one that a rebalance gave to another member.
        let mut touched: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (topic, partition, offset) in handled.positions() {
            let next = touched
                .entry((self.settings.qualified(topic), partition))
                .or_insert(0);
            *next = (*next).max(offset + 1);
        }
        if touched.is_empty() {
            return Ok(());
        }
        for (partition, next) in &touched {
            let committed = self.committed.entry(partition.clone()).or_insert(0);
            *committed = (*committed).max(*next);
        }
        // Asynchronous: a lost commit only re-delivers what the inbox has
        // already seen. `close` commits synchronously.
        self.consumer
            .commit(&offsets(&touched)?, CommitMode::Async)
            .context("committing Kafka offsets")?;
        Ok(())
    }

    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        // What this member still owns, at the positions it handled.
        let owned = self.consumer.assignment().unwrap_or_default();
        let mine: BTreeMap<(String, i32), i64> = self
            .committed
            .into_iter()
            .filter(|((topic, partition), _)| owned.find_partition(topic, *partition).is_some())
            .collect();
        let list = offsets(&mine)?;
        let consumer = self.consumer;
        let group = self.group;
        let (closed, wait_closed) = tokio::sync::oneshot::channel();
        // Commit, leave the group (so partitions move at once, not after a
        // session timeout) and close. These block, so they run on their own
        // thread; librdkafka's final teardown can hang on some brokers (a
        // known rdkafka issue), so it is given a bound rather than trusted.
        std::thread::spawn(move || {
            if list.count() > 0 {
                if let Err(error) = consumer.commit(&list, CommitMode::Sync) {
                    tracing::warn!(group = %group, error = %error, "final offset commit failed; the inbox absorbs the re-delivery");
                }
            }
            consumer.unsubscribe();
            let _ = closed.send(());
            drop(consumer);
        });
        if tokio::time::timeout(CLOSE_TIMEOUT, wait_closed)
            .await
            .is_err()
        {
            tracing::warn!("leaving the consumer group took over {CLOSE_TIMEOUT:?}; the broker will expire this member");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_prefixes_broker_names_and_is_stripped_on_the_way_back() {
        let shared = KafkaSettings {
            namespace: Some("staging".into()),
            ..KafkaSettings::default()
        };
        assert_eq!(
            shared.qualified("boxoffice.catalog"),
            "staging.boxoffice.catalog"
        );
        assert_eq!(
            shared.unqualified("staging.boxoffice.catalog"),
            "boxoffice.catalog"
        );
        // A topic outside the namespace keeps its name.
        assert_eq!(shared.unqualified("stagingx.other"), "stagingx.other");
        let alone = KafkaSettings::default();
        assert_eq!(alone.qualified("boxoffice.catalog"), "boxoffice.catalog");
    }
}

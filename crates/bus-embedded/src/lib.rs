//! The embedded `EventBus`: a durable, append-only log in one SQLite file.
//!
//! Every published event gets the next sequence number in a single log;
//! topics are a column. Each consumer group keeps, per topic, the sequence
//! number it has committed up to, in the same file, so a consumer that was
//! stopped resumes where it left off and replays what it missed. One log
//! order means one key's events are always delivered in publish order.
//!
//! It is meant for one process (`boxoffice up`): a group has one member
//! there. Scaling a group out to several members is what the Kafka adapter
//! is for. Subscribers are woken in-process the moment something is
//! appended, and poll every 250 ms as a fallback.
//!
//! The newest events are also kept in memory, already parsed
//! ([`RECENT`] of them): a subscriber that keeps up — the normal case —
//! reads them from there instead of querying and parsing the log once per
//! consumer group. A subscriber further behind, and every subscriber after
//! a restart, reads the file; the file is always the record.
//!
//! A group's committed positions are kept in memory too, and written to
//! the file at most every [`SAVE_POSITIONS_EVERY`] (and when the log is
//! closed): writing them after every batch made two of every three commits
//! to the log's file. Within the process a commit counts at once; after a
//! crash a group reads again at most that much of the log, which the
//! consumers' inboxes pass over as already handled.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use kernel::bus::{Batch, Delivery, EventBus, Malformed, Outgoing, PublishError, Subscription};
use kernel::Envelope;
use runtime::sqlite;
use sqlx::{Any, QueryBuilder, Row};
use tokio::sync::{watch, Notify};

const POLL: Duration = Duration::from_millis(250);
/// Events kept in memory for subscribers that keep up, at about 2 KiB each
/// parsed: a quarter of a second at the heaviest load measured (about
/// 16,000 events/s, 2,200 bookings/s), which the producers' pacing keeps
/// every group within when they share the process (`up`; the pacing sees
/// only its own process's subscriptions,
/// [`EventBus::until_consumers_keep_up`]). 16,384
/// cost 35 MiB more peak memory for no gain, before the pacing.
pub const RECENT: usize = 4_096;

/// How often committed positions are written to the file: what a group may
/// read twice after a crash (its inbox skips it), against a commit to the
/// log's file per batch of every group.
pub const SAVE_POSITIONS_EVERY: Duration = Duration::from_millis(500);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_key TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_topic ON log (topic, seq);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    committed_seq INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic)
);";

/// The embedded log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EmbeddedBus {
    /// The one writer, run on the caller's thread (`runtime::sqlite`).
    write: Arc<tokio::sync::Mutex<sqlite::Connection>>,
    read: Arc<sqlite::Readers>,
    head: watch::Sender<i64>,
    recent: Arc<Mutex<Recent>>,
    progress: Arc<Progress>,
    positions: Arc<Mutex<Committed>>,
    /// The file, for connections of a subscription's own.
    path: Arc<std::path::PathBuf>,
}

/// The groups' committed positions, as this process knows them, and which
/// of them the file does not have yet.
#[derive(Debug)]
struct Committed {
    /// Per (group, topic), the last sequence number handled.
    at: HashMap<(String, String), i64>,
    unsaved: HashMap<(String, String), i64>,
    saved_at: tokio::time::Instant,
    save_every: Duration,
}

impl Committed {
    /// Records that `group` handled `topic` up to `seq` (never backwards).
    fn commit(&mut self, group: &str, topic: &str, seq: i64) {
        let key = (group.to_owned(), topic.to_owned());
        let at = self.at.entry(key.clone()).or_default();
        if seq > *at {
            *at = seq;
            self.unsaved.insert(key, seq);
        }
    }

    /// Whether it is time to write the positions the file lacks (or
    /// `now_anyway`); the interval starts again from here.
    fn due(&mut self, now_anyway: bool) -> bool {
        let now = tokio::time::Instant::now();
        if self.unsaved.is_empty() || !(now_anyway || now >= self.saved_at + self.save_every) {
            return false;
        }
        self.saved_at = now;
        true
    }

    /// Positions the file has now: no longer unsaved, unless a commit
    /// moved them on meanwhile.
    fn saved(&mut self, written: &[((String, String), i64)]) {
        for (key, seq) in written {
            if self.unsaved.get(key) == Some(seq) {
                self.unsaved.remove(key);
            }
        }
    }
}

/// How far each subscription has read, for producers that pace themselves
/// by their consumers ([`EventBus::until_consumers_keep_up`]).
#[derive(Debug)]
struct Progress {
    /// Per subscription, the log position up to which it has been handed
    /// everything it reads.
    read_up_to: Mutex<HashMap<u64, i64>>,
    next_subscription: AtomicU64,
    moved: Notify,
    /// How far behind the head a group may be before producers that pace
    /// themselves wait: half the in-memory window, so that groups keep
    /// reading from memory.
    keep_within: i64,
}

impl Progress {
    fn record(&self, subscription: u64, up_to: i64) {
        self.read_up_to
            .lock()
            .expect("the progress lock")
            .insert(subscription, up_to);
        self.moved.notify_waiters();
    }

    fn forget(&self, subscription: u64) {
        self.read_up_to
            .lock()
            .expect("the progress lock")
            .remove(&subscription);
        self.moved.notify_waiters();
    }

    /// How many log positions the slowest subscription is behind `head`.
    fn slowest_behind(&self, head: i64) -> i64 {
        let read_up_to = self.read_up_to.lock().expect("the progress lock");
        read_up_to
            .values()
            .map(|up_to| head - up_to)
            .max()
            .unwrap_or(0)
    }
}

/// The newest stretch of the log, in order and without gaps:
/// `entries[i]` has sequence number `first + i`.
#[derive(Debug)]
struct Recent {
    first: i64,
    entries: VecDeque<(String, Arc<Envelope>)>,
    capacity: usize,
}

impl Recent {
    fn starting_after(head: i64, capacity: usize) -> Recent {
        Recent {
            first: head + 1,
            entries: VecDeque::new(),
            capacity,
        }
    }

    /// Adds entries appended with consecutive numbers from `first`. If
    /// they do not follow on (something else wrote to the file), the
    /// window starts again from them: readers behind it use the file.
    fn extend(&mut self, first: i64, appended: impl IntoIterator<Item = (String, Arc<Envelope>)>) {
        if first != self.first + self.entries.len() as i64 {
            self.entries.clear();
            self.first = first;
        }
        for entry in appended {
            self.entries.push_back(entry);
            if self.entries.len() > self.capacity {
                self.entries.pop_front();
                self.first += 1;
            }
        }
    }

    /// Up to `max` events after each topic's position, in log order, or
    /// `None` when some of them are older than the window holds.
    fn after(&self, positions: &HashMap<String, i64>, max: usize) -> Option<Batch> {
        let oldest_wanted = positions.values().copied().min()? + 1;
        if oldest_wanted < self.first {
            return None;
        }
        let skip = (oldest_wanted - self.first) as usize;
        let mut batch = Batch::default();
        for (i, (topic, envelope)) in self.entries.iter().enumerate().skip(skip) {
            let seq = self.first + i as i64;
            if positions.get(topic).is_some_and(|after| seq > *after) {
                batch.deliveries.push(Delivery {
                    topic: topic.clone(),
                    partition: 0,
                    offset: seq,
                    envelope: Arc::clone(envelope),
                });
                if batch.deliveries.len() == max {
                    break;
                }
            }
        }
        Some(batch)
    }
}

impl EmbeddedBus {
    /// Opens (or creates) the log at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<EmbeddedBus> {
        EmbeddedBus::open_keeping(path, RECENT).await
    }

    /// Opens the log keeping the newest `recent` events in memory.
    pub async fn open_keeping(path: &Path, recent: usize) -> anyhow::Result<EmbeddedBus> {
        // One writer: appends and commits never race for SQLite's lock.
        let mut write = sqlite::Connection::open_writer(path)
            .with_context(|| format!("opening the event log {}", path.display()))?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut write)
            .await
            .context("switching the event log to WAL")?;
        write.run_script(SCHEMA)?;
        let read = sqlite::Readers::open(path, runtime::store::sqlite_readers())
            .with_context(|| format!("opening the event log {}", path.display()))?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM log")
            .fetch_one(&read)
            .await?;
        Ok(EmbeddedBus {
            write: Arc::new(tokio::sync::Mutex::new(write)),
            read: Arc::new(read),
            head: watch::Sender::new(head),
            recent: Arc::new(Mutex::new(Recent::starting_after(head, recent))),
            progress: Arc::new(Progress {
                read_up_to: Mutex::new(HashMap::new()),
                next_subscription: AtomicU64::new(0),
                moved: Notify::new(),
                keep_within: (recent / 2).max(1) as i64,
            }),
            positions: Arc::new(Mutex::new(Committed {
                at: HashMap::new(),
                unsaved: HashMap::new(),
                saved_at: tokio::time::Instant::now(),
                save_every: SAVE_POSITIONS_EVERY,
            })),
            path: Arc::new(path.to_owned()),
        })
    }

    /// How many events the log holds (for tests and diagnostics).
    pub async fn len(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM log")
            .fetch_one(&*self.read)
            .await?)
    }

    pub async fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// Writes committed positions to the file at most every `every`.
    #[cfg(test)]
    fn saving_positions_every(self, every: Duration) -> EmbeddedBus {
        self.positions
            .lock()
            .expect("the positions lock")
            .save_every = every;
        self
    }

    /// Writes the positions committed since they were last written. The
    /// log's connections close with the last clone of the bus.
    pub async fn close(&self) {
        if let Err(error) = self.save_positions(true).await {
            tracing::warn!(error = format!("{error:#}"), "writing the consumer groups' positions at close failed; they re-read what they handled since the last write");
        }
    }

    /// Writes the committed positions the file lacks, when it is time (or
    /// `now_anyway`), all groups' in one transaction.
    async fn save_positions(&self, now_anyway: bool) -> anyhow::Result<()> {
        if !self
            .positions
            .lock()
            .expect("the positions lock")
            .due(now_anyway)
        {
            return Ok(());
        }
        // Taken under the log's writer, as `rewind` clears them: a rewind
        // then comes wholly before or after this write, never between the
        // read of the positions and their write. They stay unsaved until
        // written, so a write that fails or is cancelled loses none.
        let mut connection = self.write.lock().await;
        let unsaved: Vec<_> = self
            .positions
            .lock()
            .expect("the positions lock")
            .unsaved
            .iter()
            .map(|(key, seq)| (key.clone(), *seq))
            .collect();
        if unsaved.is_empty() {
            return Ok(());
        }
        Self::write_positions(&mut connection, &unsaved).await?;
        self.positions
            .lock()
            .expect("the positions lock")
            .saved(&unsaved);
        Ok(())
    }

    async fn write_positions(
        connection: &mut sqlite::Connection,
        positions: &[((String, String), i64)],
    ) -> anyhow::Result<()> {
        let mut tx = connection.transaction()?;
        for ((group, topic), seq) in positions {
            sqlx::query(
                "INSERT INTO group_offsets (group_name, topic, committed_seq) VALUES ($1, $2, $3)
                 ON CONFLICT (group_name, topic) DO UPDATE SET committed_seq = MAX(committed_seq, excluded.committed_seq)",
            )
            .bind(group)
            .bind(topic)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().context("writing the groups' positions")?;
        Ok(())
    }
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn publish(&self, events: &[Outgoing]) -> Result<(), PublishError> {
        // One transaction: all of them are appended, or none.
        self.append(events)
            .await
            .map_err(|error| PublishError::nothing(events.len(), error))
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<Box<dyn Subscription>> {
        Ok(Box::new(self.open_subscription(group, topics).await?))
    }

    /// The log keeps every event, so forgetting the group's positions is
    /// enough: a group with none starts at the first event.
    async fn rewind(&self, group: &str, topics: &[&str]) -> anyhow::Result<()> {
        let mut connection = self.write.lock().await;
        {
            let mut positions = self.positions.lock().expect("the positions lock");
            for topic in topics {
                let key = (group.to_owned(), (*topic).to_owned());
                positions.at.remove(&key);
                positions.unsaved.remove(&key);
            }
        }
        let mut tx = connection.transaction()?;
        for topic in topics {
            sqlx::query("DELETE FROM group_offsets WHERE group_name = $1 AND topic = $2")
                .bind(group)
                .bind(topic)
                .execute(&mut *tx)
                .await
                .context("rewinding a consumer group")?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Groups more than half the in-memory window behind (they would soon
    /// read the file, the slow path) make the caller wait until they are
    /// within it again, or until `patience` runs out: a group stopped by a
    /// fault or rebuilding from the start slows the door by at most that
    /// much per wait, and never stops it.
    async fn until_consumers_keep_up(&self, patience: Duration) {
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            let moved = self.progress.moved.notified();
            tokio::pin!(moved);
            // Registered before the check, so progress made between the
            // check and the wait still wakes us.
            moved.as_mut().enable();
            let head = *self.head.borrow();
            if self.progress.slowest_behind(head) <= self.progress.keep_within {
                return;
            }
            if tokio::time::timeout_at(give_up, moved).await.is_err() {
                return;
            }
        }
    }

    async fn is_ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&*self.read).await.is_ok()
    }
}

impl EmbeddedBus {
    async fn open_subscription(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<EmbeddedSubscription> {
        anyhow::ensure!(
            !topics.is_empty(),
            "a subscription needs at least one topic"
        );
        let mut positions = HashMap::new();
        for topic in topics {
            let committed: Option<i64> = sqlx::query_scalar(
                "SELECT committed_seq FROM group_offsets WHERE group_name = $1 AND topic = $2",
            )
            .bind(group)
            .bind(topic)
            .fetch_optional(&*self.read)
            .await?;
            // What this process committed may be newer than the file's.
            let in_memory = self
                .positions
                .lock()
                .expect("the positions lock")
                .at
                .get(&(group.to_owned(), (*topic).to_owned()))
                .copied();
            positions.insert((*topic).to_owned(), in_memory.max(committed).unwrap_or(0));
        }
        let id = self
            .progress
            .next_subscription
            .fetch_add(1, Ordering::Relaxed);
        let oldest = positions.values().copied().min().unwrap_or(0);
        self.progress.record(id, oldest);
        Ok(EmbeddedSubscription {
            bus: self.clone(),
            id,
            group: group.to_owned(),
            positions,
            head: self.head.subscribe(),
            ahead: None,
            reader: Mutex::new(None),
        })
    }

    async fn append(&self, events: &[Outgoing]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // The writer is held until the window has the events too, so
        // appends reach `recent` in log order.
        let mut connection = self.write.lock().await;
        let mut tx = connection.transaction()?;
        let mut last = 0;
        let mut numbers = Vec::with_capacity(events.len());
        // Chunks keep each statement under SQLite's bound-parameter limit.
        for chunk in events.chunks(200) {
            let mut insert =
                QueryBuilder::<Any>::new("INSERT INTO log (topic, event_key, envelope) ");
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(&event.topic)
                    .push_bind(event.envelope.key())
                    .push_bind(serde_json::to_string(&event.envelope).unwrap_or_default());
            });
            insert.push(" RETURNING seq");
            let seqs: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
            last = seqs.iter().copied().max().unwrap_or(last);
            numbers.extend(seqs);
        }
        tx.commit().context("appending to the event log")?;
        // One writer, one transaction: the numbers are consecutive, in the
        // order of `events`. Checked rather than assumed, since a window
        // with a wrong number would hand out the wrong event.
        numbers.sort_unstable();
        let first = numbers.first().copied().unwrap_or(0);
        let consecutive = numbers.len() == events.len()
            && numbers
                .iter()
                .enumerate()
                .all(|(i, n)| *n == first + i as i64);
        {
            let mut recent = self.recent.lock().expect("the recent-events lock");
            if consecutive {
                recent.extend(
                    first,
                    events
                        .iter()
                        .map(|event| (event.topic.clone(), Arc::new(event.envelope.clone()))),
                );
            } else {
                // Start again after them: everyone reads these from the file.
                recent.extend(last + 1, []);
            }
        }
        self.head.send_if_modified(|head| {
            let moved = last > *head;
            *head = (*head).max(last);
            moved
        });
        Ok(())
    }
}

struct EmbeddedSubscription {
    bus: EmbeddedBus,
    /// This subscription's entry in the bus's [`Progress`].
    id: u64,
    group: String,
    /// Per topic, the last sequence number handed out.
    positions: HashMap<String, i64>,
    head: watch::Receiver<i64>,
    /// The next batch from the file, read while the group applies this one.
    ahead: Option<ReadAhead>,
    /// The connection reads ahead run on, between two of them: one of the
    /// subscription's own, so that a read on another thread never takes a
    /// connection of the bus's readers from the threads that await them.
    /// (In a lock only to be shared with `&self` across awaits; it is only
    /// reached through `&mut self`.)
    reader: Mutex<Option<sqlite::Connection>>,
}

/// A read of the file started for a group behind the window as soon as it
/// was handed a full batch, so that reading the next batch (parsing
/// included, about 40 % of a group's work while it catches up) runs on
/// another core while the group applies this one — as a Kafka consumer's
/// fetcher reads ahead of its poll.
struct ReadAhead {
    /// The positions and head the read started from: it is the next batch
    /// only if the group asks from the same positions for as many entries.
    positions: HashMap<String, i64>,
    max: usize,
    seen: i64,
    /// Hands the connection back with the batch. Once started, a read is
    /// not stopped: dropped, it ends with its connection (a few ms).
    read: tokio::task::JoinHandle<(sqlite::Connection, anyhow::Result<Batch>)>,
}

/// Where a batch came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Memory,
    File,
}

impl EmbeddedSubscription {
    /// Up to `max` entries after the positions; `seen` is a head observed
    /// before the read began (every entry up to it is committed).
    async fn read(&self, max: usize, seen: i64) -> anyhow::Result<(Batch, Source)> {
        let in_memory = self
            .bus
            .recent
            .lock()
            .expect("the recent-events lock")
            .after(&self.positions, max);
        match in_memory {
            Some(batch) => Ok((batch, Source::Memory)),
            None => Ok((
                read_file(
                    LogReader::Shared(&self.bus.read),
                    &self.positions,
                    max,
                    seen,
                )
                .await?,
                Source::File,
            )),
        }
    }

    /// The read started ahead, if it is the one asked for now and found
    /// something (an empty batch is read again, to wait for the head). A
    /// read ahead that failed is only logged: the group reads afresh, and
    /// meets the fault itself if it lasts.
    async fn take_ahead(&mut self, max: usize) -> Option<(Batch, i64)> {
        let ahead = self.ahead.take()?;
        if ahead.max != max || ahead.positions != self.positions {
            return None;
        }
        let batch = match ahead.read.await {
            Ok((reader, batch)) => {
                *self.reader.get_mut().expect("the read-ahead connection") = Some(reader);
                batch
            }
            Err(error) => Err(anyhow::Error::new(error)),
        };
        match batch {
            Ok(batch) => (!batch.is_empty()).then_some((batch, ahead.seen)),
            Err(error) => {
                tracing::warn!(group = %self.group, error = format!("{error:#}"), "reading the event log ahead failed; reading again");
                None
            }
        }
    }

    /// Starts reading the batch after this one from the file, if the
    /// subscription's connection can be had.
    fn read_ahead(&mut self, max: usize) {
        let kept = self
            .reader
            .get_mut()
            .expect("the read-ahead connection")
            .take();
        let reader = match kept {
            Some(reader) => reader,
            None => match sqlite::Connection::open(&self.bus.path) {
                Ok(reader) => reader,
                Err(error) => {
                    tracing::warn!(group = %self.group, %error, "no connection to read the event log ahead");
                    return;
                }
            },
        };
        let positions = self.positions.clone();
        let seen = *self.head.borrow();
        // On a thread of its own: a task spawned from this one would wait
        // in this worker's next-task slot (which the other worker does not
        // steal from) until the group yields, i.e. until it asks for the
        // batch. SQLite runs on the thread that awaits it, within one poll.
        let runtime = tokio::runtime::Handle::current();
        let read = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            let batch = runtime.block_on(read_file(
                LogReader::Own(&mut reader),
                &positions,
                max,
                seen,
            ));
            (reader, batch)
        });
        self.ahead = Some(ReadAhead {
            positions: self.positions.clone(),
            max,
            seen,
            read,
        });
    }
}

/// The connection a read of the file runs on.
enum LogReader<'c> {
    /// A free one of the bus's readers.
    Shared(&'c sqlite::Readers),
    /// A subscription's own, for reads ahead.
    Own(&'c mut sqlite::Connection),
}

/// Up to `max` entries of the file after `positions` and up to `seen` (a
/// head observed before the read began).
async fn read_file(
    mut reader: LogReader<'_>,
    positions: &HashMap<String, i64>,
    max: usize,
    seen: i64,
) -> anyhow::Result<Batch> {
    // Each topic's next `max` entries by its index, merged in log
    // order and cut at `max`: the first `max` of the merge are the
    // first `max` of the log for this group. One statement with an `OR`
    // per topic would read every entry the group is behind by and sort
    // them all for each batch (SQLite's plan for it is a multi-index
    // `OR` into a temporary B-tree), so a group far behind would catch
    // up in time quadratic in how far behind it is. Each statement is
    // its own snapshot, so all of them stop at `seen`: an append landing
    // between two of them could otherwise put a later topic's entries
    // before an earlier topic's unread ones.
    let mut rows = Vec::new();
    for (topic, after) in positions {
        let query = sqlx::query(
            // The entry as bytes: a corrupted one may not even be text.
            "SELECT seq, CAST(envelope AS BLOB) AS envelope FROM log
             WHERE topic = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(topic)
        .bind(*after)
        .bind(seen)
        .bind(max as i64);
        let stretch = match &mut reader {
            LogReader::Shared(readers) => query.fetch_all(*readers).await?,
            LogReader::Own(connection) => query.fetch_all(&mut **connection).await?,
        };
        for row in stretch {
            rows.push((row.try_get::<i64, _>("seq")?, topic, row));
        }
    }
    rows.sort_unstable_by_key(|(seq, _, _)| *seq);
    rows.truncate(max);
    let mut batch = Batch::default();
    for (seq, topic, row) in rows {
        let topic = topic.clone();
        // Read as bytes: a corrupted entry may not even be text.
        let raw: Vec<u8> = row.try_get("envelope")?;
        match serde_json::from_slice::<Envelope>(&raw) {
            Ok(envelope) => batch.deliveries.push(Delivery {
                topic,
                partition: 0,
                offset: seq,
                envelope: Arc::new(envelope),
            }),
            // Handed on, not fatal: the consumer keeps it as a dead
            // letter and the entries behind it still flow.
            Err(error) => batch.malformed.push(Malformed {
                topic,
                partition: 0,
                offset: seq,
                raw,
                error: format!("log entry {seq} is not an envelope: {error}"),
            }),
        }
    }
    Ok(batch)
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next_batch(&mut self, max: usize) -> anyhow::Result<Batch> {
        // Mark the head as seen before reading, so an append that lands
        // between the read and the wait still wakes us.
        let mut seen = *self.head.borrow_and_update();
        let (mut batch, mut source) = match self.take_ahead(max).await {
            Some((batch, ahead_seen)) => {
                seen = ahead_seen;
                (batch, Source::File)
            }
            None => self.read(max, seen).await?,
        };
        if batch.is_empty() {
            let _ = tokio::time::timeout(POLL, self.head.changed()).await;
            seen = *self.head.borrow_and_update();
            (batch, source) = self.read(max, seen).await?;
        }
        let mut last = None;
        for (topic, _, seq) in batch.positions() {
            let position = self.positions.entry(topic.to_owned()).or_default();
            *position = (*position).max(seq);
            last = last.max(Some(seq));
        }
        // A full batch is everything of the group's topics up to its last
        // entry; a shorter one, everything appended before the read began
        // (and, from the window, up to its last entry, which may be newer).
        let read_up_to = match last {
            Some(last) if batch.deliveries.len() + batch.malformed.len() >= max => last,
            last => last.map_or(seen, |last| last.max(seen)),
        };
        // Every topic has been read that far, those with no entries in it
        // too: a quiet topic's position would otherwise stay behind the
        // window and send every read to the file.
        for position in self.positions.values_mut() {
            *position = (*position).max(read_up_to);
        }
        self.bus.progress.record(self.id, read_up_to);
        // A full batch from the file: the group is behind the window, and
        // most likely still is after this batch.
        if source == Source::File && batch.deliveries.len() + batch.malformed.len() >= max {
            self.read_ahead(max);
        }
        Ok(batch)
    }

    async fn commit(&mut self, handled: &Batch) -> anyhow::Result<()> {
        {
            let mut positions = self.bus.positions.lock().expect("the positions lock");
            for (topic, _, seq) in handled.positions() {
                positions.commit(&self.group, topic, seq);
            }
        }
        // Written with every group's, at most every `SAVE_POSITIONS_EVERY`.
        // A failed write is every group's, not this one's, and they stay
        // to be written with the next: the commit itself has counted.
        if let Err(error) = self.bus.save_positions(false).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "writing the consumer groups' positions failed; they are written with the next"
            );
        }
        Ok(())
    }

    /// Writes the positions committed so far (the trait promises them
    /// durable once the member has left).
    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.bus.save_positions(true).await
    }
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        self.bus.progress.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(topic: &str, key: &str, n: u32) -> Outgoing {
        Outgoing {
            topic: topic.to_owned(),
            envelope: Envelope::new(
                "/test",
                "test.happened",
                1,
                key,
                key,
                serde_json::json!({ "n": n }),
            ),
        }
    }

    /// Empties the log's file, so that only the in-memory window can answer.
    async fn empty_the_file(bus: &EmbeddedBus) {
        sqlx::query("DELETE FROM log")
            .execute(&mut *bus.write.lock().await)
            .await
            .unwrap();
    }

    /// A log keeping `window` events in memory, with events 1..=`count`
    /// published one by one on topic `a`.
    async fn numbered_on_a(count: u32, window: usize) -> (tempfile::TempDir, EmbeddedBus) {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open_keeping(&dir.path().join("bus.db"), window)
            .await
            .unwrap();
        for n in 1..=count {
            bus.publish(&[event("a", "k", n)]).await.unwrap();
        }
        (dir, bus)
    }

    fn numbers(batch: &Batch) -> Vec<u64> {
        batch
            .deliveries
            .iter()
            .map(|d| d.envelope.data["n"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_group_receives_its_topics_in_publish_order() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        bus.publish(&[
            event("a", "k1", 1),
            event("b", "k2", 2),
            event("a", "k1", 3),
        ])
        .await
        .unwrap();
        let mut only_a = bus.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&only_a.next_batch(10).await.unwrap()), vec![1, 3]);
        let mut both = bus.subscribe("h", &["a", "b"]).await.unwrap();
        assert_eq!(numbers(&both.next_batch(10).await.unwrap()), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn a_group_resumes_after_its_last_commit_once_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        {
            let bus = EmbeddedBus::open(&path).await.unwrap();
            bus.publish(&[event("a", "k", 1), event("a", "k", 2), event("a", "k", 3)])
                .await
                .unwrap();
            let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
            let batch = sub.next_batch(2).await.unwrap();
            assert_eq!(numbers(&batch), vec![1, 2]);
            sub.commit(&Batch::from(batch.deliveries[..1].to_vec()))
                .await
                .unwrap();
            bus.close().await;
        }
        // Reopened: event 2 was handed out but never committed, so it comes again.
        let bus = EmbeddedBus::open(&path).await.unwrap();
        bus.publish(&[event("a", "k", 4)]).await.unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_waiting_subscriber_is_woken_by_a_publish() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        let publisher = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(&[event("a", "k", 7)]).await.unwrap();
        });
        let started = std::time::Instant::now();
        let mut got = Batch::default();
        while got.is_empty() && started.elapsed() < Duration::from_secs(5) {
            got = sub.next_batch(10).await.unwrap();
        }
        assert_eq!(numbers(&got), vec![7]);
    }

    #[tokio::test]
    async fn commits_never_move_a_group_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        bus.publish(&[event("a", "k", 1), event("a", "k", 2)])
            .await
            .unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        let batch = sub.next_batch(10).await.unwrap();
        sub.commit(&Batch::from(batch.deliveries[1..].to_vec()))
            .await
            .unwrap();
        sub.commit(&Batch::from(batch.deliveries[..1].to_vec()))
            .await
            .unwrap();
        let mut again = bus.subscribe("g", &["a"]).await.unwrap();
        bus.publish(&[event("a", "k", 3)]).await.unwrap();
        assert_eq!(numbers(&again.next_batch(10).await.unwrap()), vec![3]);
    }

    async fn position_in_file(bus: &EmbeddedBus, group: &str) -> Option<i64> {
        sqlx::query_scalar("SELECT committed_seq FROM group_offsets WHERE group_name = $1")
            .bind(group)
            .fetch_optional(&*bus.read)
            .await
            .unwrap()
    }

    /// A log at `path` that writes positions only when closed, with two
    /// events group `g` has read and committed.
    async fn two_events_handled_by_g(path: &Path) -> (EmbeddedBus, Box<dyn Subscription>) {
        let bus = EmbeddedBus::open(path)
            .await
            .unwrap()
            .saving_positions_every(Duration::from_secs(3600));
        bus.publish(&[event("a", "k", 1), event("a", "k", 2)])
            .await
            .unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        let batch = sub.next_batch(10).await.unwrap();
        sub.commit(&batch).await.unwrap();
        (bus, sub)
    }

    #[tokio::test]
    async fn positions_count_at_once_and_reach_the_file_in_time_and_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let (bus, sub) = two_events_handled_by_g(&path).await;

        // Not in the file yet, but a new member of the group starts after it.
        assert_eq!(position_in_file(&bus, "g").await, None);
        bus.publish(&[event("a", "k", 3)]).await.unwrap();
        let mut again = bus.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&again.next_batch(10).await.unwrap()), vec![3]);

        // Written once the interval has passed since the last write…
        let bus = bus.saving_positions_every(Duration::ZERO);
        bus.publish(&[event("a", "k", 4)]).await.unwrap();
        let batch = again.next_batch(10).await.unwrap();
        again.commit(&batch).await.unwrap();
        assert_eq!(position_in_file(&bus, "g").await, Some(4));

        // …and at close whatever came since.
        let bus = bus.saving_positions_every(Duration::from_secs(3600));
        bus.publish(&[event("a", "k", 5)]).await.unwrap();
        let batch = again.next_batch(10).await.unwrap();
        again.commit(&batch).await.unwrap();
        assert_eq!(position_in_file(&bus, "g").await, Some(4));
        bus.close().await;
        drop((sub, again, bus));

        let reopened = EmbeddedBus::open(&path).await.unwrap();
        reopened.publish(&[event("a", "k", 6)]).await.unwrap();
        let mut after_restart = reopened.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(
            numbers(&after_restart.next_batch(10).await.unwrap()),
            vec![6]
        );
    }

    #[tokio::test]
    async fn a_rewound_group_starts_over_though_its_position_was_not_yet_written() {
        let dir = tempfile::tempdir().unwrap();
        let (bus, sub) = two_events_handled_by_g(&dir.path().join("bus.db")).await;
        sub.close().await.unwrap();
        assert_eq!(position_in_file(&bus, "g").await, Some(2));

        bus.rewind("g", &["a"]).await.unwrap();
        bus.close().await;
        assert_eq!(position_in_file(&bus, "g").await, None);
        let mut again = bus.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&again.next_batch(10).await.unwrap()), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_subscriber_that_keeps_up_reads_the_newest_events_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open_keeping(&dir.path().join("bus.db"), 3)
            .await
            .unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        bus.publish(&[event("a", "k", 1), event("b", "k", 2), event("a", "k", 3)])
            .await
            .unwrap();
        // Gone from the file, still served: the window answered.
        empty_the_file(&bus).await;
        let batch = sub.next_batch(10).await.unwrap();
        assert_eq!(numbers(&batch), vec![1, 3]);
        assert_eq!(
            batch.positions().map(|(_, _, seq)| seq).collect::<Vec<_>>(),
            vec![1, 3],
            "the log's own numbers"
        );
    }

    #[tokio::test]
    async fn a_topic_with_no_new_events_does_not_send_the_group_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open_keeping(&dir.path().join("bus.db"), 2)
            .await
            .unwrap();
        let mut sub = bus.subscribe("g", &["a", "quiet"]).await.unwrap();
        bus.publish(&[event("a", "k", 1)]).await.unwrap();
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![1]);
        bus.publish(&[event("a", "k", 2), event("a", "k", 3)])
            .await
            .unwrap();
        // Gone from the file, still served: the window answered, though
        // nothing was ever published on `quiet`.
        empty_the_file(&bus).await;
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![2, 3]);
    }

    #[tokio::test]
    async fn a_subscriber_behind_the_window_reads_the_file_and_then_catches_up() {
        let (_dir, bus) = numbered_on_a(5, 2).await;
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        // Only 4 and 5 are in memory: 1..3 come from the file, in order.
        assert_eq!(numbers(&sub.next_batch(3).await.unwrap()), vec![1, 2, 3]);
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![4, 5]);
        bus.publish(&[event("a", "k", 6)]).await.unwrap();
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![6]);
    }

    #[tokio::test]
    async fn a_group_behind_the_window_gets_its_next_batch_read_while_it_applies_one() {
        let (_dir, bus) = numbered_on_a(7, 1).await;
        let mut sub = bus.open_subscription("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&sub.next_batch(3).await.unwrap()), vec![1, 2, 3]);
        // While the group "applies" its batch, the next one is read; the
        // file emptied after that does not take it away.
        let ahead = sub.ahead.as_ref().expect("a read ahead after a full batch");
        for _ in 0..500 {
            if ahead.read.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        empty_the_file(&bus).await;
        assert_eq!(numbers(&sub.next_batch(3).await.unwrap()), vec![4, 5, 6]);
        // The next read ahead finds the file empty; 7 is still in memory.
        assert_eq!(numbers(&sub.next_batch(3).await.unwrap()), vec![7]);
    }

    #[tokio::test]
    async fn what_is_appended_after_a_read_ahead_began_still_arrives_once_and_in_order() {
        let (_dir, bus) = numbered_on_a(6, 1).await;
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        let mut read = numbers(&sub.next_batch(3).await.unwrap());
        for n in 7..=9 {
            bus.publish(&[event("a", "k", n)]).await.unwrap();
        }
        read.extend(numbers(&sub.next_batch(3).await.unwrap()));
        // A smaller batch than was read ahead: read afresh.
        read.extend(numbers(&sub.next_batch(2).await.unwrap()));
        read.extend(numbers(&sub.next_batch(3).await.unwrap()));
        bus.publish(&[event("a", "k", 10)]).await.unwrap();
        read.extend(numbers(&sub.next_batch(10).await.unwrap()));
        assert_eq!(read, (1..=10).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn a_group_behind_the_window_gets_its_topics_from_the_file_in_log_order() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open_keeping(&dir.path().join("bus.db"), 1)
            .await
            .unwrap();
        // Interleaved unevenly, with a topic the group does not read.
        let topics = ["a", "b", "a", "a", "c", "b", "a", "b", "b", "a", "c", "a"];
        for (n, topic) in topics.iter().enumerate() {
            bus.publish(&[event(topic, "k", n as u32 + 1)])
                .await
                .unwrap();
        }
        let mut sub = bus.subscribe("g", &["a", "b"]).await.unwrap();
        let mut read = Vec::new();
        for _ in 0..4 {
            let batch = sub.next_batch(3).await.unwrap();
            assert!(batch.deliveries.len() <= 3, "a batch is at most its size");
            read.extend(numbers(&batch));
        }
        assert_eq!(read, vec![1, 2, 3, 4, 6, 7, 8, 9, 10, 12]);
    }

    #[tokio::test]
    async fn a_producer_pacing_itself_waits_for_a_group_far_behind_but_not_forever() {
        let dir = tempfile::tempdir().unwrap();
        // A window of 4: a group more than 2 positions behind is far behind.
        let bus = EmbeddedBus::open_keeping(&dir.path().join("bus.db"), 4)
            .await
            .unwrap();
        let mut behind = bus.subscribe("g", &["a"]).await.unwrap();
        bus.publish(&[event("a", "k", 1), event("b", "k", 2)])
            .await
            .unwrap();
        let waited = tokio::time::Instant::now();
        bus.until_consumers_keep_up(Duration::from_secs(30)).await;
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "2 behind is near"
        );

        for n in 3..=5 {
            bus.publish(&[event("b", "k", n)]).await.unwrap();
        }
        let pacing = tokio::spawn({
            let bus = bus.clone();
            async move { bus.until_consumers_keep_up(Duration::from_secs(30)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!pacing.is_finished(), "5 behind: the producer waits");
        // Reading is catching up, though the group reads none of topic b.
        assert_eq!(numbers(&behind.next_batch(10).await.unwrap()), vec![1]);
        tokio::time::timeout(Duration::from_secs(5), pacing)
            .await
            .expect("the producer goes on once the group has caught up")
            .unwrap();

        bus.publish(&[event("a", "k", 6), event("a", "k", 7), event("a", "k", 8)])
            .await
            .unwrap();
        let waited = tokio::time::Instant::now();
        bus.until_consumers_keep_up(Duration::from_millis(200))
            .await;
        let elapsed = waited.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5),
            "a group that does not read holds the producer for its patience only: {elapsed:?}"
        );
        drop(behind);
        let waited = tokio::time::Instant::now();
        bus.until_consumers_keep_up(Duration::from_secs(30)).await;
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "a subscription gone holds nobody"
        );
    }

    #[tokio::test]
    async fn a_reopened_log_serves_its_history_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        let bus = EmbeddedBus::open(&path).await.unwrap();
        bus.publish(&[event("a", "k", 1), event("a", "k", 2)])
            .await
            .unwrap();
        bus.close().await;
        let bus = EmbeddedBus::open(&path).await.unwrap();
        bus.publish(&[event("a", "k", 3)]).await.unwrap();
        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        assert_eq!(numbers(&sub.next_batch(10).await.unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn the_window_holds_the_newest_entries_without_gaps() {
        let envelope = |n: u32| Arc::new(event("a", "k", n).envelope);
        let mut recent = Recent::starting_after(10, 3);
        recent.extend(11, (1..=4).map(|n| ("a".to_owned(), envelope(n))));
        assert_eq!((recent.first, recent.entries.len()), (12, 3));
        let positions = HashMap::from([("a".to_owned(), 10)]);
        assert!(recent.after(&positions, 10).is_none(), "11 is gone");
        let positions = HashMap::from([("a".to_owned(), 12)]);
        let batch = recent.after(&positions, 10).unwrap();
        assert_eq!(numbers(&batch), vec![3, 4]);
        // Something else wrote 15: the window starts again at 16.
        recent.extend(16, [("a".to_owned(), envelope(5))]);
        assert_eq!((recent.first, recent.entries.len()), (16, 1));
        assert!(recent.after(&positions, 10).is_none());
    }

    #[tokio::test]
    async fn an_unreadable_entry_is_handed_on_as_malformed_and_the_rest_still_flows() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap();
        bus.publish(&[event("a", "k", 1)]).await.unwrap();
        sqlx::query(
            "INSERT INTO log (topic, event_key, envelope) VALUES ('a', 'k', '{not an envelope')",
        )
        .execute(&mut *bus.write.lock().await)
        .await
        .unwrap();
        bus.publish(&[event("a", "k", 3)]).await.unwrap();

        let mut sub = bus.subscribe("g", &["a"]).await.unwrap();
        let batch = sub.next_batch(10).await.unwrap();
        assert_eq!(numbers(&batch), vec![1, 3]);
        assert_eq!(batch.malformed.len(), 1);
        assert_eq!(batch.malformed[0].raw, b"{not an envelope");
        assert!(batch.malformed[0].error.contains("not an envelope"));

        // Committing the batch moves past the bad entry for good.
        sub.commit(&batch).await.unwrap();
        bus.publish(&[event("a", "k", 4)]).await.unwrap();
        let mut again = bus.subscribe("g", &["a"]).await.unwrap();
        let next = again.next_batch(10).await.unwrap();
        assert_eq!(numbers(&next), vec![4]);
        assert!(next.malformed.is_empty());
    }
}

//! The `EventBus` port: publish keyed events to topics; consume them as a
//! member of a consumer group; commit what has been handled.
//!
//! Delivery is at least once. A consumer commits a batch only after the
//! transaction that applied it (state change + inbox row + outbox rows) has
//! committed, so a crash re-delivers and the inbox turns the repeat into a
//! no-op. Events with the same key (the envelope's subject) on one topic are
//! delivered in the order they were published.

use async_trait::async_trait;

use crate::envelope::Envelope;

/// An event handed to a consumer, with where it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    /// Partition within the topic (always 0 on the embedded log).
    pub partition: i32,
    /// Position within the partition; commits move past it.
    pub offset: i64,
    pub envelope: Envelope,
}

/// An event to publish: the envelope and the topic it goes to.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub envelope: Envelope,
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Appends the events durably, in order. Returns once the bus has them.
    async fn publish(&self, events: &[Outgoing]) -> anyhow::Result<()>;

    /// Joins `group` as a consumer of `topics`, resuming after the group's
    /// last committed position.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> anyhow::Result<Box<dyn Subscription>>;

    /// Whether the bus can be reached now (for readiness probes).
    async fn is_ready(&self) -> bool;

    /// How many members of each consumer group one process runs. Members
    /// split a group's partitions, so their database round trips overlap;
    /// one key's events still go to one member, in order. A bus that does
    /// not split work between members says 1.
    fn members_per_group(&self) -> usize {
        1
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next events after what was already handed out, waiting up to a
    /// short poll interval when there are none (then returns empty).
    async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Delivery>>;

    /// Records that every delivery up to and including these has been handled.
    async fn commit(&mut self, handled: &[Delivery]) -> anyhow::Result<()>;

    /// Leaves the group cleanly (commits are already durable).
    async fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(())
    }
}

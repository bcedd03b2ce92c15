//! The notification policy: reservation outcomes and booking refunds
//! become messages, sent through every channel, then recorded in the same
//! transaction as the inbox entry.

use runtime::store::Tx;
use std::sync::Arc;

use async_trait::async_trait;
use contracts::payment::PaymentEvent;
use contracts::reservation::ReservationEvent;
use contracts::IntegrationEvent;
use kernel::ids::NotificationId;
use kernel::Envelope;
use runtime::consumer::{handling_async, EventHandler};

use crate::channel::Channel;
use crate::domain::{self, Message};
use crate::store::Notifications;

pub struct NotificationPolicy {
    notifications: Notifications,
    channels: Vec<Arc<dyn Channel>>,
    /// The channels' names joined with `+` (`log+webhook`), as recorded.
    sent_through: String,
}

impl NotificationPolicy {
    pub fn new(
        notifications: Notifications,
        channels: Vec<Arc<dyn Channel>>,
    ) -> NotificationPolicy {
        let sent_through = channels
            .iter()
            .map(|channel| channel.name())
            .collect::<Vec<_>>()
            .join("+");
        NotificationPolicy {
            notifications,
            channels,
            sent_through,
        }
    }

    fn message_for(event: &Envelope) -> anyhow::Result<Option<Message>> {
        if let Some(reservation_event) = ReservationEvent::from_envelope(event)? {
            return Ok(domain::message_for(&reservation_event));
        }
        if let Some(payment_event) = PaymentEvent::from_envelope(event)? {
            return Ok(domain::message_for_payment(&payment_event));
        }
        Ok(None)
    }
}

/// The consumer group that tells customers.
pub const GROUP: &str = "notification.sender";

/// The events this handler acts on (what customers are told about); the others pass it by.
const TOLD: &[&str] = &[
    "boxoffice.reservation.confirmed",
    "boxoffice.reservation.rejected",
    "boxoffice.reservation.expired",
    "boxoffice.reservation.cancelled",
    "boxoffice.reservation.returned",
    "boxoffice.payment.refunded",
];

#[async_trait]
impl EventHandler for NotificationPolicy {
    fn wants(&self, event: &Envelope) -> bool {
        TOLD.contains(&event.event_type.as_str())
    }

    /// Each message may go to a webhook inside the batch's transaction:
    /// the usual batch even while behind, so a batch's sends fit in the
    /// shutdown's grace and a batch applied again re-sends few.
    fn batch_while_behind(&self) -> usize {
        runtime::consumer::BATCH
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        self.handle_batch(tx, &[event], GROUP).await
    }

    /// Each message is sent in its event's span; the batch's messages are
    /// recorded with one statement.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut sent = Vec::with_capacity(events.len());
        for event in events {
            let message = handling_async(group, event, self.send(event)).await?;
            sent.extend(message);
        }
        self.notifications
            .record(tx, &sent, &self.sent_through)
            .await
    }
}

impl NotificationPolicy {
    /// Sends the message `event` calls for, if any, through every channel.
    async fn send(&self, event: &Envelope) -> anyhow::Result<Option<Message>> {
        let Some(message) = Self::message_for(event)? else {
            return Ok(None);
        };
        // One event makes at most one message: naming it after the event
        // gives a retried delivery the same id, which receivers can dedupe.
        let message = Message {
            id: NotificationId::from(event.id.as_uuid()),
            ..message
        };
        // Every channel, or the event is retried (and the ones that did
        // take it hear it again, which beats one that never hears it).
        for channel in &self.channels {
            channel.send(&message).await?;
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_it_wants_is_one_that_is_published() {
        for event_type in super::TOLD {
            assert!(contracts::is_published_type(event_type), "{event_type}");
        }
    }

    /// `contracts/consumers/notification.json` states what this context reads
    /// from each event it wants, checked against the producers' schemas
    /// by the contracts crate; it must name exactly these events.
    #[test]
    fn its_published_expectations_name_exactly_the_events_it_wants() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../contracts/consumers/notification.json"
        ))
        .unwrap();
        let named: std::collections::BTreeSet<&str> =
            expectations.event_types().into_iter().collect();
        assert_eq!(named, super::TOLD.iter().copied().collect());
    }

    use std::sync::Mutex;

    use contracts::catalog::ListingKind;
    use contracts::payment::Charge;
    use contracts::reservation::{Booking, PaymentMethod};
    use kernel::ids::{ListingId, PaymentId, ReservationId, UserId};
    use kernel::Money;
    use runtime::store::sqlite_url;
    use runtime::Store;

    use super::*;
    use crate::store::MIGRATIONS;

    /// A channel that keeps what it was given, or fails when told to.
    #[derive(Default)]
    struct Recording {
        sent: Mutex<Vec<Message>>,
        failing: bool,
    }

    #[async_trait]
    impl Channel for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }

        async fn send(&self, message: &Message) -> anyhow::Result<()> {
            anyhow::ensure!(!self.failing, "the channel is down");
            self.sent.lock().unwrap().push(message.clone());
            Ok(())
        }
    }

    fn booking(user: UserId) -> Booking {
        Booking {
            reservation_id: ReservationId::new(),
            user_id: user,
            listing_id: ListingId::new(),
            listing_title: "LALALand".into(),
            listing_kind: ListingKind::Movie,
            quantity: 2,
            seats: Vec::new(),
            amount: Money::parse(15_000).unwrap(),
            payment_method: PaymentMethod::Card,
        }
    }

    #[tokio::test]
    async fn confirmations_and_refunds_go_through_every_channel_and_are_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "notification"), MIGRATIONS)
            .await
            .unwrap();
        let notifications = Notifications::new(store.clone());
        let first = Arc::new(Recording::default());
        let second = Arc::new(Recording::default());
        let policy =
            NotificationPolicy::new(notifications.clone(), vec![first.clone(), second.clone()]);
        let user = UserId::new();
        let booking = booking(user);
        let confirmed = ReservationEvent::ReservationConfirmed {
            booking: booking.clone(),
            confirmed_at: kernel::now(),
        }
        .to_envelope();
        let refunded = PaymentEvent::PaymentRefunded {
            charge: Charge {
                payment_id: PaymentId::new(),
                user_id: user,
                amount: booking.amount,
                reservation_id: Some(booking.reservation_id),
            },
            refunded_at: kernel::now(),
        }
        .to_envelope();
        let mut tx = store.begin().await.unwrap();
        policy.handle(&mut tx, &confirmed).await.unwrap();
        policy.handle(&mut tx, &refunded).await.unwrap();
        store.commit(tx).await.unwrap();

        assert_eq!(first.sent.lock().unwrap().len(), 2);
        assert_eq!(*first.sent.lock().unwrap(), *second.sent.lock().unwrap());
        let listed = notifications
            .list(Some(user.to_string()), None, 10)
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<&str> = listed.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds.len(), 2);
        assert!(kinds.contains(&"reserved") && kinds.contains(&"refunded"));
        assert!(listed.iter().all(|n| n.channel == "recording+recording"));
        assert!(listed.iter().any(|n| n.id == refunded.id.to_string()));
    }

    #[tokio::test]
    async fn a_channel_that_fails_fails_the_event_so_it_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&sqlite_url(dir.path(), "notification"), MIGRATIONS)
            .await
            .unwrap();
        let down = Arc::new(Recording {
            failing: true,
            ..Recording::default()
        });
        let policy = NotificationPolicy::new(Notifications::new(store.clone()), vec![down]);
        let cancelled = ReservationEvent::ReservationCancelled {
            booking: booking(UserId::new()),
            cancelled_at: kernel::now(),
        }
        .to_envelope();
        let mut tx = store.begin().await.unwrap();
        assert!(policy.handle(&mut tx, &cancelled).await.is_err());
    }
}

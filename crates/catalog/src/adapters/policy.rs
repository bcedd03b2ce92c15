//! The inventory policy: a placed reservation holds tickets or seats, a
//! confirmed one sells them, and one that ends otherwise (rejected,
//! expired, cancelled) gives them back.

use async_trait::async_trait;
use contracts::reservation::ReservationEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::{handling_async, EventHandler};
use runtime::store::Tx;

use super::sql::{Inventory, Listings};

pub struct InventoryPolicy {
    listings: Listings,
}

impl InventoryPolicy {
    pub fn new(listings: Listings) -> InventoryPolicy {
        InventoryPolicy { listings }
    }
}

#[async_trait]
impl EventHandler for InventoryPolicy {
    async fn prepare(&self, tx: &mut Tx, events: &[&Envelope]) -> anyhow::Result<()> {
        // Every reservation event may change inventory now (a confirmation
        // sells, a rejection releases), so each locks its listing.
        // Unreadable ones are reported by `handle`, one at a time.
        let listings = events
            .iter()
            .filter_map(|event| ReservationEvent::from_envelope(event).ok().flatten())
            .map(|event| event.booking().listing_id)
            .collect();
        self.listings.lock_in_order(tx, listings).await
    }

    async fn handle(&self, tx: &mut Tx, event: &Envelope) -> anyhow::Result<()> {
        let mut inventory = Inventory::default();
        self.apply(tx, &mut inventory, event).await?;
        inventory.write(tx).await
    }

    /// The batch's events change the inventory in memory, one after the
    /// other, each in its own span; what they changed is written once.
    async fn handle_batch(
        &self,
        tx: &mut Tx,
        events: &[&Envelope],
        group: &str,
    ) -> anyhow::Result<()> {
        let mut inventory = Inventory::default();
        // Every reservation event asks for its hold: read them at once.
        // Unreadable events are reported by `apply`, in their turn.
        let reservations = events
            .iter()
            .filter_map(|event| ReservationEvent::from_envelope(event).ok().flatten())
            .map(|event| event.booking().reservation_id);
        self.listings
            .read_holds(tx, &mut inventory, reservations)
            .await?;
        for event in events {
            handling_async(group, event, self.apply(tx, &mut inventory, event)).await?;
        }
        inventory.write(tx).await
    }
}

impl InventoryPolicy {
    async fn apply(
        &self,
        tx: &mut Tx,
        inventory: &mut Inventory,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        match ReservationEvent::from_envelope(event)? {
            Some(ReservationEvent::ReservationPlaced { booking, .. }) => {
                self.listings.hold(tx, inventory, &booking, event).await
            }
            Some(ReservationEvent::ReservationConfirmed { booking, .. }) => {
                self.listings
                    .sell(tx, inventory, booking.reservation_id, event)
                    .await
            }
            Some(
                ReservationEvent::ReservationRejected { booking, .. }
                | ReservationEvent::ReservationExpired { booking, .. }
                | ReservationEvent::ReservationCancelled { booking, .. }
                | ReservationEvent::ReservationReturned { booking, .. },
            ) => {
                self.listings
                    .release(tx, inventory, booking.reservation_id, event)
                    .await
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use contracts::reservation::ReservationEvent;
    use contracts::IntegrationEvent;

    /// `contracts/consumers/catalog.json` states what the inventory policy
    /// reads from each event, checked against the producers' schemas by the
    /// contracts crate. The policy acts on every reservation event (each
    /// moves inventory), so the file must name each of them.
    #[test]
    fn its_published_expectations_name_every_reservation_event() {
        let expectations = contracts::expectations::Consumer::parse(include_str!(
            "../../../../contracts/consumers/catalog.json"
        ))
        .unwrap();
        assert_eq!(
            expectations.event_types(),
            ReservationEvent::TYPES.iter().copied().collect()
        );
    }
}

//! The inventory policy: a placed reservation holds tickets, a cancelled
//! one releases them.

use async_trait::async_trait;
use contracts::reservation::ReservationEvent;
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::EventHandler;
use sqlx::{Any, Transaction};

use super::sql::Listings;

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
    async fn prepare(
        &self,
        tx: &mut Transaction<'static, Any>,
        events: &[&Envelope],
    ) -> anyhow::Result<()> {
        let mut listings = Vec::new();
        for event in events {
            // Unreadable ones are reported by `handle`, one at a time.
            if let Ok(Some(
                ReservationEvent::ReservationPlaced { booking, .. }
                | ReservationEvent::ReservationCancelled { booking, .. }
                | ReservationEvent::ReservationExpired { booking, .. },
            )) = ReservationEvent::from_envelope(event)
            {
                listings.push(booking.listing_id);
            }
        }
        self.listings.lock_in_order(tx, listings).await
    }

    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        match ReservationEvent::from_envelope(event)? {
            Some(ReservationEvent::ReservationPlaced { booking, .. }) => {
                self.listings.hold(tx, &booking, event).await
            }
            Some(
                ReservationEvent::ReservationCancelled { booking, .. }
                | ReservationEvent::ReservationExpired { booking, .. },
            ) => {
                self.listings
                    .release(tx, booking.reservation_id, event)
                    .await
            }
            // Confirmations and rejections change no inventory.
            Some(ReservationEvent::ReservationConfirmed { .. })
            | Some(ReservationEvent::ReservationRejected { .. })
            | None => Ok(()),
        }
    }
}

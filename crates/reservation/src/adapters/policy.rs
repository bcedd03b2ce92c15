//! The saga policy: catalog's answers move reservations on, and catalog's
//! listing events keep the local listing replica current.

use async_trait::async_trait;
use contracts::catalog::{CapacityKind, CatalogEvent};
use contracts::IntegrationEvent;
use kernel::Envelope;
use runtime::consumer::EventHandler;
use sqlx::{Any, Transaction};

use crate::app::Reservations;
use crate::domain::{Command, ListingSnapshot};

pub struct SagaPolicy {
    reservations: Reservations,
}

impl SagaPolicy {
    pub fn new(reservations: Reservations) -> SagaPolicy {
        SagaPolicy { reservations }
    }
}

#[async_trait]
impl EventHandler for SagaPolicy {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Any>,
        event: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(catalog_event) = CatalogEvent::from_envelope(event)? else {
            return Ok(());
        };
        let at = kernel::now();
        match catalog_event {
            CatalogEvent::ListingRegistered {
                listing_id,
                kind,
                title,
                price,
                capacity,
                ..
            } => {
                let seats = match capacity {
                    CapacityKind::Quota { .. } | CapacityKind::Unit => None,
                    CapacityKind::Seated { seats, .. } => Some(seats),
                };
                let listing = ListingSnapshot {
                    id: listing_id,
                    kind,
                    title,
                    price,
                    seats,
                };
                self.reservations
                    .store()
                    .remember_listing(tx, &listing)
                    .await
            }
            CatalogEvent::TicketsReserved { reservation_id, .. } => {
                self.reservations
                    .on_catalog_answer(tx, reservation_id, Command::ConfirmHold { at }, event)
                    .await
            }
            CatalogEvent::InventoryRejected {
                reservation_id,
                reason,
                ..
            } => {
                let command = Command::RejectHold {
                    reason: reason.to_string(),
                    at,
                };
                self.reservations
                    .on_catalog_answer(tx, reservation_id, command, event)
                    .await
            }
            // Releases need no answer: the reservation is already cancelled.
            CatalogEvent::InventoryReleased { .. }
            | CatalogEvent::InventorySold { .. }
            | CatalogEvent::ListingUpdated { .. }
            | CatalogEvent::ListingWithdrawn { .. }
            | CatalogEvent::ScreenRegistered { .. }
            | CatalogEvent::ScreenAssigned { .. } => Ok(()),
        }
    }
}

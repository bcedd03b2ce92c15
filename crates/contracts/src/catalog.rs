//! Events of the catalog context: listings and their inventory.

use kernel::ids::{ListingId, ReservationId};
use kernel::Money;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{topics, IntegrationEvent};

/// What can be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingKind {
    Movie,
    Musical,
    Bike,
}

impl ListingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListingKind::Movie => "movie",
            ListingKind::Musical => "musical",
            ListingKind::Bike => "bike",
        }
    }
}

/// How a listing's inventory is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CapacityKind {
    /// A number of interchangeable tickets.
    Quota { total: u32 },
}

/// Why inventory could not be held for a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "camelCase")]
pub enum InventoryRejection {
    #[serde(rename_all = "camelCase")]
    SoldOut {
        requested: u32,
        remaining: u32,
    },
    UnknownListing,
}

impl std::fmt::Display for InventoryRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InventoryRejection::SoldOut {
                requested,
                remaining,
            } => write!(
                f,
                "sold out: {requested} tickets requested, {remaining} remaining"
            ),
            InventoryRejection::UnknownListing => write!(f, "the listing does not exist"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    #[serde(
        rename = "boxoffice.catalog.listing-registered",
        rename_all = "camelCase"
    )]
    ListingRegistered {
        listing_id: ListingId,
        kind: ListingKind,
        title: String,
        description: String,
        price: Money,
        capacity: CapacityKind,
        #[serde(with = "time::serde::rfc3339")]
        registered_at: OffsetDateTime,
    },
    #[serde(
        rename = "boxoffice.catalog.tickets-reserved",
        rename_all = "camelCase"
    )]
    TicketsReserved {
        reservation_id: ReservationId,
        listing_id: ListingId,
        quantity: u32,
        available: u32,
    },
    #[serde(
        rename = "boxoffice.catalog.inventory-rejected",
        rename_all = "camelCase"
    )]
    InventoryRejected {
        reservation_id: ReservationId,
        listing_id: ListingId,
        reason: InventoryRejection,
    },
    #[serde(
        rename = "boxoffice.catalog.inventory-released",
        rename_all = "camelCase"
    )]
    InventoryReleased {
        reservation_id: ReservationId,
        listing_id: ListingId,
        quantity: u32,
        available: u32,
    },
}

impl IntegrationEvent for CatalogEvent {
    const TOPIC: &'static str = topics::CATALOG;
    const SOURCE: &'static str = "/boxoffice/catalog";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.catalog.listing-registered",
        "boxoffice.catalog.tickets-reserved",
        "boxoffice.catalog.inventory-rejected",
        "boxoffice.catalog.inventory-released",
    ];

    /// Inventory events are keyed by the listing so one listing's stock
    /// changes stay in order; listing events likewise.
    fn subject(&self) -> String {
        match self {
            CatalogEvent::ListingRegistered { listing_id, .. }
            | CatalogEvent::TicketsReserved { listing_id, .. }
            | CatalogEvent::InventoryRejected { listing_id, .. }
            | CatalogEvent::InventoryReleased { listing_id, .. } => listing_id.to_string(),
        }
    }

    fn correlation(&self) -> String {
        match self {
            CatalogEvent::ListingRegistered { listing_id, .. } => listing_id.to_string(),
            CatalogEvent::TicketsReserved { reservation_id, .. }
            | CatalogEvent::InventoryRejected { reservation_id, .. }
            | CatalogEvent::InventoryReleased { reservation_id, .. } => reservation_id.to_string(),
        }
    }
}

//! Events of the catalog context: listings and their inventory.

use kernel::envelope::Rfc3339;
use kernel::ids::{ListingId, ReservationId, ScreenId};
use kernel::{Money, SeatLabel};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{topics, IntegrationEvent, Routing};

/// A listing's own event: keyed and correlated by the listing.
const fn by_listing(event_type: &'static str) -> Routing {
    Routing {
        event_type,
        key: &["/listingId"],
        correlation: &["/listingId"],
    }
}

/// A booking's inventory: keyed by the listing (one listing's stock
/// changes in order), correlated by the booking's saga.
const fn inventory_of_booking(event_type: &'static str) -> Routing {
    Routing {
        event_type,
        key: &["/listingId"],
        correlation: &["/reservationId"],
    }
}

/// What can be booked.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CapacityKind {
    /// A number of interchangeable tickets.
    Quota { total: u32 },
    /// Assigned seats: every seat that can be sold, by label (blocked seats
    /// of the screen are not among them). `total` is their number.
    Seated {
        total: u32,
        seats: Vec<SeatLabel>,
        /// Parts of the seat map sold at their own price; a seat in no
        /// section costs the listing's price.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sections: Vec<SeatSection>,
    },
    /// One thing lent to one customer at a time (a bike).
    Unit,
}

/// Seats sold at a price of their own (e.g. VIP rows of a musical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatSection {
    pub name: String,
    pub price: Money,
    pub seats: Vec<SeatLabel>,
}

impl CapacityKind {
    /// What one seat costs: its section's price, or `base`.
    pub fn seat_price(&self, seat: SeatLabel, base: Money) -> Money {
        match self {
            CapacityKind::Seated { sections, .. } => sections
                .iter()
                .find(|section| section.seats.contains(&seat))
                .map_or(base, |section| section.price),
            CapacityKind::Quota { .. } | CapacityKind::Unit => base,
        }
    }
}

/// Why inventory could not be held for a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "code", rename_all = "camelCase")]
pub enum InventoryRejection {
    #[serde(rename_all = "camelCase")]
    SoldOut {
        requested: u32,
        remaining: u32,
    },
    UnknownListing,
    /// Someone else holds or bought these seats.
    SeatTaken {
        seats: Vec<SeatLabel>,
    },
    /// The bike (or other unit) is out with another customer.
    InUse,
    /// The listing was withdrawn from sale.
    Withdrawn,
    /// The listing has no such seats.
    UnknownSeats {
        seats: Vec<SeatLabel>,
    },
    /// The booking does not fit how the listing is sold (seats named for a
    /// ticket quota, or none for a seated showing).
    Unsuitable {
        detail: String,
    },
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
            InventoryRejection::SeatTaken { seats } if seats.len() == 1 => {
                write!(
                    f,
                    "seat unavailable: {} is taken",
                    kernel::seat::list(seats)
                )
            }
            InventoryRejection::SeatTaken { seats } => {
                write!(
                    f,
                    "seats unavailable: {} are taken",
                    kernel::seat::list(seats)
                )
            }
            InventoryRejection::InUse => write!(f, "unavailable: it is rented out"),
            InventoryRejection::Withdrawn => write!(f, "the listing is no longer sold"),
            InventoryRejection::UnknownSeats { seats } => {
                write!(f, "no seat {} on this listing", kernel::seat::list(seats))
            }
            InventoryRejection::Unsuitable { detail } => f.write_str(detail),
        }
    }
}

/// What the catalog publishes: listings and screens as admins register
/// and change them, and each booking's inventory held, sold, refused and
/// given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum CatalogEvent {
    /// An admin registered a listing: it is on sale from now on.
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
        /// When the showing starts, for listings that have a start.
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "Option<Rfc3339>")]
        starts_at: Option<OffsetDateTime>,
        /// A bike's colour.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
        /// A bike's number as people know it: 1, 2, … never reused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<u32>,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        registered_at: OffsetDateTime,
    },
    /// An admin changed a listing. Carries every field that can change, as
    /// it is now (state transfer), so a consumer never has to merge.
    #[serde(rename = "boxoffice.catalog.listing-updated", rename_all = "camelCase")]
    ListingUpdated {
        listing_id: ListingId,
        title: String,
        description: String,
        price: Money,
        capacity: CapacityKind,
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "Option<Rfc3339>")]
        starts_at: Option<OffsetDateTime>,
        /// A bike's colour.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        updated_at: OffsetDateTime,
    },
    /// An admin deleted a listing: it is no longer sold. With
    /// `cancel_reservations`, every live booking of it is to be cancelled
    /// and refunded (the reservation context does it through its saga).
    #[serde(
        rename = "boxoffice.catalog.listing-withdrawn",
        rename_all = "camelCase"
    )]
    ListingWithdrawn {
        listing_id: ListingId,
        cancel_reservations: bool,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        withdrawn_at: OffsetDateTime,
    },
    /// A screen (hall) was added to the registry.
    #[serde(
        rename = "boxoffice.catalog.screen-registered",
        rename_all = "camelCase"
    )]
    ScreenRegistered {
        screen_id: ScreenId,
        name: String,
        rows: u8,
        seats_per_row: u8,
        blocked: Vec<SeatLabel>,
        #[serde(with = "time::serde::rfc3339")]
        #[schemars(with = "Rfc3339")]
        registered_at: OffsetDateTime,
    },
    /// A seated movie showing was given its screen; its seats are the
    /// screen's. Published with the listing's registration.
    #[serde(rename = "boxoffice.catalog.screen-assigned", rename_all = "camelCase")]
    ScreenAssigned {
        listing_id: ListingId,
        screen_id: ScreenId,
        screen_name: String,
    },
    /// Inventory was held for a placed booking, until it is confirmed
    /// (sold) or given back. `available` is what is left to sell.
    #[serde(
        rename = "boxoffice.catalog.tickets-reserved",
        rename_all = "camelCase"
    )]
    TicketsReserved {
        reservation_id: ReservationId,
        listing_id: ListingId,
        quantity: u32,
        /// The seats held, for a seated listing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seats: Vec<SeatLabel>,
        available: u32,
    },
    /// A held booking was confirmed: its tickets or seats are sold.
    #[serde(rename = "boxoffice.catalog.inventory-sold", rename_all = "camelCase")]
    InventorySold {
        reservation_id: ReservationId,
        listing_id: ListingId,
        quantity: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seats: Vec<SeatLabel>,
    },
    /// No inventory could be held for a placed booking: `reason` says why.
    #[serde(
        rename = "boxoffice.catalog.inventory-rejected",
        rename_all = "camelCase"
    )]
    InventoryRejected {
        reservation_id: ReservationId,
        listing_id: ListingId,
        reason: InventoryRejection,
    },
    /// Held or sold inventory went back on sale (the booking was rejected,
    /// expired, cancelled or returned). `available` is what is left to sell.
    #[serde(
        rename = "boxoffice.catalog.inventory-released",
        rename_all = "camelCase"
    )]
    InventoryReleased {
        reservation_id: ReservationId,
        listing_id: ListingId,
        quantity: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seats: Vec<SeatLabel>,
        available: u32,
    },
}

impl IntegrationEvent for CatalogEvent {
    const TOPIC: &'static str = topics::CATALOG;
    const SOURCE: &'static str = "/boxoffice/catalog";
    const TYPES: &'static [&'static str] = &[
        "boxoffice.catalog.listing-registered",
        "boxoffice.catalog.listing-updated",
        "boxoffice.catalog.listing-withdrawn",
        "boxoffice.catalog.screen-registered",
        "boxoffice.catalog.screen-assigned",
        "boxoffice.catalog.tickets-reserved",
        "boxoffice.catalog.inventory-sold",
        "boxoffice.catalog.inventory-rejected",
        "boxoffice.catalog.inventory-released",
    ];
    const ROUTING: &'static [Routing] = &[
        by_listing("boxoffice.catalog.listing-registered"),
        by_listing("boxoffice.catalog.listing-updated"),
        by_listing("boxoffice.catalog.listing-withdrawn"),
        Routing {
            event_type: "boxoffice.catalog.screen-registered",
            key: &["/screenId"],
            correlation: &["/screenId"],
        },
        by_listing("boxoffice.catalog.screen-assigned"),
        inventory_of_booking("boxoffice.catalog.tickets-reserved"),
        inventory_of_booking("boxoffice.catalog.inventory-sold"),
        inventory_of_booking("boxoffice.catalog.inventory-rejected"),
        inventory_of_booking("boxoffice.catalog.inventory-released"),
    ];

    /// Inventory events are keyed by the listing so one listing's stock
    /// changes stay in order; listing events likewise; screens by screen.
    fn subject(&self) -> String {
        match self {
            CatalogEvent::ScreenRegistered { screen_id, .. } => screen_id.to_string(),
            CatalogEvent::ListingRegistered { listing_id, .. }
            | CatalogEvent::ListingUpdated { listing_id, .. }
            | CatalogEvent::ListingWithdrawn { listing_id, .. }
            | CatalogEvent::ScreenAssigned { listing_id, .. }
            | CatalogEvent::TicketsReserved { listing_id, .. }
            | CatalogEvent::InventorySold { listing_id, .. }
            | CatalogEvent::InventoryRejected { listing_id, .. }
            | CatalogEvent::InventoryReleased { listing_id, .. } => listing_id.to_string(),
        }
    }

    fn correlation(&self) -> String {
        match self {
            CatalogEvent::ScreenRegistered { screen_id, .. } => screen_id.to_string(),
            CatalogEvent::ListingRegistered { listing_id, .. }
            | CatalogEvent::ListingUpdated { listing_id, .. }
            | CatalogEvent::ListingWithdrawn { listing_id, .. }
            | CatalogEvent::ScreenAssigned { listing_id, .. } => listing_id.to_string(),
            CatalogEvent::TicketsReserved { reservation_id, .. }
            | CatalogEvent::InventorySold { reservation_id, .. }
            | CatalogEvent::InventoryRejected { reservation_id, .. }
            | CatalogEvent::InventoryReleased { reservation_id, .. } => reservation_id.to_string(),
        }
    }
}

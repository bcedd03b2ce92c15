//! Asks catalog about a listing the replica has not heard of yet (a listing
//! booked the moment after it was registered, before its event arrived).

use std::sync::Arc;
use std::time::Duration;

use contracts::catalog::{ListingKind, SeatSection};
use kernel::ids::ListingId;
use kernel::{Money, SeatLabel};
use runtime::replicas::Replicas;
use serde::Deserialize;

use crate::domain::ListingSnapshot;

#[derive(Clone, Debug)]
pub struct CatalogClient {
    http: reqwest::Client,
    /// Catalog's replicas: a lookup goes to the next that takes the connection.
    replicas: Arc<Replicas>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("catalog is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListingView {
    id: ListingId,
    kind: ListingKind,
    title: String,
    price: i64,
    capacity: CapacityView,
}

#[derive(Deserialize)]
struct CapacityView {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SeatView {
    label: SeatLabel,
    /// The seat's section, when it is in one, and then its price.
    #[serde(default)]
    section: Option<String>,
    #[serde(default)]
    price: Option<i64>,
}

/// The sections of a seat map, gathered from its seats.
fn sections(seats: &[SeatView]) -> Result<Vec<SeatSection>, LookupError> {
    let mut sections: Vec<SeatSection> = Vec::new();
    for seat in seats {
        let (Some(name), Some(price)) = (&seat.section, seat.price) else {
            continue;
        };
        match sections.iter_mut().find(|section| &section.name == name) {
            Some(section) => section.seats.push(seat.label),
            None => sections.push(SeatSection {
                name: name.clone(),
                price: Money::parse(price).map_err(|e| LookupError::Unavailable(e.to_string()))?,
                seats: vec![seat.label],
            }),
        }
    }
    Ok(sections)
}

impl CatalogClient {
    pub fn new(base_url: &str) -> CatalogClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client always builds");
        CatalogClient {
            http,
            replicas: Arc::new(Replicas::new(base_url)),
        }
    }

    /// `Ok(None)` when catalog says there is no such listing.
    pub async fn listing(&self, id: ListingId) -> Result<Option<ListingSnapshot>, LookupError> {
        let unavailable = |e: reqwest::Error| LookupError::Unavailable(e.to_string());
        let response = self
            .replicas
            .connect(|base| {
                runtime::in_process::send(
                    self.http
                        .get(format!("{base}/listings/{id}"))
                        .headers(runtime::telemetry::outgoing_headers()),
                )
            })
            .await
            .map_err(unavailable)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(LookupError::Unavailable(format!(
                "status {}",
                response.status()
            )));
        }
        let view: ListingView = response.json().await.map_err(unavailable)?;
        let price =
            Money::parse(view.price).map_err(|e| LookupError::Unavailable(e.to_string()))?;
        let (seats, sections) = if view.capacity.kind == "seated" {
            let seats: Vec<SeatView> = self
                .replicas
                .connect(|base| {
                    runtime::in_process::send(
                        self.http
                            .get(format!("{base}/listings/{id}/seats"))
                            .headers(runtime::telemetry::outgoing_headers()),
                    )
                })
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(unavailable)?
                .json()
                .await
                .map_err(unavailable)?;
            let sections = sections(&seats)?;
            (
                Some(seats.into_iter().map(|seat| seat.label).collect()),
                sections,
            )
        } else {
            (None, Vec::new())
        };
        Ok(Some(ListingSnapshot {
            id: view.id,
            kind: view.kind,
            title: view.title,
            price,
            seats,
            sections,
            withdrawn: false,
        }))
    }
}

//! The my-page view in a key-value store (redb embedded, Redis
//! distributed): the key-value adapter of [`crate::view`].
//!
//! Every read is by key, so each thing my-page knows is one value:
//!
//! | key | value |
//! |---|---|
//! | `r:{reservation}` | the booking as last projected, with its history |
//! | `l:{listing}` | the listing's title, start and screen |
//! | `p:{reservation}` | where the booking's payment stands |
//! | `pt:{reservation}` | the points it earned, lost, spent, got back |
//! | `u:{user}` | the user's reservation ids |
//!
//! A fact arriving before its booking is kept under its own key and joins
//! the booking when read, as the SQL adapter's tables do. A listing's
//! title is joined when read too (the SQL adapter copies a new title onto
//! every booking of the listing; here a rename writes one key however many
//! bookings the listing has).

use async_trait::async_trait;
use kernel::ids::ReservationId;
use kv::{KvStore, KvTx};
use runtime::http::timestamp;
use serde::{Deserialize, Serialize};

use crate::projection::{supersedes, ListingFact, MyReservationRow, PaymentStep, PointsChange};
use crate::store::payment_method_str;
use crate::view::{
    HistoryView, MyReservationDetail, MyReservationView, PaymentView, PointsView, Projection,
    ScreenView, View,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBooking {
    user_id: String,
    listing_id: String,
    title: String,
    kind: String,
    quantity: i64,
    seats: Vec<String>,
    amount: i64,
    payment_method: String,
    status: String,
    updated_at: String,
    version: u64,
    /// Each status once, with the version that brought it.
    history: Vec<(u64, String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredListing {
    title: Option<String>,
    starts_at: Option<String>,
    screen_id: Option<String>,
    screen_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPayment {
    status: String,
    stage: i64,
    updated_at: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct StoredPoints {
    earned: i64,
    withdrawn: i64,
    spent: i64,
    refunded: i64,
}

fn booking_key(id: &str) -> String {
    format!("r:{id}")
}
fn listing_key(id: &str) -> String {
    format!("l:{id}")
}
fn payment_key(id: &str) -> String {
    format!("p:{id}")
}
fn points_key(id: &str) -> String {
    format!("pt:{id}")
}
fn user_key(id: &str) -> String {
    format!("u:{id}")
}

#[derive(Clone, Debug)]
pub struct KvReservations {
    store: KvStore,
}

impl KvReservations {
    pub fn new(store: KvStore) -> KvReservations {
        KvReservations { store }
    }

    /// The listing's current title over the one the booking was placed with.
    fn title(booking: &StoredBooking, listing: Option<&StoredListing>) -> String {
        listing
            .and_then(|listing| listing.title.clone())
            .unwrap_or_else(|| booking.title.clone())
    }
}

#[async_trait]
impl Projection for KvReservations {
    type Tx = KvTx;

    async fn upsert(&self, tx: &mut KvTx, row: &MyReservationRow) -> anyhow::Result<()> {
        let booking = &row.booking;
        let id = booking.reservation_id.to_string();
        let key = booking_key(&id);
        let held: Option<StoredBooking> = tx.get_json(&key).await?;
        let entry = row.history_entry();
        let entry = (entry.version, entry.status.to_owned(), timestamp(entry.at));
        let stored = match held {
            Some(mut held) => {
                if supersedes(held.version, row.version) {
                    held.status = row.status.to_owned();
                    held.updated_at = timestamp(row.updated_at);
                    held.version = row.version;
                    held.seats = booking.seats.iter().map(ToString::to_string).collect();
                    held.payment_method = payment_method_str(booking.payment_method).to_owned();
                }
                if !held
                    .history
                    .iter()
                    .any(|(version, status, _)| (*version, status) == (entry.0, &entry.1))
                {
                    held.history.push(entry);
                    // In the order the SQL adapter reads it: by version, then time.
                    held.history
                        .sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
                }
                held
            }
            None => {
                let user = booking.user_id.to_string();
                let mut mine: Vec<String> =
                    tx.get_json(&user_key(&user)).await?.unwrap_or_default();
                mine.push(id.clone());
                tx.put_json(&user_key(&user), &mine)?;
                StoredBooking {
                    user_id: user,
                    listing_id: booking.listing_id.to_string(),
                    title: booking.listing_title.clone(),
                    kind: booking.listing_kind.as_str().to_owned(),
                    quantity: i64::from(booking.quantity),
                    seats: booking.seats.iter().map(ToString::to_string).collect(),
                    amount: booking.amount.minor_units(),
                    payment_method: payment_method_str(booking.payment_method).to_owned(),
                    status: row.status.to_owned(),
                    updated_at: timestamp(row.updated_at),
                    version: row.version,
                    history: vec![entry],
                }
            }
        };
        tx.put_json(&key, &stored)
    }

    async fn record_payment(&self, tx: &mut KvTx, step: &PaymentStep) -> anyhow::Result<()> {
        let key = payment_key(&step.reservation_id.to_string());
        let held: Option<StoredPayment> = tx.get_json(&key).await?;
        if held.is_some_and(|held| held.stage >= step.status.stage()) {
            return Ok(());
        }
        tx.put_json(
            &key,
            &StoredPayment {
                status: step.status.as_str().to_owned(),
                stage: step.status.stage(),
                updated_at: timestamp(step.at),
            },
        )
    }

    async fn record_points(&self, tx: &mut KvTx, change: &PointsChange) -> anyhow::Result<()> {
        let (reservation, points) = match change {
            PointsChange::Earned {
                reservation_id,
                points,
            }
            | PointsChange::Withdrawn {
                reservation_id,
                points,
            }
            | PointsChange::Spent {
                reservation_id,
                points,
            }
            | PointsChange::Refunded {
                reservation_id,
                points,
            } => (reservation_id, i64::try_from(*points)?),
        };
        let key = points_key(&reservation.to_string());
        let mut held: StoredPoints = tx.get_json(&key).await?.unwrap_or_default();
        match change {
            PointsChange::Earned { .. } => held.earned = points,
            PointsChange::Withdrawn { .. } => held.withdrawn = points,
            PointsChange::Spent { .. } => held.spent = points,
            PointsChange::Refunded { .. } => held.refunded = points,
        }
        tx.put_json(&key, &held)
    }

    async fn record_listing(&self, tx: &mut KvTx, fact: &ListingFact) -> anyhow::Result<()> {
        let listing_id = match fact {
            ListingFact::Changed { listing_id, .. }
            | ListingFact::Starts { listing_id, .. }
            | ListingFact::Screen { listing_id, .. } => listing_id.to_string(),
        };
        let key = listing_key(&listing_id);
        let mut held: StoredListing = tx.get_json(&key).await?.unwrap_or_default();
        match fact {
            ListingFact::Changed {
                title, starts_at, ..
            } => {
                held.title = Some(title.clone());
                held.starts_at = starts_at.map(timestamp);
            }
            ListingFact::Starts { starts_at, .. } => held.starts_at = starts_at.map(timestamp),
            ListingFact::Screen {
                screen_id, name, ..
            } => {
                held.screen_id = Some(screen_id.to_string());
                held.screen_name = Some(name.clone());
            }
        }
        tx.put_json(&key, &held)
    }
}

#[async_trait]
impl View for KvReservations {
    async fn find(
        &self,
        reservation: ReservationId,
        owner: Option<String>,
    ) -> anyhow::Result<Option<MyReservationDetail>> {
        let id = reservation.to_string();
        let Some(booking) = self
            .store
            .get_json::<StoredBooking>(&booking_key(&id))
            .await?
        else {
            return Ok(None);
        };
        if owner.is_some_and(|owner| owner != booking.user_id) {
            return Ok(None);
        }
        // One round trip for what other contexts said about it.
        let keys = [
            listing_key(&booking.listing_id),
            payment_key(&id),
            points_key(&id),
        ];
        let mut values = self
            .store
            .get_many_json::<serde_json::Value>(&keys)
            .await?
            .into_iter();
        let mut next = || values.next().flatten();
        let listing: Option<StoredListing> = next().map(serde_json::from_value).transpose()?;
        let payment: Option<StoredPayment> = next().map(serde_json::from_value).transpose()?;
        let points: StoredPoints = next()
            .map(serde_json::from_value)
            .transpose()?
            .unwrap_or_default();
        let listing = listing.as_ref();
        Ok(Some(MyReservationDetail {
            reservation_id: id,
            listing_id: booking.listing_id.clone(),
            title: Self::title(&booking, listing),
            kind: booking.kind.clone(),
            screen: listing.and_then(|listing| {
                Some(ScreenView {
                    id: listing.screen_id.clone()?,
                    name: listing.screen_name.clone()?,
                })
            }),
            starts_at: listing.and_then(|listing| listing.starts_at.clone()),
            quantity: booking.quantity,
            seats: booking.seats.clone(),
            amount: booking.amount,
            payment_method: booking.payment_method.clone(),
            payment: payment.map(|payment| PaymentView {
                status: payment.status,
            }),
            points: PointsView {
                earned: points.earned,
                withdrawn: points.withdrawn,
                spent: points.spent,
                refunded: points.refunded,
            },
            status: booking.status.clone(),
            history: booking
                .history
                .iter()
                .map(|(_, status, at)| HistoryView {
                    status: status.clone(),
                    at: at.clone(),
                })
                .collect(),
            updated_at: booking.updated_at,
        }))
    }

    async fn for_user(
        &self,
        user: &str,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<MyReservationView>>> {
        // Where the page continues: any booking of the view, as in SQL.
        let after = match after {
            None => None,
            Some(after) => match self
                .store
                .get_json::<StoredBooking>(&booking_key(&after))
                .await?
            {
                Some(booking) => Some((booking.updated_at, after)),
                None => return Ok(None),
            },
        };
        let mine: Vec<String> = self
            .store
            .get_json(&user_key(user))
            .await?
            .unwrap_or_default();
        let keys: Vec<String> = mine.iter().map(|id| booking_key(id)).collect();
        let bookings: Vec<Option<StoredBooking>> = self.store.get_many_json(&keys).await?;
        let mut rows: Vec<(String, StoredBooking)> = mine
            .into_iter()
            .zip(bookings)
            .filter_map(|(id, booking)| Some((id, booking?)))
            .collect();
        // Most recently changed first, the id breaking ties (the SQL order).
        rows.sort_by(|a, b| (&b.1.updated_at, &b.0).cmp(&(&a.1.updated_at, &a.0)));
        if let Some((at, id)) = &after {
            rows.retain(|(rid, booking)| (&booking.updated_at, rid) < (at, id));
        }
        rows.truncate(usize::try_from(limit.max(0))?);
        let listing_keys: Vec<String> = rows
            .iter()
            .map(|(_, booking)| listing_key(&booking.listing_id))
            .collect();
        let listings: Vec<Option<StoredListing>> = self.store.get_many_json(&listing_keys).await?;
        Ok(Some(
            rows.into_iter()
                .zip(listings)
                .map(|((id, booking), listing)| MyReservationView {
                    reservation_id: id,
                    title: Self::title(&booking, listing.as_ref()),
                    listing_id: booking.listing_id,
                    kind: booking.kind,
                    quantity: booking.quantity,
                    seats: booking.seats,
                    amount: booking.amount,
                    status: booking.status,
                    updated_at: booking.updated_at,
                })
                .collect(),
        ))
    }
}

//! Payments in the payment service's own database. Every change is written
//! with its event (outbox) in one transaction, guarded by a version so two
//! replicas settling the same payment record the outcome once.

use runtime::store::Tx;
use std::collections::{HashMap, HashSet};

use anyhow::Context;
use contracts::payment::{Charge, PaymentEvent};
use contracts::IntegrationEvent;
use kernel::bus::Outgoing;
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::Money;
use runtime::http::{parse_timestamp, timestamp};
use runtime::store::{
    fetch_by_keys, in_statements, plain_tuple, write_rows_counting, write_rows_returning, Listing,
    MigrationScript, Plan, RowValues,
};
use runtime::{outbox, Store};
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::domain::{Payment, Settlement, Status};

const SCHEMA: &str = "
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    reservation_id TEXT UNIQUE,
    user_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    pending TEXT,
    reason TEXT,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX payments_by_user ON payments (user_id, created_at);
CREATE INDEX payments_to_settle ON payments (pending, updated_at);";

/// The trace of the step that asked for a pending settlement, so that the
/// settler's work (and the events it writes) continue that booking's trace
/// rather than start one of their own. And the settler's scan indexed by
/// the pending payments alone: on `(pending, updated_at)` it read every
/// payment (0.9 ms a scan on PostgreSQL after a few thousand bookings, the
/// costliest statement of the distributed run; measured).
const PENDING_TRACE: &str = "
ALTER TABLE payments ADD COLUMN pending_traceparent TEXT;
DROP INDEX payments_to_settle;
CREATE INDEX payments_waiting ON payments (updated_at) WHERE pending IS NOT NULL;";

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "payment: payments",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description:
            "payment: the trace a pending settlement continues; pending ones indexed alone",
        sqlite: PENDING_TRACE,
        postgres: PENDING_TRACE,
    },
];

const COLUMNS: &str =
    "id, reservation_id, user_id, amount, status, pending, reason, version, created_at, updated_at";

const PAYMENTS: Listing = Listing {
    table: "payments",
    columns: COLUMNS,
    sort: "created_at",
    id: "id",
    newest_first: true,
};

/// A stored payment and the version it was read at.
pub type Versioned = (Payment, i64);

/// A settlement to record on a payment read at version `read_at`, which
/// it leaves at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub payment: PaymentId,
    pub settlement: Settlement,
    /// The trace of the step that asked for it, continued by the settler.
    pub traceparent: Option<String>,
    pub read_at: i64,
    pub version: i64,
}

/// A payment whose pending settlement the settler is to carry out.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub payment: Payment,
    pub version: i64,
    /// The W3C `traceparent` of the step that asked for the settlement.
    pub traceparent: Option<String>,
}

/// A settlement the provider carried out, to be recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    pub payment: Payment,
    pub version: i64,
    pub settlement: Settlement,
    /// The trace the settlement's event continues.
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PaymentStore {
    store: Store,
}

impl PaymentStore {
    pub fn new(store: Store) -> PaymentStore {
        PaymentStore { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores new payments with their events in one transaction; for each,
    /// `false` (nothing stored) when its booking already has one.
    pub async fn insert_all(&self, payments: &[(Payment, Outgoing)]) -> anyhow::Result<Vec<bool>> {
        let mut tx = self.store.begin().await?;
        // One statement for the group; it answers the payments it stored
        // (a booking that has one already stores nothing).
        let inserted = write_rows_returning(
            &mut tx,
            payments,
            11,
            &format!(
                "INSERT INTO payments ({COLUMNS}, pending_traceparent) VALUES {{values}}
                 ON CONFLICT (reservation_id) DO NOTHING RETURNING id"
            ),
            plain_tuple,
            |values, (payment, event)| {
                let traceparent = event.envelope.traceparent.clone();
                push_payment(values, payment, traceparent);
                Ok(())
            },
            Plan::Prepared,
        )
        .await
        .context("storing payments")?;
        let inserted: HashSet<String> = inserted
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let stored: Vec<bool> = payments
            .iter()
            .map(|(payment, _)| inserted.contains(&payment.id.to_string()))
            .collect();
        let events: Vec<Outgoing> = payments
            .iter()
            .zip(&stored)
            .filter(|(_, stored)| **stored)
            .map(|((_, event), _)| event.clone())
            .collect();
        outbox::append(&mut tx, &events).await?;
        self.store.commit(tx).await?;
        Ok(stored)
    }

    /// Stores a new charge (a sale for no booking) with its events in one
    /// transaction; `false` (nothing stored) when its payment id is taken
    /// already: a repeated request, or a cancel that came first.
    pub async fn insert_sale(
        &self,
        payment: &Payment,
        events: &[PaymentEvent],
    ) -> anyhow::Result<bool> {
        let mut tx = self.store.begin().await?;
        let trace = runtime::telemetry::traceparent();
        let inserted = insert_unless(&mut tx, payment, "id", trace.as_deref()).await?;
        if inserted {
            let events: Vec<_> = events.iter().map(|event| event.outgoing(None)).collect();
            outbox::append(&mut tx, &events).await?;
        }
        self.store.commit(tx).await?;
        Ok(inserted)
    }

    pub async fn find(&self, id: PaymentId) -> anyhow::Result<Option<Payment>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.store.reader())
            .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// A payment by its id, locked for change on PostgreSQL.
    pub async fn load(&self, tx: &mut Tx, id: PaymentId) -> anyhow::Result<Option<Versioned>> {
        let lock = self.store.for_update();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payments WHERE id = $1{lock}"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|row| Ok((from_row(&row)?, row.try_get("version")?)))
            .transpose()
    }

    /// A cancel for a charge that was never recorded (its caller gave up
    /// waiting): kept under the charge's own id so that the charge, if it
    /// arrives late, is refused and taken back. `false` when the id was
    /// taken meanwhile (the charge got there first).
    pub async fn insert_cancel_marker(
        &self,
        tx: &mut Tx,
        id: PaymentId,
        user: UserId,
        amount: Money,
    ) -> anyhow::Result<bool> {
        let now = timestamp(kernel::now());
        let inserted = sqlx::query(&format!(
            "INSERT INTO payments ({COLUMNS}) VALUES ($1, NULL, $2, $3, 'voided', NULL, $4, 1, $5, $5)
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(amount.minor_units())
        .bind("cancelled before the charge completed")
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub async fn find_for_booking(
        &self,
        reservation: ReservationId,
    ) -> anyhow::Result<Option<Payment>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payments WHERE reservation_id = $1"
        ))
        .bind(reservation.to_string())
        .fetch_optional(self.store.reader())
        .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// The booking's payment, locked for change on PostgreSQL.
    pub async fn load_for_booking(
        &self,
        tx: &mut Tx,
        reservation: ReservationId,
    ) -> anyhow::Result<Option<Versioned>> {
        let lock = self.store.for_update();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payments WHERE reservation_id = $1{lock}"
        ))
        .bind(reservation.to_string())
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|row| Ok((from_row(&row)?, row.try_get("version")?)))
            .transpose()
    }

    /// Records that `settlement` is wanted; the settler carries it out.
    /// The payment was read at `version` (see [`PaymentStore::request_all`]).
    pub async fn request(
        &self,
        tx: &mut Tx,
        payment: &Payment,
        version: i64,
        settlement: Settlement,
    ) -> anyhow::Result<()> {
        let request = Request {
            payment: payment.id,
            settlement,
            traceparent: runtime::telemetry::traceparent(),
            read_at: version,
            version: version + 1,
        };
        self.request_all(tx, &[request]).await
    }

    /// The payments of `bookings` that have one, locked for change on
    /// PostgreSQL in booking order (a batch's rows taken in one fixed
    /// order, across its slices too): one statement per slice, planned at
    /// each execution (a list of keys).
    pub async fn load_for_bookings(
        &self,
        tx: &mut Tx,
        mut bookings: Vec<ReservationId>,
    ) -> anyhow::Result<HashMap<ReservationId, Versioned>> {
        bookings.sort_unstable();
        bookings.dedup();
        let lock = self.store.for_update();
        let statement = format!(
            "SELECT {COLUMNS} FROM payments WHERE reservation_id IN ({{keys}})
             ORDER BY reservation_id{lock}"
        );
        let mut found = HashMap::new();
        for slice in in_statements(&bookings) {
            let rows = fetch_by_keys(tx, &statement, slice)
                .await
                .context("reading bookings' payments")?;
            for row in rows {
                let payment = from_row(&row)?;
                if let Some(booking) = payment.reservation_id {
                    found.insert(booking, (payment, row.try_get("version")?));
                }
            }
        }
        Ok(found)
    }

    /// Records the settlements `requests` want, each payment once with one
    /// multi-row update guarded by the version it was read at (a count
    /// short of the requests is a [`Contention`](runtime::retry::Contention), retried).
    pub async fn request_all(&self, tx: &mut Tx, requests: &[Request]) -> anyhow::Result<()> {
        let now = timestamp(kernel::now());
        // `columnN`: the names both databases give a VALUES list's columns.
        let written = write_rows_counting(
            tx,
            requests,
            6,
            "UPDATE payments AS p SET pending = v.column2, pending_traceparent = v.column3,
                 updated_at = v.column4, version = v.column5
             FROM (VALUES {values}) AS v
             WHERE p.id = v.column1 AND p.version = v.column6",
            plain_tuple,
            |values, request| {
                values
                    .push(request.payment.to_string())
                    .push(request.settlement.as_str())
                    .push(request.traceparent.clone())
                    .push(now.clone())
                    .push(request.version)
                    .push(request.read_at);
                Ok(())
            },
            // A list of keys joined to the table.
            Plan::EachTime,
        )
        .await
        .context("requesting settlements")?;
        if written != requests.len() as u64 {
            return Err(runtime::retry::Contention(format!(
                "{} of {} payments changed meanwhile",
                requests.len() as u64 - written,
                requests.len()
            ))
            .into());
        }
        Ok(())
    }

    /// A void for a booking whose authorisation never completed (the caller
    /// gave up waiting): kept so that an authorisation arriving late is
    /// refused and released rather than left standing.
    pub async fn insert_void_marker(
        &self,
        tx: &mut Tx,
        reservation: ReservationId,
        user: UserId,
        amount: Money,
    ) -> anyhow::Result<()> {
        let now = timestamp(kernel::now());
        sqlx::query(&format!(
            "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, 'voided', NULL, $5, 1, $6, $6)
             ON CONFLICT (reservation_id) DO NOTHING"
        ))
        .bind(kernel::ids::PaymentId::new().to_string())
        .bind(reservation.to_string())
        .bind(user.to_string())
        .bind(amount.minor_units())
        .bind("voided before the authorisation completed")
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Payments waiting for the provider, oldest request first.
    pub async fn to_settle(&self, limit: i64) -> anyhow::Result<Vec<Waiting>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, pending_traceparent FROM payments
             WHERE pending IS NOT NULL ORDER BY updated_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Waiting {
                    payment: from_row(row)?,
                    version: row.try_get("version")?,
                    traceparent: row.try_get("pending_traceparent")?,
                })
            })
            .collect()
    }

    /// Records that the provider did what was pending, with the events, in
    /// one transaction; how many were recorded (another replica may have
    /// recorded some first: those are skipped).
    pub async fn settled(&self, done: &[Settled]) -> anyhow::Result<usize> {
        let now = kernel::now();
        let mut tx = self.store.begin().await?;
        // One statement for the round; it answers the payments it settled
        // (one whose pending settlement changed meanwhile is left as is).
        let updated = write_rows_returning(
            &mut tx,
            done,
            5,
            "UPDATE payments AS p SET status = v.column2, pending = NULL,
                 pending_traceparent = NULL, updated_at = v.column3, version = p.version + 1
             FROM (VALUES {values}) AS v
             WHERE p.id = v.column1 AND p.version = v.column4 AND p.pending = v.column5
             RETURNING id",
            plain_tuple,
            |values, settled| {
                values
                    .push(settled.payment.id.to_string())
                    .push(settled.settlement.outcome().as_str())
                    .push(timestamp(now))
                    .push(settled.version)
                    .push(settled.settlement.as_str());
                Ok(())
            },
            // A list of keys joined to the table.
            Plan::EachTime,
        )
        .await
        .context("recording settlements")?;
        let updated: HashSet<String> = updated
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut events = Vec::with_capacity(done.len());
        for Settled {
            payment,
            settlement,
            traceparent,
            ..
        } in done
        {
            if !updated.contains(&payment.id.to_string()) {
                continue;
            }
            let charge = charge(payment);
            let event = match settlement {
                Settlement::Capture => PaymentEvent::PaymentCaptured {
                    charge,
                    captured_at: now,
                },
                Settlement::Void => PaymentEvent::PaymentVoided {
                    charge,
                    voided_at: now,
                },
                Settlement::Refund => PaymentEvent::PaymentRefunded {
                    charge,
                    refunded_at: now,
                },
            };
            let mut outgoing = event.outgoing(None);
            if let Some(traceparent) = traceparent {
                outgoing.envelope = outgoing.envelope.traced(traceparent, None);
            }
            events.push(outgoing);
        }
        outbox::append(&mut tx, &events).await?;
        self.store.commit(tx).await?;
        Ok(events.len())
    }

    /// A user's payments (everyone's for `None`), newest first, a page at a
    /// time; `Ok(None)` when `after` names no payment.
    pub async fn list(
        &self,
        user: Option<UserId>,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<Payment>>> {
        let filters: Vec<(&str, String)> = user
            .map(|user| ("user_id", user.to_string()))
            .into_iter()
            .collect();
        let Some(rows) = self.store.page(&PAYMENTS, &filters, after, limit).await? else {
            return Ok(None);
        };
        rows.iter()
            .map(from_row)
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}

/// Inserts `payment` unless a payment with the same `unique` column (its
/// booking, or its id) exists; whether it was inserted.
async fn insert_unless(
    tx: &mut Tx,
    payment: &Payment,
    unique: &str,
    traceparent: Option<&str>,
) -> anyhow::Result<bool> {
    let traceparent = traceparent.map(str::to_owned);
    let inserted = write_rows_counting(
        tx,
        &[payment],
        11,
        &format!(
            "INSERT INTO payments ({COLUMNS}, pending_traceparent) VALUES {{values}}
             ON CONFLICT ({unique}) DO NOTHING"
        ),
        plain_tuple,
        |values, payment| {
            push_payment(values, payment, traceparent.clone());
            Ok(())
        },
        Plan::Prepared,
    )
    .await
    .context("storing a payment")?;
    Ok(inserted == 1)
}

/// A new payment's row: its columns, version 1, and the trace a pending
/// settlement continues.
fn push_payment(values: &mut RowValues, payment: &Payment, traceparent: Option<String>) {
    values
        .push(payment.id.to_string())
        .push(payment.reservation_id.map(|id| id.to_string()))
        .push(payment.user_id.to_string())
        .push(payment.amount.minor_units())
        .push(payment.status.as_str())
        .push(payment.pending.map(Settlement::as_str))
        .push(payment.reason.clone())
        .push(1_i64)
        .push(timestamp(payment.created_at))
        .push(timestamp(payment.updated_at))
        .push(payment.pending.and(traceparent));
}

/// The facts every event of this payment repeats.
pub fn charge(payment: &Payment) -> Charge {
    Charge {
        payment_id: payment.id,
        user_id: payment.user_id,
        amount: payment.amount,
        reservation_id: payment.reservation_id,
    }
}

fn from_row(row: &AnyRow) -> anyhow::Result<Payment> {
    let text = |name: &str| -> anyhow::Result<String> { Ok(row.try_get::<String, _>(name)?) };
    let status = text("status")?;
    let pending: Option<String> = row.try_get("pending")?;
    let reservation: Option<String> = row.try_get("reservation_id")?;
    let time = |name: &str| -> anyhow::Result<OffsetDateTime> { parse_timestamp(&text(name)?) };
    Ok(Payment {
        id: text("id")?.parse()?,
        reservation_id: reservation.map(|id| id.parse()).transpose()?,
        user_id: text("user_id")?.parse()?,
        amount: Money::parse(row.try_get("amount")?)?,
        status: Status::parse(&status).with_context(|| format!("unknown status {status:?}"))?,
        pending: pending
            .map(|p| Settlement::parse(&p).with_context(|| format!("unknown settlement {p:?}")))
            .transpose()?,
        reason: row.try_get("reason")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

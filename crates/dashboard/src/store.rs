//! The dashboard's view in its own database: a row per listing (with its
//! held and sold counts), per booking's inventory, per reservation and per
//! points movement. Each change reads the row it replaces, lets the rule of
//! [`crate::projection`] decide, and writes the outcome; the totals are
//! summed from the rows when the dashboard is read, so they cannot drift
//! from them.

use runtime::store::Tx;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use contracts::catalog::ListingKind;
use kernel::ids::{ListingId, ReservationId};
use runtime::http::{parse_timestamp, timestamp};
use runtime::store::{fetch_by_keys, in_statements, plain_tuple, write_rows, MigrationScript};
use runtime::Store;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::projection::{
    self, Change, Dashboard, Hold, HoldRow, Keys, ListingRow, PointsFact, PointsKind, PointsTotals,
    ReservationRow, Revenue, Status, StatusCounts, Touched,
};

const SCHEMA: &str = "
CREATE TABLE dashboard_listings (
    listing_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    kind TEXT,
    total BIGINT NOT NULL,
    held BIGINT NOT NULL,
    sold BIGINT NOT NULL,
    withdrawn BIGINT NOT NULL,
    stated_at TEXT,
    registered_at TEXT
);
CREATE INDEX dashboard_listings_by_registration ON dashboard_listings (registered_at, listing_id);
CREATE TABLE dashboard_holds (
    reservation_id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE dashboard_reservations (
    reservation_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    payment_method TEXT NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX dashboard_reservations_by_status
    ON dashboard_reservations (status, payment_method, amount);
CREATE TABLE dashboard_points (
    fact TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    points BIGINT NOT NULL
);
CREATE TABLE dashboard_changes (
    id BIGINT PRIMARY KEY,
    changes BIGINT NOT NULL,
    updated_at TEXT
);
INSERT INTO dashboard_changes (id, changes) VALUES (1, 0);";

pub const MIGRATIONS: &[MigrationScript] = &[MigrationScript {
    version: 100,
    description: "dashboard: listings, inventory, reservations and points",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

#[derive(Clone, Debug)]
pub struct DashboardView {
    store: Store,
}

fn kind_from(text: Option<String>) -> anyhow::Result<Option<ListingKind>> {
    text.map(|kind| {
        serde_json::from_value(serde_json::Value::String(kind.clone()))
            .with_context(|| format!("a listing kind the dashboard does not know: {kind:?}"))
    })
    .transpose()
}

fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn time_from(text: Option<String>) -> anyhow::Result<Option<OffsetDateTime>> {
    text.as_deref().map(parse_timestamp).transpose()
}

fn listing_from(row: &AnyRow) -> anyhow::Result<ListingRow> {
    Ok(ListingRow {
        title: row.try_get("title")?,
        kind: kind_from(row.try_get("kind")?)?,
        total: count(row.try_get("total")?),
        held: count(row.try_get("held")?),
        sold: count(row.try_get("sold")?),
        withdrawn: row.try_get::<i64, _>("withdrawn")? != 0,
        stated_at: time_from(row.try_get("stated_at")?)?,
        registered_at: time_from(row.try_get("registered_at")?)?,
    })
}

const LISTING_COLUMNS: &str =
    "listing_id, title, kind, total, held, sold, withdrawn, stated_at, registered_at";

impl DashboardView {
    pub fn new(store: Store) -> DashboardView {
        DashboardView { store }
    }

    /// Notes that a batch of events reached the view: the change count a
    /// live dashboard watches, and the time it shows. Taken first in every
    /// batch, so batches applied side by side queue here rather than lock
    /// each other's rows in different orders.
    pub async fn touch(&self, tx: &mut Tx, at: OffsetDateTime) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE dashboard_changes SET changes = changes + 1, updated_at = $1 WHERE id = 1",
        )
        .bind(timestamp(at))
        .execute(&mut **tx)
        .await
        .context("counting a change of the dashboard")?;
        Ok(())
    }

    /// How many batches of events the view has taken in.
    pub async fn changes(&self) -> anyhow::Result<i64> {
        sqlx::query_scalar("SELECT changes FROM dashboard_changes WHERE id = 1")
            .fetch_one(self.store.reader())
            .await
            .context("reading the dashboard's change count")
    }

    /// Applies a batch's changes: reads every row they touch once (the
    /// rows locked on PostgreSQL), lets the rules
    /// of [`crate::projection`] decide in memory in the events' order
    /// ([`Touched`]), and writes each changed row once (one statement per
    /// table). Batches applied side by side queue on [`Self::touch`] first,
    /// so they never lock each other's rows in different orders.
    pub async fn apply_all(&self, tx: &mut Tx, changes: &[Change]) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let keys = Keys::of(changes);
        let listings = self
            .held(
                tx,
                "dashboard_listings",
                LISTING_COLUMNS,
                "listing_id",
                &keys.listings,
                listing_from,
            )
            .await
            .context("reading listings of the dashboard")?;
        let holds = self
            .held(
                tx,
                "dashboard_holds",
                "quantity, state",
                "reservation_id",
                &keys.holds,
                hold_from,
            )
            .await
            .context("reading bookings' inventory")?;
        let reservations = self
            .held(
                tx,
                "dashboard_reservations",
                "status, version, payment_method, amount",
                "reservation_id",
                &keys.reservations,
                reservation_from,
            )
            .await
            .context("reading reservations of the dashboard")?;
        let mut touched = Touched::new(listings, holds, reservations);
        for change in changes {
            touched.apply(change);
        }
        write_listings(tx, &touched.listings()).await?;
        write_holds(tx, &touched.holds()).await?;
        write_reservations(tx, &touched.reservations()).await?;
        write_points(tx, &touched.points()).await
    }

    /// The rows of `table` whose `key` is one of `ids`, locked for the
    /// transaction where the database locks rows, in key order: one
    /// statement per slice of keys, planned at each execution. (Prepared
    /// once, PostgreSQL kept the plan it made while the table was small,
    /// a sequential scan for a list of keys — measured at 25 ms a batch
    /// within 20 s of load — which is why this read one key at a time
    /// until key lists were planned each time.)
    async fn held<K: ToString + Ord + Copy, V>(
        &self,
        tx: &mut Tx,
        table: &str,
        columns: &str,
        key: &str,
        ids: &BTreeSet<K>,
        parse: impl Fn(&AnyRow) -> anyhow::Result<V>,
    ) -> anyhow::Result<BTreeMap<K, V>> {
        let statement = format!(
            "SELECT {key} AS row_key, {columns} FROM {table} WHERE {key} IN ({{keys}}) ORDER BY {key}{}",
            self.store.for_update()
        );
        let ids: Vec<K> = ids.iter().copied().collect();
        let by_text: HashMap<String, K> = ids.iter().map(|id| (id.to_string(), *id)).collect();
        let mut held = BTreeMap::new();
        for slice in in_statements(&ids) {
            for row in fetch_by_keys(tx, &statement, slice).await? {
                let text: String = row.try_get("row_key")?;
                let id = by_text
                    .get(&text)
                    .with_context(|| format!("{table} answered a key it was not asked for"))?;
                held.insert(*id, parse(&row)?);
            }
        }
        Ok(held)
    }

    /// The whole dashboard as the view holds it now.
    pub async fn dashboard(&self) -> anyhow::Result<Dashboard> {
        let reader = self.store.reader();
        let listings = sqlx::query(&format!(
            "SELECT {LISTING_COLUMNS} FROM dashboard_listings
             WHERE kind IS NOT NULL AND withdrawn = 0
             ORDER BY registered_at, listing_id"
        ))
        .fetch_all(reader)
        .await
        .context("reading the dashboard's listings")?
        .iter()
        .map(|row| {
            let id: String = row.try_get("listing_id")?;
            Ok(listing_from(row)?.view(&id))
        })
        .filter_map(Result::transpose)
        .collect::<anyhow::Result<Vec<_>>>()?;

        let mut reservations = StatusCounts::default();
        let mut revenue = Revenue::default();
        let rows = sqlx::query(
            "SELECT status, payment_method, COUNT(*) AS bookings,
                    CAST(SUM(amount) AS BIGINT) AS amount
             FROM dashboard_reservations GROUP BY status, payment_method",
        )
        .fetch_all(reader)
        .await
        .context("counting the dashboard's reservations")?;
        for row in &rows {
            let status: String = row.try_get("status")?;
            let method: String = row.try_get("payment_method")?;
            let status = Status::parse(&status)
                .with_context(|| format!("a status the dashboard does not know: {status:?}"))?;
            let bookings: i64 = row.try_get("bookings")?;
            reservations.add(status, u64::try_from(bookings)?);
            if status.is_revenue() {
                let method = projection::parse_payment_method(&method).with_context(|| {
                    format!("a payment method the dashboard does not know: {method:?}")
                })?;
                revenue.add(method, sum(row, "amount")?);
            }
        }

        let (mut issued, mut withdrawn, mut spent, mut refunded) = (0, 0, 0, 0);
        for row in sqlx::query("SELECT kind, CAST(SUM(points) AS BIGINT) AS points FROM dashboard_points GROUP BY kind")
            .fetch_all(reader)
            .await
            .context("adding up the dashboard's points")?
        {
            let kind: String = row.try_get("kind")?;
            let points = u64::try_from(sum(&row, "points")?)?;
            match kind.as_str() {
                k if k == PointsKind::Issued.as_str() => issued = points,
                k if k == PointsKind::Spent.as_str() => spent = points,
                k if k == PointsKind::Refunded.as_str() => refunded = points,
                k if k == PointsKind::Withdrawn.as_str() => withdrawn = points,
                other => anyhow::bail!("points of a kind the dashboard does not know: {other:?}"),
            }
        }

        let updated_at: Option<String> =
            sqlx::query_scalar("SELECT updated_at FROM dashboard_changes WHERE id = 1")
                .fetch_one(reader)
                .await
                .context("reading when the dashboard changed")?;
        Ok(Dashboard {
            listings,
            reservations,
            revenue,
            points: PointsTotals::from_sums(issued, withdrawn, spent, refunded),
            updated_at,
        })
    }
}

async fn write_listings(tx: &mut Tx, listings: &[(ListingId, &ListingRow)]) -> anyhow::Result<()> {
    write_rows(
        tx,
        listings,
        9,
        &format!(
            "INSERT INTO dashboard_listings ({LISTING_COLUMNS}) VALUES {{values}}
             ON CONFLICT (listing_id) DO UPDATE
                 SET title = excluded.title, kind = excluded.kind, total = excluded.total,
                     held = excluded.held, sold = excluded.sold, withdrawn = excluded.withdrawn,
                     stated_at = excluded.stated_at, registered_at = excluded.registered_at"
        ),
        plain_tuple,
        |values, (id, row)| {
            values
                .push(id.to_string())
                .push(row.title.clone())
                .push(row.kind.map(ListingKind::as_str))
                .push(i64::from(row.total))
                .push(i64::from(row.held))
                .push(i64::from(row.sold))
                .push(i64::from(row.withdrawn))
                .push(row.stated_at.map(timestamp))
                .push(row.registered_at.map(timestamp));
            Ok(())
        },
    )
    .await
    .context("writing listings of the dashboard")
}

async fn write_holds(
    tx: &mut Tx,
    holds: &[(ReservationId, ListingId, HoldRow)],
) -> anyhow::Result<()> {
    write_rows(
        tx,
        holds,
        4,
        "INSERT INTO dashboard_holds (reservation_id, listing_id, quantity, state) VALUES {values}
         ON CONFLICT (reservation_id) DO UPDATE
             SET quantity = excluded.quantity, state = excluded.state",
        plain_tuple,
        |values, (id, listing, hold)| {
            values
                .push(id.to_string())
                .push(listing.to_string())
                .push(i64::from(hold.quantity))
                .push(hold.state.as_str());
            Ok(())
        },
    )
    .await
    .context("writing bookings' inventory")
}

async fn write_reservations(
    tx: &mut Tx,
    reservations: &[(ReservationId, ReservationRow)],
) -> anyhow::Result<()> {
    write_rows(
        tx,
        reservations,
        5,
        "INSERT INTO dashboard_reservations (reservation_id, status, version, payment_method, amount)
         VALUES {values}
         ON CONFLICT (reservation_id) DO UPDATE
             SET status = excluded.status, version = excluded.version,
                 payment_method = excluded.payment_method, amount = excluded.amount",
        plain_tuple,
        |values, (id, row)| {
            values
                .push(id.to_string())
                .push(row.status.as_str())
                .push(i64::try_from(row.version)?)
                .push(projection::payment_method_str(row.payment_method))
                .push(row.amount);
            Ok(())
        },
    )
    .await
    .context("writing reservations of the dashboard")
}

/// Points movements under each fact's key, so stating one again sets the
/// same value.
async fn write_points(tx: &mut Tx, facts: &[&PointsFact]) -> anyhow::Result<()> {
    write_rows(
        tx,
        facts,
        3,
        "INSERT INTO dashboard_points (fact, kind, points) VALUES {values}
         ON CONFLICT (fact) DO UPDATE SET kind = excluded.kind, points = excluded.points",
        plain_tuple,
        |values, fact| {
            values
                .push(fact.key.clone())
                .push(fact.kind.as_str())
                .push(i64::try_from(fact.points)?);
            Ok(())
        },
    )
    .await
    .context("recording points")
}

fn hold_from(row: &AnyRow) -> anyhow::Result<HoldRow> {
    let state: String = row.try_get("state")?;
    Ok(HoldRow {
        quantity: count(row.try_get("quantity")?),
        state: Hold::parse(&state).with_context(|| {
            format!("an inventory state the dashboard does not know: {state:?}")
        })?,
    })
}

fn reservation_from(row: &AnyRow) -> anyhow::Result<ReservationRow> {
    let status: String = row.try_get("status")?;
    let method: String = row.try_get("payment_method")?;
    Ok(ReservationRow {
        status: Status::parse(&status)
            .with_context(|| format!("a status the dashboard does not know: {status:?}"))?,
        version: u64::try_from(row.try_get::<i64, _>("version")?)?,
        payment_method: projection::parse_payment_method(&method)
            .with_context(|| format!("a payment method the dashboard does not know: {method:?}"))?,
        amount: row.try_get("amount")?,
    })
}

/// A `SUM(…)` column (cast to BIGINT: PostgreSQL sums BIGINTs as NUMERIC,
/// which `Any` does not read).
fn sum(row: &AnyRow, column: &str) -> anyhow::Result<i64> {
    let value: Option<i64> = row
        .try_get(column)
        .with_context(|| format!("reading the sum {column}"))?;
    Ok(value.unwrap_or(0))
}

/// Empties the view and `group`'s inbox rows, in one transaction. The
/// change count goes on (open streams see one more change).
pub async fn clear(store: &Store, group: &str) -> anyhow::Result<u64> {
    let mut tx = store.begin().await?;
    let tables = [
        "dashboard_listings",
        "dashboard_holds",
        "dashboard_reservations",
        "dashboard_points",
    ];
    let removed = runtime::inbox::forget_all(&mut tx, &tables, group).await?;
    sqlx::query("UPDATE dashboard_changes SET changes = changes + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .context("counting the change")?;
    store.commit(tx).await?;
    Ok(removed)
}

//! The dashboard's view in its own database: a row per listing (with its
//! held and sold counts), per booking's inventory, per reservation and per
//! points movement. Each change reads the row it replaces, lets the rule of
//! [`crate::projection`] decide, and writes the outcome; the totals are
//! summed from the rows when the dashboard is read, so they cannot drift
//! from them.

use anyhow::Context;
use contracts::catalog::ListingKind;
use kernel::ids::{ListingId, ReservationId};
use runtime::http::{parse_timestamp, timestamp};
use runtime::store::MigrationScript;
use runtime::Store;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::projection::{
    self, Dashboard, Hold, HoldRow, InventoryMove, ListingChange, ListingRow, PointsFact,
    PointsKind, PointsTotals, ReservationRow, Revenue, Status, StatusCounts,
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
    pub async fn touch(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: OffsetDateTime,
    ) -> anyhow::Result<()> {
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

    async fn listing(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ListingId,
    ) -> anyhow::Result<Option<ListingRow>> {
        let row = sqlx::query(&format!(
            "SELECT {LISTING_COLUMNS} FROM dashboard_listings WHERE listing_id = $1{}",
            self.store.for_update()
        ))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("reading a listing of the dashboard")?;
        row.as_ref().map(listing_from).transpose()
    }

    async fn save_listing(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ListingId,
        row: &ListingRow,
    ) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "INSERT INTO dashboard_listings ({LISTING_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (listing_id) DO UPDATE
                 SET title = excluded.title, kind = excluded.kind, total = excluded.total,
                     held = excluded.held, sold = excluded.sold, withdrawn = excluded.withdrawn,
                     stated_at = excluded.stated_at, registered_at = excluded.registered_at"
        ))
        .bind(id.to_string())
        .bind(row.title.clone())
        .bind(row.kind.map(ListingKind::as_str))
        .bind(i64::from(row.total))
        .bind(i64::from(row.held))
        .bind(i64::from(row.sold))
        .bind(i64::from(row.withdrawn))
        .bind(row.stated_at.map(timestamp))
        .bind(row.registered_at.map(timestamp))
        .execute(&mut **tx)
        .await
        .context("writing a listing of the dashboard")?;
        Ok(())
    }

    /// A listing was registered, changed or withdrawn.
    pub async fn record_listing(
        &self,
        tx: &mut Transaction<'static, Any>,
        change: &ListingChange,
    ) -> anyhow::Result<()> {
        let id = change.listing_id();
        let held = self.listing(tx, id).await?.unwrap_or_default();
        let row = projection::apply_listing(held.clone(), change);
        if row != held {
            self.save_listing(tx, id, &row).await?;
        }
        Ok(())
    }

    /// A booking's inventory moved: its own row, and its listing's counts.
    pub async fn record_inventory(
        &self,
        tx: &mut Transaction<'static, Any>,
        change: &InventoryMove,
    ) -> anyhow::Result<()> {
        let reservation = change.reservation_id.to_string();
        let held = sqlx::query(&format!(
            "SELECT quantity, state FROM dashboard_holds WHERE reservation_id = $1{}",
            self.store.for_update()
        ))
        .bind(&reservation)
        .fetch_optional(&mut **tx)
        .await
        .context("reading a booking's inventory")?
        .map(|row| -> anyhow::Result<HoldRow> {
            let state: String = row.try_get("state")?;
            Ok(HoldRow {
                quantity: count(row.try_get("quantity")?),
                state: Hold::parse(&state).with_context(|| {
                    format!("an inventory state the dashboard does not know: {state:?}")
                })?,
            })
        })
        .transpose()?;
        let Some((hold, counts)) = projection::apply_hold(held, change) else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO dashboard_holds (reservation_id, listing_id, quantity, state)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (reservation_id) DO UPDATE
                 SET quantity = excluded.quantity, state = excluded.state",
        )
        .bind(&reservation)
        .bind(change.listing_id.to_string())
        .bind(i64::from(hold.quantity))
        .bind(hold.state.as_str())
        .execute(&mut **tx)
        .await
        .context("writing a booking's inventory")?;
        let mut listing = self
            .listing(tx, change.listing_id)
            .await?
            .unwrap_or_default();
        counts.apply_to(&mut listing);
        self.save_listing(tx, change.listing_id, &listing).await
    }

    /// A reservation reached a status (at `row.version`).
    pub async fn record_reservation(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: ReservationId,
        incoming: ReservationRow,
    ) -> anyhow::Result<()> {
        let held = sqlx::query(&format!(
            "SELECT status, version, payment_method, amount FROM dashboard_reservations
             WHERE reservation_id = $1{}",
            self.store.for_update()
        ))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await
        .context("reading a reservation of the dashboard")?
        .map(|row| reservation_from(&row))
        .transpose()?;
        let Some(row) = projection::apply_reservation(held, incoming) else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO dashboard_reservations (reservation_id, status, version, payment_method, amount)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (reservation_id) DO UPDATE
                 SET status = excluded.status, version = excluded.version,
                     payment_method = excluded.payment_method, amount = excluded.amount",
        )
        .bind(id.to_string())
        .bind(row.status.as_str())
        .bind(i64::try_from(row.version)?)
        .bind(projection::payment_method_str(row.payment_method))
        .bind(row.amount)
        .execute(&mut **tx)
        .await
        .context("writing a reservation of the dashboard")?;
        Ok(())
    }

    /// Points moved: stored under the fact's key, so stating it again sets
    /// the same value.
    pub async fn record_points(
        &self,
        tx: &mut Transaction<'static, Any>,
        fact: &PointsFact,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO dashboard_points (fact, kind, points) VALUES ($1, $2, $3)
             ON CONFLICT (fact) DO UPDATE SET kind = excluded.kind, points = excluded.points",
        )
        .bind(&fact.key)
        .bind(fact.kind.as_str())
        .bind(i64::try_from(fact.points)?)
        .execute(&mut **tx)
        .await
        .context("recording points")?;
        Ok(())
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

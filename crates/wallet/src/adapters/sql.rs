//! Wallets and their entries in the wallet service's own database.
//!
//! A wallet row holds the balance (`CHECK (balance >= 0)`); every change
//! is also an entry, unique per (booking, kind) so a booking earns and is
//! withdrawn at most once whatever the inbox lets through. Balance writes
//! happen on a locked row and are guarded by the value they were computed
//! from, so two replicas can never lose each other's update.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::ids::{ReservationId, UserId};
use kernel::Envelope;
use runtime::http::timestamp;
use runtime::retry::Contention;
use runtime::store::{Listing, MigrationScript};
use runtime::{outbox, Store};
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::domain::{Insufficient, Points, Wallet};

const SCHEMA: &str = "
CREATE TABLE wallets (
    user_id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL CHECK (balance >= 0),
    updated_at TEXT NOT NULL
);
CREATE TABLE wallet_entries (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES wallets (user_id),
    kind TEXT NOT NULL,
    points BIGINT NOT NULL CHECK (points >= 0),
    shortfall BIGINT NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
    reservation_id TEXT,
    at TEXT NOT NULL,
    UNIQUE (reservation_id, kind)
);
CREATE INDEX wallet_entries_by_user ON wallet_entries (user_id, at);";

pub const MIGRATIONS: &[MigrationScript] = &[MigrationScript {
    version: 100,
    description: "wallet: wallets and their entries",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

/// What changed a balance. Stored and answered as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Earned,
    Withdrawn,
    Spent,
    Purchased,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earned => "earned",
            EntryKind::Withdrawn => "withdrawn",
            EntryKind::Spent => "spent",
            EntryKind::Purchased => "purchased",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "earned" => Ok(EntryKind::Earned),
            "withdrawn" => Ok(EntryKind::Withdrawn),
            "spent" => Ok(EntryKind::Spent),
            "purchased" => Ok(EntryKind::Purchased),
            other => anyhow::bail!("unknown wallet entry kind {other:?}"),
        }
    }
}

/// One line of a wallet's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub kind: EntryKind,
    pub points: Points,
    pub shortfall: Points,
    pub reservation_id: Option<ReservationId>,
    pub at: String,
}

const ENTRIES: Listing = Listing {
    table: "wallet_entries",
    columns: "id, kind, points, shortfall, reservation_id, at",
    sort: "at",
    id: "id",
    newest_first: true,
};

#[derive(Clone, Debug)]
pub struct Wallets {
    store: Store,
}

impl Wallets {
    pub fn new(store: Store) -> Wallets {
        Wallets { store }
    }

    /// Creates the wallets a batch will change, then locks them in id order
    /// (on PostgreSQL): replicas whose batches touch the same users then
    /// wait for each other instead of deadlocking.
    pub async fn lock_in_order(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut users: Vec<UserId>,
    ) -> anyhow::Result<()> {
        users.sort_unstable();
        users.dedup();
        for user in &users {
            ensure_wallet(tx, *user).await?;
        }
        let users = users.iter().map(ToString::to_string).collect();
        self.store
            .lock_in_order(tx, "wallets", "user_id", users)
            .await
    }

    /// Credits the points a booking's captured payment earned and announces
    /// it, once per booking. Zero points record nothing.
    pub async fn earn(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
        reservation: ReservationId,
        points: Points,
        at: OffsetDateTime,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        if points.is_zero() {
            return Ok(());
        }
        let wallet = self.load_for_update(tx, user).await?;
        // Checked under the wallet's lock, so a second replica applying the
        // same booking sees the first one's entry once it gets the lock.
        if entry_points(tx, reservation, EntryKind::Earned)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let after = wallet.earn(points);
        self.set_balance(tx, user, wallet, after).await?;
        insert_entry(
            tx,
            user,
            EntryKind::Earned,
            points,
            Points::ZERO,
            Some(reservation),
            at,
        )
        .await?;
        let event = WalletEvent::PointsEarned {
            user_id: user,
            reservation_id: reservation,
            points: points.value(),
            balance: after.balance().value(),
            earned_at: at,
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// Takes back what a refunded booking earned, as far as the balance
    /// goes, and announces it, once per booking. A booking that earned
    /// nothing records nothing.
    pub async fn withdraw(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
        reservation: ReservationId,
        at: OffsetDateTime,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let wallet = self.load_for_update(tx, user).await?;
        let Some(earned) = entry_points(tx, reservation, EntryKind::Earned).await? else {
            return Ok(());
        };
        if entry_points(tx, reservation, EntryKind::Withdrawn)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let withdrawal = wallet.withdraw(earned);
        self.set_balance(tx, user, wallet, withdrawal.wallet)
            .await?;
        insert_entry(
            tx,
            user,
            EntryKind::Withdrawn,
            withdrawal.taken,
            withdrawal.shortfall,
            Some(reservation),
            at,
        )
        .await?;
        let event = WalletEvent::PointsWithdrawn {
            user_id: user,
            reservation_id: reservation,
            points: withdrawal.taken.value(),
            shortfall: withdrawal.shortfall.value(),
            balance: withdrawal.wallet.balance().value(),
            withdrawn_at: at,
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// Pays with points, all or nothing: `Ok(Err(_))` when the balance is
    /// short, and then nothing was deducted. The deduction itself is one
    /// guarded statement (`balance >= points`), so even a writer that skipped
    /// the lock could not take the balance below zero. At most one spend per
    /// booking when `reservation` is given.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "the bike line pays with points; no route spends yet"
        )
    )]
    pub async fn spend(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
        points: Points,
        reservation: Option<ReservationId>,
    ) -> anyhow::Result<Result<Wallet, Insufficient>> {
        let wallet = self.load_for_update(tx, user).await?;
        let after = match wallet.spend(points) {
            Ok(after) => after,
            Err(insufficient) => return Ok(Err(insufficient)),
        };
        let spent = sqlx::query(
            "UPDATE wallets SET balance = balance - $1, updated_at = $2
             WHERE user_id = $3 AND balance >= $1",
        )
        .bind(to_sql(points)?)
        .bind(timestamp(kernel::now()))
        .bind(user.to_string())
        .execute(&mut **tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(Err(Insufficient {
                requested: points,
                balance: wallet.balance(),
            }));
        }
        insert_entry(
            tx,
            user,
            EntryKind::Spent,
            points,
            Points::ZERO,
            reservation,
            kernel::now(),
        )
        .await?;
        Ok(Ok(after))
    }

    /// A user's balance; zero for a user who never had a wallet.
    pub async fn balance(&self, user: UserId) -> anyhow::Result<Points> {
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM wallets WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_optional(self.store.reader())
                .await?;
        balance.map_or(Ok(Points::ZERO), from_sql)
    }

    /// A user's entries, newest first, a page at a time. `Ok(None)` when
    /// `after` names no entry.
    pub async fn entries(
        &self,
        user: UserId,
        after: Option<String>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<Entry>>> {
        let filters = [("user_id", user.to_string())];
        let Some(rows) = self.store.page(&ENTRIES, &filters, after, limit).await? else {
            return Ok(None);
        };
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let reservation: Option<String> = row.try_get("reservation_id")?;
                Ok(Entry {
                    id: row.try_get("id")?,
                    kind: kind.parse()?,
                    points: from_sql(row.try_get("points")?)?,
                    shortfall: from_sql(row.try_get("shortfall")?)?,
                    reservation_id: reservation.map(|id| id.parse()).transpose()?,
                    at: row.try_get("at")?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }

    /// The user's wallet, created empty if need be and locked until the
    /// transaction ends on PostgreSQL (SQLite has one writer already).
    async fn load_for_update(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
    ) -> anyhow::Result<Wallet> {
        ensure_wallet(tx, user).await?;
        let lock = self.store.for_update();
        let balance: i64 = sqlx::query_scalar(&format!(
            "SELECT balance FROM wallets WHERE user_id = $1{lock}"
        ))
        .bind(user.to_string())
        .fetch_one(&mut **tx)
        .await
        .with_context(|| format!("loading the wallet of {user}"))?;
        Ok(Wallet::restore(from_sql(balance)?))
    }

    /// Writes the new balance, guarded by the one it was computed from: if
    /// anything changed it meanwhile nothing is written, and the event is
    /// retried as a passing fault rather than losing that change.
    async fn set_balance(
        &self,
        tx: &mut Transaction<'static, Any>,
        user: UserId,
        before: Wallet,
        after: Wallet,
    ) -> anyhow::Result<()> {
        let updated = sqlx::query(
            "UPDATE wallets SET balance = $1, updated_at = $2 WHERE user_id = $3 AND balance = $4",
        )
        .bind(to_sql(after.balance())?)
        .bind(timestamp(kernel::now()))
        .bind(user.to_string())
        .bind(to_sql(before.balance())?)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(Contention(format!("the wallet of {user}")).into());
        }
        Ok(())
    }
}

async fn ensure_wallet(tx: &mut Transaction<'static, Any>, user: UserId) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO wallets (user_id, balance, updated_at) VALUES ($1, 0, $2)
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user.to_string())
    .bind(timestamp(kernel::now()))
    .execute(&mut **tx)
    .await
    .with_context(|| format!("opening a wallet for {user}"))?;
    Ok(())
}

/// The points of a booking's entry of `kind`, if it has one.
async fn entry_points(
    tx: &mut Transaction<'static, Any>,
    reservation: ReservationId,
    kind: EntryKind,
) -> anyhow::Result<Option<Points>> {
    let points: Option<i64> = sqlx::query_scalar(
        "SELECT points FROM wallet_entries WHERE reservation_id = $1 AND kind = $2",
    )
    .bind(reservation.to_string())
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    points.map(from_sql).transpose()
}

async fn insert_entry(
    tx: &mut Transaction<'static, Any>,
    user: UserId,
    kind: EntryKind,
    points: Points,
    shortfall: Points,
    reservation: Option<ReservationId>,
    at: OffsetDateTime,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO wallet_entries (id, user_id, kind, points, shortfall, reservation_id, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(user.to_string())
    .bind(kind.as_str())
    .bind(to_sql(points)?)
    .bind(to_sql(shortfall)?)
    .bind(reservation.map(|id| id.to_string()))
    .bind(timestamp(at))
    .execute(&mut **tx)
    .await
    .with_context(|| format!("recording points {kind}"))?;
    Ok(())
}

fn to_sql(points: Points) -> anyhow::Result<i64> {
    i64::try_from(points.value()).context("points beyond what the database holds")
}

fn from_sql(points: i64) -> anyhow::Result<Points> {
    Ok(Points::new(
        u64::try_from(points).context("negative points in the database")?,
    ))
}

//! Wallets, their entries and purchases of points in the wallet service's
//! own database.
//!
//! A wallet row holds the balance (`CHECK (balance >= 0)`); every change
//! is also an entry, unique per (booking, kind) so a booking earns, is
//! withdrawn, spends and is given back at most once whatever the inbox
//! lets through; a purchase is credited once, guarded by its status. Balance writes
//! happen on a locked row and are guarded by the value they were computed
//! from, so two replicas can never lose each other's update.

use runtime::store::Tx;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use contracts::wallet::WalletEvent;
use contracts::IntegrationEvent;
use kernel::bus::Outgoing;
use kernel::ids::{PaymentId, ReservationId, UserId};
use kernel::Envelope;
use runtime::http::timestamp;
use runtime::retry::Contention;
use runtime::store::{
    fetch_by_keys, in_statements, plain_tuple, write_rows, write_rows_counting, Listing,
    MigrationScript, Plan,
};
use runtime::{outbox, Store};
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::domain::{pay_booking, Points, PurchaseStatus, Wallet};

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

/// Purchases of points, recorded before the card is charged so that none
/// is lost if the process stops between the charge and the credit; and
/// bookings refused payment with points, so a redelivered booking is
/// refused again rather than paid once the customer has bought more.
const PURCHASES: &str = "
CREATE TABLE point_purchases (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    idempotency_key TEXT,
    payment_id TEXT NOT NULL UNIQUE,
    points BIGINT NOT NULL CHECK (points > 0),
    status TEXT NOT NULL,
    reason TEXT,
    balance BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX point_purchases_to_recover ON point_purchases (status, updated_at);
CREATE TABLE points_refusals (
    reservation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    points BIGINT NOT NULL,
    reason TEXT NOT NULL,
    refused_at TEXT NOT NULL
);";

pub const MIGRATIONS: &[MigrationScript] = &[
    MigrationScript {
        version: 100,
        description: "wallet: wallets and their entries",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    },
    MigrationScript {
        version: 101,
        description: "wallet: purchases of points, bookings refused payment with points",
        sqlite: PURCHASES,
        postgres: PURCHASES,
    },
];

/// What changed a balance. Stored and answered as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Earned,
    Withdrawn,
    Spent,
    Purchased,
    Refunded,
}

impl EntryKind {
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Earned,
        EntryKind::Withdrawn,
        EntryKind::Spent,
        EntryKind::Purchased,
        EntryKind::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earned => "earned",
            EntryKind::Withdrawn => "withdrawn",
            EntryKind::Spent => "spent",
            EntryKind::Purchased => "purchased",
            EntryKind::Refunded => "refunded",
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
            "refunded" => Ok(EntryKind::Refunded),
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

/// The wallets and bookings' entries one unit of work of the points policy
/// has read, and what it changed. Points used to be earned one event at a
/// time, five statements each; a batch now reads its wallets and entries
/// with a statement each, every event moves them on in memory in turn (a
/// booking captured and refunded in one batch earns, then gives back), and
/// the batch is written once. One event is a batch of one: there is a
/// single code path.
#[derive(Debug, Default)]
pub struct Ledger {
    wallets: HashMap<UserId, Held>,
    /// The bookings whose entries were read (those with none included).
    read_bookings: HashSet<ReservationId>,
    /// The points of each booking's entry of each kind, read or new.
    entries: HashMap<(ReservationId, EntryKind), Points>,
    new_entries: Vec<NewEntry>,
    /// The events to announce, in the order they were decided.
    events: Vec<Outgoing>,
}

#[derive(Debug)]
struct Held {
    /// As read: the guard of its write.
    stored: Wallet,
    now: Wallet,
}

#[derive(Debug)]
struct NewEntry {
    user: UserId,
    kind: EntryKind,
    points: Points,
    shortfall: Points,
    booking: ReservationId,
    at: OffsetDateTime,
}

impl Ledger {
    /// Credits the points a booking's captured payment earned and announces
    /// it, once per booking. Zero points record nothing. The wallet and the
    /// booking's entries must have been read.
    pub fn earn(
        &mut self,
        user: UserId,
        booking: ReservationId,
        points: Points,
        at: OffsetDateTime,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        if points.is_zero() || self.entry(booking, EntryKind::Earned)?.is_some() {
            return Ok(());
        }
        let after = self.wallet(user)?.earn(points);
        self.record(
            after,
            NewEntry {
                user,
                kind: EntryKind::Earned,
                points,
                shortfall: Points::ZERO,
                booking,
                at,
            },
        );
        self.announce(
            WalletEvent::PointsEarned {
                user_id: user,
                reservation_id: booking,
                points: points.value(),
                balance: after.balance().value(),
                earned_at: at,
            },
            cause,
        );
        Ok(())
    }

    /// Takes back what a refunded booking earned, as far as the balance
    /// goes, and announces it, once per booking. A booking that earned
    /// nothing records nothing.
    pub fn withdraw(
        &mut self,
        user: UserId,
        booking: ReservationId,
        at: OffsetDateTime,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(earned) = self.entry(booking, EntryKind::Earned)? else {
            return Ok(());
        };
        if self.entry(booking, EntryKind::Withdrawn)?.is_some() {
            return Ok(());
        }
        let withdrawal = self.wallet(user)?.withdraw(earned);
        self.record(
            withdrawal.wallet,
            NewEntry {
                user,
                kind: EntryKind::Withdrawn,
                points: withdrawal.taken,
                shortfall: withdrawal.shortfall,
                booking,
                at,
            },
        );
        self.announce(
            WalletEvent::PointsWithdrawn {
                user_id: user,
                reservation_id: booking,
                points: withdrawal.taken.value(),
                shortfall: withdrawal.shortfall.value(),
                balance: withdrawal.wallet.balance().value(),
                withdrawn_at: at,
            },
            cause,
        );
        Ok(())
    }

    fn entry(&self, booking: ReservationId, kind: EntryKind) -> anyhow::Result<Option<Points>> {
        anyhow::ensure!(
            self.read_bookings.contains(&booking),
            "the entries of booking {booking} were not read"
        );
        Ok(self.entries.get(&(booking, kind)).copied())
    }

    fn wallet(&self, user: UserId) -> anyhow::Result<Wallet> {
        self.wallets
            .get(&user)
            .map(|held| held.now)
            .with_context(|| format!("the wallet of {user} was not read"))
    }

    /// The wallet of `entry` is at `after` from now on, and `entry` is new.
    fn record(&mut self, after: Wallet, entry: NewEntry) {
        if let Some(held) = self.wallets.get_mut(&entry.user) {
            held.now = after;
        }
        self.entries
            .insert((entry.booking, entry.kind), entry.points);
        self.new_entries.push(entry);
    }

    /// Queues `event`; its trace context is taken now, inside the span of
    /// what caused it (the batch is written outside every event's span).
    fn announce(&mut self, event: WalletEvent, cause: &Envelope) {
        let mut events = vec![event.outgoing(Some(cause))];
        runtime::telemetry::stamp(&mut events);
        self.events.extend(events);
    }
}

/// `keys` sorted, once each: the order a batch takes its rows in.
fn sorted_once<K: Ord>(mut keys: Vec<K>) -> Vec<K> {
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[derive(Clone, Debug)]
pub struct Wallets {
    store: Store,
}

impl Wallets {
    pub fn new(store: Store) -> Wallets {
        Wallets { store }
    }

    /// Reads what a batch of the points policy needs into `ledger`: opens
    /// the wallets of those about to earn (`opening`), then reads the
    /// wallets of `users`, in id order and locked on PostgreSQL (SQLite has
    /// a single writer already) so replicas whose batches share customers
    /// wait for each other instead of deadlocking, then the entries the
    /// `bookings` have already — read under those locks, so a second
    /// replica applying the same booking sees the first one's entry. One
    /// statement each; the key lists are planned at each execution
    /// ([`Plan::EachTime`]).
    pub async fn read_into(
        &self,
        tx: &mut Tx,
        ledger: &mut Ledger,
        opening: Vec<UserId>,
        users: Vec<UserId>,
        bookings: Vec<ReservationId>,
    ) -> anyhow::Result<()> {
        let opening = sorted_once(opening);
        let now = timestamp(kernel::now());
        write_rows(
            tx,
            &opening,
            3,
            "INSERT INTO wallets (user_id, balance, updated_at) VALUES {values}
             ON CONFLICT (user_id) DO NOTHING",
            plain_tuple,
            |values, user| {
                values.push(user.to_string()).push(0_i64).push(now.clone());
                Ok(())
            },
        )
        .await
        .context("opening wallets")?;

        let lock = self.store.for_update();
        let users = sorted_once(users);
        for slice in in_statements(&users) {
            let rows = fetch_by_keys(
                tx,
                &format!("SELECT user_id, balance FROM wallets WHERE user_id IN ({{keys}}) ORDER BY user_id{lock}"),
                slice,
            )
            .await
            .context("reading wallets")?;
            for row in rows {
                let user: String = row.try_get("user_id")?;
                let wallet = Wallet::restore(from_sql(row.try_get("balance")?)?);
                ledger.wallets.insert(
                    user.parse()?,
                    Held {
                        stored: wallet,
                        now: wallet,
                    },
                );
            }
        }

        let bookings = sorted_once(bookings);
        for slice in in_statements(&bookings) {
            let rows = fetch_by_keys(
                tx,
                "SELECT reservation_id, kind, points FROM wallet_entries WHERE reservation_id IN ({keys})",
                slice,
            )
            .await
            .context("reading bookings' entries")?;
            for row in rows {
                let booking: String = row.try_get("reservation_id")?;
                let kind: String = row.try_get("kind")?;
                ledger.entries.insert(
                    (booking.parse()?, kind.parse()?),
                    from_sql(row.try_get("points")?)?,
                );
            }
            ledger.read_bookings.extend(slice.iter().copied());
        }
        Ok(())
    }

    /// Stores what `ledger` changed: every wallet whose balance moved with
    /// one multi-row update guarded by the balance it was read at (a count
    /// short of the wallets is a [`Contention`], retried), the new entries
    /// with one insert, the events with one outbox statement.
    pub async fn write(&self, tx: &mut Tx, ledger: Ledger) -> anyhow::Result<()> {
        let mut changed: Vec<(&UserId, &Held)> = ledger
            .wallets
            .iter()
            .filter(|(_, held)| held.now != held.stored)
            .collect();
        changed.sort_unstable_by_key(|(user, _)| **user);
        let now = timestamp(kernel::now());
        // `columnN`: the names both databases give a VALUES list's columns.
        let written = write_rows_counting(
            tx,
            &changed,
            4,
            "UPDATE wallets AS w SET balance = v.column2, updated_at = v.column3
             FROM (VALUES {values}) AS v
             WHERE w.user_id = v.column1 AND w.balance = v.column4",
            plain_tuple,
            |values, (user, held)| {
                values
                    .push(user.to_string())
                    .push(to_sql(held.now.balance())?)
                    .push(now.clone())
                    .push(to_sql(held.stored.balance())?);
                Ok(())
            },
            // A list of keys joined to the table.
            Plan::EachTime,
        )
        .await
        .context("storing balances")?;
        if written != changed.len() as u64 {
            return Err(Contention(format!(
                "{} of {} wallets changed meanwhile",
                changed.len() as u64 - written,
                changed.len()
            ))
            .into());
        }
        write_rows(
            tx,
            &ledger.new_entries,
            7,
            "INSERT INTO wallet_entries (id, user_id, kind, points, shortfall, reservation_id, at)
             VALUES {values}",
            plain_tuple,
            |values, entry| {
                values
                    .push(uuid::Uuid::now_v7().to_string())
                    .push(entry.user.to_string())
                    .push(entry.kind.as_str())
                    .push(to_sql(entry.points)?)
                    .push(to_sql(entry.shortfall)?)
                    .push(entry.booking.to_string())
                    .push(timestamp(entry.at));
                Ok(())
            },
        )
        .await
        .context("recording points earned and withdrawn")?;
        outbox::append(tx, &ledger.events).await
    }

    /// Locks the wallets a batch of bookings will pay from or give back
    /// to, in id order (on PostgreSQL). Unlike [`Wallets::lock_in_order`]
    /// it opens none: a booking paid from no wallet is refused, and must
    /// not leave an empty one behind.
    pub async fn lock_existing(&self, tx: &mut Tx, users: Vec<UserId>) -> anyhow::Result<()> {
        let users = users.iter().map(ToString::to_string).collect();
        self.store
            .lock_in_order(tx, "wallets", "user_id", users)
            .await
    }

    /// Pays a booking with points, all or nothing, once per booking: spent
    /// (`PointsSpent`) when the balance covers it, otherwise refused
    /// (`PointsRefused`, nothing deducted). The deduction is one guarded
    /// statement (`balance >= points`) on the locked row, so even a writer
    /// that skipped the lock could not take the balance below zero.
    pub async fn pay_for_booking(
        &self,
        tx: &mut Tx,
        user: UserId,
        reservation: ReservationId,
        points: Points,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let wallet = self.load_existing_for_update(tx, user).await?;
        // Checked under the wallet's lock: a second replica paying the same
        // booking sees the first one's decision once it gets the lock.
        if entry_points(tx, reservation, EntryKind::Spent)
            .await?
            .is_some()
            || refused(tx, reservation).await?
        {
            return Ok(());
        }
        let at = kernel::now();
        let event = match pay_booking(wallet, points) {
            Ok(after) => {
                let spent = sqlx::query(
                    "UPDATE wallets SET balance = balance - $1, updated_at = $2
                     WHERE user_id = $3 AND balance >= $1",
                )
                .bind(to_sql(points)?)
                .bind(timestamp(at))
                .bind(user.to_string())
                .execute(&mut **tx)
                .await?;
                if spent.rows_affected() != 1 {
                    return Err(Contention(format!("the wallet of {user}")).into());
                }
                insert_entry(
                    tx,
                    user,
                    EntryKind::Spent,
                    points,
                    Points::ZERO,
                    Some(reservation),
                    at,
                )
                .await?;
                WalletEvent::PointsSpent {
                    user_id: user,
                    reservation_id: reservation,
                    points: points.value(),
                    balance: after.balance().value(),
                    spent_at: at,
                }
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                // No wallet means no lock: two replicas may both get here,
                // and only the one that records the refusal announces it.
                let recorded = sqlx::query(
                    "INSERT INTO points_refusals (reservation_id, user_id, points, reason, refused_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reservation_id) DO NOTHING",
                )
                .bind(reservation.to_string())
                .bind(user.to_string())
                .bind(to_sql(points)?)
                .bind(&reason)
                .bind(timestamp(at))
                .execute(&mut **tx)
                .await?;
                if recorded.rows_affected() != 1 {
                    return Ok(());
                }
                WalletEvent::PointsRefused {
                    user_id: user,
                    reservation_id: reservation,
                    points: points.value(),
                    balance: wallet.map_or(0, |wallet| wallet.balance().value()),
                    reason,
                    refused_at: at,
                }
            }
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// Gives back what a booking that did not go ahead spent, once, and
    /// announces it (`PointsRefunded`). A booking that spent nothing
    /// (refused, or paid by card) changes nothing.
    pub async fn give_back(
        &self,
        tx: &mut Tx,
        user: UserId,
        reservation: ReservationId,
        cause: &Envelope,
    ) -> anyhow::Result<()> {
        let Some(wallet) = self.load_existing_for_update(tx, user).await? else {
            return Ok(());
        };
        let Some(spent) = entry_points(tx, reservation, EntryKind::Spent).await? else {
            return Ok(());
        };
        if entry_points(tx, reservation, EntryKind::Refunded)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let at = kernel::now();
        let after = wallet.give_back(spent);
        self.set_balance(tx, user, wallet, after).await?;
        insert_entry(
            tx,
            user,
            EntryKind::Refunded,
            spent,
            Points::ZERO,
            Some(reservation),
            at,
        )
        .await?;
        let event = WalletEvent::PointsRefunded {
            user_id: user,
            reservation_id: reservation,
            points: spent.value(),
            balance: after.balance().value(),
            refunded_at: at,
        };
        outbox::append(tx, &[event.outgoing(Some(cause))]).await
    }

    /// Records a purchase before its card is charged: a new one, or, when
    /// the user already made one under `key`, that one (nothing recorded).
    pub async fn open_purchase(
        &self,
        user: UserId,
        key: Option<&str>,
        points: Points,
    ) -> anyhow::Result<Opened> {
        let now = timestamp(kernel::now());
        let purchase = Purchase {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user,
            payment_id: PaymentId::new(),
            points,
            status: PurchaseStatus::Pending,
            reason: None,
            balance: None,
            updated_at: now.clone(),
        };
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO point_purchases ({PURCHASE_COLUMNS}, idempotency_key, created_at)
             VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $6)
             ON CONFLICT (user_id, idempotency_key) DO NOTHING"
        ))
        .bind(&purchase.id)
        .bind(user.to_string())
        .bind(purchase.payment_id.to_string())
        .bind(to_sql(points)?)
        .bind(PurchaseStatus::Pending.as_str())
        .bind(&now)
        .bind(key)
        .execute(&mut *tx)
        .await
        .context("recording a purchase of points")?;
        self.store.commit(tx).await?;
        if inserted.rows_affected() == 1 {
            return Ok(Opened::New(purchase));
        }
        let key = key.context("a purchase without a key conflicts")?;
        let row = sqlx::query(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM point_purchases WHERE user_id = $1 AND idempotency_key = $2"
        ))
        .bind(user.to_string())
        .bind(key)
        .fetch_one(self.store.reader())
        .await
        .context("finding the purchase under its key")?;
        Ok(Opened::Existing(purchase_from_row(&row)?))
    }

    /// A purchase as it stands now.
    pub async fn purchase(&self, id: &str) -> anyhow::Result<Purchase> {
        let row = sqlx::query(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM point_purchases WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(self.store.reader())
        .await
        .with_context(|| format!("loading purchase {id}"))?;
        purchase_from_row(&row)
    }

    /// Moves a purchase on from where it was read (same status, same
    /// payment); `false` when something else moved it first.
    pub async fn mark_purchase(
        &self,
        purchase: &Purchase,
        to: PurchaseStatus,
        reason: Option<&str>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.store.begin().await?;
        let updated = sqlx::query(
            "UPDATE point_purchases SET status = $1, reason = $2, updated_at = $3
             WHERE id = $4 AND payment_id = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(reason)
        .bind(timestamp(kernel::now()))
        .bind(&purchase.id)
        .bind(purchase.payment_id.to_string())
        .bind(purchase.status.as_str())
        .execute(&mut *tx)
        .await?;
        self.store.commit(tx).await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Takes a purchase on to charge it: a failed or cancelled one is tried
    /// again under a new payment id, a stale pending one keeps its own (its
    /// charge may have happened). `None` when something else took it first.
    pub async fn take_purchase(&self, purchase: &Purchase) -> anyhow::Result<Option<Purchase>> {
        let now = timestamp(kernel::now());
        let payment_id = match purchase.status {
            PurchaseStatus::Pending => purchase.payment_id,
            _ => PaymentId::new(),
        };
        let mut tx = self.store.begin().await?;
        let updated = sqlx::query(
            "UPDATE point_purchases SET status = $1, payment_id = $2, reason = NULL, updated_at = $3
             WHERE id = $4 AND payment_id = $5 AND status = $6 AND updated_at = $7",
        )
        .bind(PurchaseStatus::Pending.as_str())
        .bind(payment_id.to_string())
        .bind(&now)
        .bind(&purchase.id)
        .bind(purchase.payment_id.to_string())
        .bind(purchase.status.as_str())
        .bind(&purchase.updated_at)
        .execute(&mut *tx)
        .await?;
        self.store.commit(tx).await?;
        Ok((updated.rows_affected() == 1).then(|| Purchase {
            payment_id,
            status: PurchaseStatus::Pending,
            reason: None,
            updated_at: now,
            ..purchase.clone()
        }))
    }

    /// Credits a charged purchase, in one transaction with its entry and
    /// `PointsPurchased`: the first purchase opens the wallet, later ones
    /// top it up. The balance after it, or `None` when the purchase was no
    /// longer pending under this payment (credited already, or given up).
    pub async fn credit_purchase(&self, purchase: &Purchase) -> anyhow::Result<Option<Points>> {
        let mut tx = self.store.begin().await?;
        let user = purchase.user_id;
        let wallet = self.load_for_update(&mut tx, user).await?;
        let after = wallet.top_up(purchase.points);
        let at = kernel::now();
        let credited = sqlx::query(
            "UPDATE point_purchases SET status = $1, balance = $2, updated_at = $3
             WHERE id = $4 AND payment_id = $5 AND status = $6",
        )
        .bind(PurchaseStatus::Credited.as_str())
        .bind(to_sql(after.balance())?)
        .bind(timestamp(at))
        .bind(&purchase.id)
        .bind(purchase.payment_id.to_string())
        .bind(PurchaseStatus::Pending.as_str())
        .execute(&mut *tx)
        .await?;
        if credited.rows_affected() != 1 {
            return Ok(None);
        }
        self.set_balance(&mut tx, user, wallet, after).await?;
        insert_entry(
            &mut tx,
            user,
            EntryKind::Purchased,
            purchase.points,
            Points::ZERO,
            None,
            at,
        )
        .await?;
        let event = WalletEvent::PointsPurchased {
            user_id: user,
            payment_id: purchase.payment_id,
            points: purchase.points.value(),
            balance: after.balance().value(),
            purchased_at: at,
        };
        outbox::append(&mut tx, &[event.outgoing(None)]).await?;
        self.store.commit(tx).await?;
        Ok(Some(after.balance()))
    }

    /// Purchases a stopped process may have left half done: pending or
    /// being taken back, untouched since `before`; oldest first.
    pub async fn purchases_to_recover(
        &self,
        before: OffsetDateTime,
        limit: i64,
    ) -> anyhow::Result<Vec<Purchase>> {
        let rows = sqlx::query(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM point_purchases
             WHERE status IN ($1, $2) AND updated_at < $3 ORDER BY updated_at LIMIT $4"
        ))
        .bind(PurchaseStatus::Pending.as_str())
        .bind(PurchaseStatus::Cancelling.as_str())
        .bind(timestamp(before))
        .bind(limit)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(purchase_from_row).collect()
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

    /// The user's wallet, if there is one, locked until the transaction
    /// ends on PostgreSQL.
    async fn load_existing_for_update(
        &self,
        tx: &mut Tx,
        user: UserId,
    ) -> anyhow::Result<Option<Wallet>> {
        let lock = self.store.for_update();
        let balance: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT balance FROM wallets WHERE user_id = $1{lock}"
        ))
        .bind(user.to_string())
        .fetch_optional(&mut **tx)
        .await
        .with_context(|| format!("loading the wallet of {user}"))?;
        balance
            .map(|balance| Ok(Wallet::restore(from_sql(balance)?)))
            .transpose()
    }

    /// The user's wallet, created empty if need be and locked until the
    /// transaction ends on PostgreSQL (SQLite has one writer already).
    async fn load_for_update(&self, tx: &mut Tx, user: UserId) -> anyhow::Result<Wallet> {
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
        tx: &mut Tx,
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

/// A purchase of points as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub id: String,
    pub user_id: UserId,
    /// What the card is charged under; payment charges an id at most once.
    pub payment_id: PaymentId,
    pub points: Points,
    pub status: PurchaseStatus,
    /// Why the card was declined, or why the charge failed.
    pub reason: Option<String>,
    /// The balance right after the credit.
    pub balance: Option<Points>,
    /// When it last changed (stored text, compared as it is).
    pub updated_at: String,
}

/// What recording a purchase found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Recorded now: this request charges it.
    New(Purchase),
    /// Made before under the same key.
    Existing(Purchase),
}

const PURCHASE_COLUMNS: &str =
    "id, user_id, payment_id, points, status, reason, balance, updated_at";

fn purchase_from_row(row: &AnyRow) -> anyhow::Result<Purchase> {
    let text = |name: &str| -> anyhow::Result<String> { Ok(row.try_get::<String, _>(name)?) };
    let status = text("status")?;
    let balance: Option<i64> = row.try_get("balance")?;
    Ok(Purchase {
        id: text("id")?,
        user_id: text("user_id")?.parse()?,
        payment_id: text("payment_id")?.parse()?,
        points: from_sql(row.try_get("points")?)?,
        status: PurchaseStatus::parse(&status)
            .with_context(|| format!("unknown purchase status {status:?}"))?,
        reason: row.try_get("reason")?,
        balance: balance.map(from_sql).transpose()?,
        updated_at: text("updated_at")?,
    })
}

/// Whether the booking was already refused payment with points.
async fn refused(tx: &mut Tx, reservation: ReservationId) -> anyhow::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT reservation_id FROM points_refusals WHERE reservation_id = $1")
            .bind(reservation.to_string())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

async fn ensure_wallet(tx: &mut Tx, user: UserId) -> anyhow::Result<()> {
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
    tx: &mut Tx,
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
    tx: &mut Tx,
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

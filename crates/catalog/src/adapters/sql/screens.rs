//! The screen registry.

use anyhow::Context;
use contracts::catalog::CatalogEvent;
use contracts::IntegrationEvent;
use kernel::ids::ScreenId;
use runtime::http::{parse_timestamp, timestamp};
use runtime::store::Listing;
use runtime::store::Tx;
use runtime::{outbox, Store};
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::domain::screen::{Layout, NewScreen, Screen, ScreenSchedule, Showing, SHOWING_LENGTH};

const COLUMNS: &str = "id, name, rows, seats_per_row, blocked, created_at";

const SCREENS: Listing = Listing {
    table: "screens",
    columns: COLUMNS,
    sort: "created_at",
    id: "id",
    newest_first: false,
};

/// A screen as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenRecord {
    pub screen: Screen,
    pub created_at: OffsetDateTime,
}

/// Another screen already has this name.
#[derive(Debug, thiserror::Error)]
#[error("a screen named {0:?} already exists")]
pub struct ScreenNameTaken(pub String);

#[derive(Clone, Debug)]
pub struct Screens {
    store: Store,
}

impl Screens {
    pub fn new(store: Store) -> Screens {
        Screens { store }
    }

    /// Registers a screen and announces it, in one transaction; a name
    /// already registered is refused by the database's unique key.
    pub async fn register(
        &self,
        screen: NewScreen,
    ) -> anyhow::Result<Result<ScreenRecord, ScreenNameTaken>> {
        let name = screen.name.clone();
        let mut tx = self.store.begin().await?;
        let Some(record) = insert(&mut tx, screen).await? else {
            return Ok(Err(ScreenNameTaken(name)));
        };
        self.store.commit(tx).await?;
        Ok(Ok(record))
    }

    /// Adds the screens whose names are not registered yet, announcing
    /// only those. Safe when several replicas start at once: a name
    /// another one inserted meanwhile is skipped by the database.
    pub async fn ensure(&self, screens: Vec<NewScreen>) -> anyhow::Result<Vec<ScreenRecord>> {
        let mut tx = self.store.begin().await?;
        let mut added = Vec::new();
        for screen in screens {
            if let Some(record) = insert(&mut tx, screen).await? {
                added.push(record);
            }
        }
        self.store.commit(tx).await?;
        Ok(added)
    }

    pub async fn find(&self, id: ScreenId) -> anyhow::Result<Option<ScreenRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM screens WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.store.reader())
            .await?;
        row.map(|row| from_row(&row)).transpose()
    }

    /// Screens in the order they were registered, a page at a time.
    /// `Ok(None)` when `after` names no screen.
    pub async fn list(
        &self,
        after: Option<ScreenId>,
        limit: i64,
    ) -> anyhow::Result<Option<Vec<ScreenRecord>>> {
        let Some(rows) = self
            .store
            .page(&SCREENS, &[], after.map(|id| id.to_string()), limit)
            .await?
        else {
            return Ok(None);
        };
        rows.iter()
            .map(from_row)
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}

/// Inserts a screen unless its name is taken (`None` then), with its
/// `ScreenRegistered` event.
async fn insert(tx: &mut Tx, screen: NewScreen) -> anyhow::Result<Option<ScreenRecord>> {
    let record = ScreenRecord {
        screen: Screen {
            id: ScreenId::new(),
            name: screen.name,
            layout: screen.layout,
        },
        created_at: kernel::now(),
    };
    let Screen { id, name, layout } = &record.screen;
    let blocked: Vec<String> = layout.blocked().iter().map(ToString::to_string).collect();
    let inserted = sqlx::query(&format!(
        "INSERT INTO screens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO NOTHING"
    ))
    .bind(id.to_string())
    .bind(name)
    .bind(i64::from(layout.rows()))
    .bind(i64::from(layout.seats_per_row()))
    .bind(serde_json::to_string(&blocked)?)
    .bind(timestamp(record.created_at))
    .execute(&mut **tx)
    .await
    .context("storing a screen")?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    let event = CatalogEvent::ScreenRegistered {
        screen_id: *id,
        name: name.clone(),
        rows: layout.rows(),
        seats_per_row: layout.seats_per_row(),
        blocked: layout.blocked().to_vec(),
        registered_at: record.created_at,
    };
    outbox::append(tx, &[event.outgoing(None)]).await?;
    Ok(Some(record))
}

/// Every screen with what it shows, for assigning one to a showing at
/// `starts_at`. The screens stay locked (PostgreSQL) until the showing is
/// stored, so a concurrent registration sees it. A withdrawn showing no
/// longer occupies its screen.
pub(super) async fn schedules(
    tx: &mut Tx,
    store: &Store,
    starts_at: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<ScreenSchedule>> {
    let lock = store.for_update();
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM screens ORDER BY id{lock}"))
        .fetch_all(&mut **tx)
        .await
        .context("reading the screens")?;
    let mut schedules: Vec<ScreenSchedule> = rows
        .iter()
        .map(|row| {
            Ok(ScreenSchedule {
                screen: from_row(row)?.screen,
                showings: 0,
                nearby: Vec::new(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let counts = sqlx::query(
        "SELECT screen_id, COUNT(*) AS showings FROM listings
         WHERE screen_id IS NOT NULL AND withdrawn_at IS NULL GROUP BY screen_id",
    )
    .fetch_all(&mut **tx)
    .await
    .context("counting showings per screen")?;
    for row in counts {
        let screen: String = row.try_get("screen_id")?;
        let showings: i64 = row.try_get("showings")?;
        if let Some(schedule) = schedules
            .iter_mut()
            .find(|s| s.screen.id.to_string() == screen)
        {
            schedule.showings = u32::try_from(showings)?;
        }
    }
    // Only showings that could overlap matter; timestamps are fixed-width
    // text, so text order is time order.
    if let Some(starts_at) = starts_at {
        let nearby = sqlx::query(
            "SELECT id, screen_id, starts_at FROM listings
             WHERE screen_id IS NOT NULL AND withdrawn_at IS NULL
               AND starts_at > $1 AND starts_at < $2",
        )
        .bind(timestamp(starts_at - SHOWING_LENGTH))
        .bind(timestamp(starts_at + SHOWING_LENGTH))
        .fetch_all(&mut **tx)
        .await
        .context("finding showings near the new one")?;
        for row in nearby {
            let id: String = row.try_get("id")?;
            let screen: String = row.try_get("screen_id")?;
            let at: String = row.try_get("starts_at")?;
            if let Some(schedule) = schedules
                .iter_mut()
                .find(|s| s.screen.id.to_string() == screen)
            {
                schedule.nearby.push(Showing {
                    listing_id: id.parse()?,
                    starts_at: parse_timestamp(&at)?,
                });
            }
        }
    }
    Ok(schedules)
}

fn from_row(row: &AnyRow) -> anyhow::Result<ScreenRecord> {
    let id: String = row.try_get("id")?;
    let rows: i64 = row.try_get("rows")?;
    let seats_per_row: i64 = row.try_get("seats_per_row")?;
    let blocked: String = row.try_get("blocked")?;
    let blocked: Vec<String> = serde_json::from_str(&blocked)?;
    let created_at: String = row.try_get("created_at")?;
    Ok(ScreenRecord {
        screen: Screen {
            id: id.parse()?,
            name: row.try_get("name")?,
            layout: Layout::parse(rows, seats_per_row, &blocked)?,
        },
        created_at: parse_timestamp(&created_at)?,
    })
}

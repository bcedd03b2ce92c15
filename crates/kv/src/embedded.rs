//! The embedded adapter: one redb file.
//!
//! redb over the alternatives (fjall, sled): its write transactions are
//! ACID and serialised, which is exactly the check-then-write a commit
//! needs; it is pure Rust, one file, and a B-tree, suited to point reads.
//! Its calls block, so they run on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use crate::{Commit, KvBackend, Value};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

#[derive(Clone)]
pub struct Redb {
    db: Arc<Database>,
}

impl std::fmt::Debug for Redb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redb")
    }
}

impl Redb {
    /// Opens the file, creating it (readable by its owner only: customers'
    /// bookings are in it).
    pub fn open(path: &Path) -> anyhow::Result<Redb> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        runtime::store::keep_private(path)?;
        let db = Database::create(path).with_context(|| format!("opening {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(TABLE)?;
        tx.commit()?;
        Ok(Redb { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await?
    }
}

#[async_trait]
impl KvBackend for Redb {
    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Value>>> {
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let table = tx.open_table(TABLE)?;
            keys.iter()
                .map(|key| Ok(table.get(key.as_str())?.map(|value| value.value().to_vec())))
                .collect()
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> anyhow::Result<bool> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(TABLE)?;
                for (key, expected) in &commit.expected {
                    let current = table.get(key.as_str())?.map(|value| value.value().to_vec());
                    if current != *expected {
                        drop(table);
                        tx.abort()?;
                        return Ok(false);
                    }
                }
                for (key, value) in &commit.writes {
                    match value {
                        Some(value) => table.insert(key.as_str(), value.as_slice())?,
                        None => table.remove(key.as_str())?,
                    };
                }
            }
            tx.commit().context("committing to redb")?;
            Ok(true)
        })
        .await
    }

    async fn clear(&self, prefix: &str) -> anyhow::Result<u64> {
        let prefix = prefix.to_owned();
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let removed = {
                let mut table = tx.open_table(TABLE)?;
                let keys: Vec<String> = table
                    .range(prefix.as_str()..)?
                    .map(|entry| entry.map(|(key, _)| key.value().to_owned()))
                    .take_while(|key| key.as_ref().map_or(true, |key| key.starts_with(&prefix)))
                    .collect::<Result<_, _>>()?;
                for key in &keys {
                    table.remove(key.as_str())?;
                }
                keys.len() as u64
            };
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

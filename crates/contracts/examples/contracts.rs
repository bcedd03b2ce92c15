//! Writes the contract documents generated from the event types.
//!
//! ```text
//! cargo run -p contracts --example contracts -- write         # contracts/ and the docs' table
//! cargo run -p contracts --example contracts -- write DIR     # the documents only, into DIR
//! cargo run -p contracts --example contracts -- release       # contracts/released/<version>/
//! ```
//!
//! `write` is what to run after changing an event; `release` records the
//! current contract as the baseline later changes are checked against.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use contracts::documents;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `files` under `dir`, removing event schemas no type has any more.
fn write(dir: &Path, files: &std::collections::BTreeMap<String, String>) -> anyhow::Result<()> {
    let events = dir.join("events");
    if events.is_dir() {
        for entry in std::fs::read_dir(&events)? {
            let path = entry?.path();
            let relative = format!("events/{}", path.file_name().unwrap().to_string_lossy());
            if !files.contains_key(&relative) {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    for (relative, content) in files {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {} files to {}", files.len(), dir.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files = documents::files();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write"] => {
            write(&repository().join("contracts"), &files)?;
            let architecture = repository().join("docs/architecture.md");
            let text = std::fs::read_to_string(&architecture)?;
            let table = documents::catalogue_table(&documents::catalogue());
            let updated = documents::with_table(&text, &table).with_context(|| {
                format!(
                    "{} has no event catalogue markers ({} … {})",
                    architecture.display(),
                    documents::TABLE_START,
                    documents::TABLE_END
                )
            })?;
            std::fs::write(&architecture, updated)?;
            println!("updated the event catalogue in {}", architecture.display());
        }
        ["write", dir] => write(Path::new(dir), &files)?,
        ["release"] => {
            let dir = repository()
                .join("contracts/released")
                .join(contracts::CONTRACT_VERSION);
            // A released contract is what consumers were built against: it
            // never changes, a new one gets a new version.
            if dir.exists() {
                bail!(
                    "{} exists: version {} is released; bump CONTRACT_VERSION first",
                    dir.display(),
                    contracts::CONTRACT_VERSION
                );
            }
            write(&dir, &files)?;
        }
        _ => bail!("usage: contracts write [DIR] | contracts release"),
    }
    Ok(())
}

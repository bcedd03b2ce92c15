//! Writes the contract documents generated from the code: the event
//! contract (from the event types) and the public API document (from the
//! handlers).
//!
//! ```text
//! cargo run -p boxoffice --example contracts -- write         # contracts/, web/openapi.json, the docs' table
//! cargo run -p boxoffice --example contracts -- write DIR     # the documents only, into DIR
//! cargo run -p boxoffice --example contracts -- release       # contracts/released/<version>/
//! ```
//!
//! `write` is what to run after changing an event or an API operation;
//! `release` records the current contracts as the baseline later changes
//! are checked against (each at its own version, never overwritten).

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

/// Where the API document is committed.
const OPENAPI: &str = "web/openapi.json";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let files = documents::files();
    let api = boxoffice::api::json();
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
            std::fs::write(repository().join(OPENAPI), &api)?;
            println!("wrote {OPENAPI}");
        }
        ["write", dir] => {
            write(Path::new(dir), &files)?;
            std::fs::write(Path::new(dir).join("openapi.json"), &api)?;
        }
        ["release"] => {
            let released = repository().join("contracts/released");
            // A released contract is what consumers were built against: it
            // never changes, a new one gets a new version.
            let events = released.join(contracts::CONTRACT_VERSION);
            let api_version = boxoffice::api::document().info.version;
            let api_file = released.join(&api_version).join("openapi.json");
            match (events.join("asyncapi.json").exists(), api_file.exists()) {
                (true, true) => bail!(
                    "events {} and API {api_version} are released; bump CONTRACT_VERSION or the API's info.version first",
                    contracts::CONTRACT_VERSION
                ),
                (events_released, api_released) => {
                    if !events_released {
                        write(&events, &files)?;
                    }
                    if !api_released {
                        std::fs::create_dir_all(api_file.parent().unwrap())?;
                        std::fs::write(&api_file, &api)?;
                        println!("wrote {}", api_file.display());
                    }
                }
            }
        }
        _ => bail!("usage: contracts write [DIR] | contracts release"),
    }
    Ok(())
}

//! The committed contract documents (`contracts/` at the repository root)
//! are what the event types generate, the contract stays compatible with
//! its last release (or breaks it deliberately), and every consumer's
//! expectations are met by the producers' schemas.

use std::path::{Path, PathBuf};

use contracts::compatibility::{breaking_changes, check_release, Version};
use contracts::documents::{self, REGENERATE};
use contracts::expectations::Consumer;
use contracts::CONTRACT_VERSION;
use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repository().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}; run `{REGENERATE}`", path.display()))
}

fn json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn current() -> Value {
    documents::asyncapi(&documents::catalogue())
}

#[test]
fn the_committed_documents_are_what_the_event_types_generate() {
    let files = documents::files();
    let mut stale = Vec::new();
    for (relative, generated) in &files {
        let path = repository().join("contracts").join(relative);
        if std::fs::read_to_string(&path).ok().as_ref() != Some(generated) {
            stale.push(format!("contracts/{relative}"));
        }
    }
    for entry in std::fs::read_dir(repository().join("contracts/events")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !files.contains_key(&format!("events/{name}")) {
            stale.push(format!("contracts/events/{name} (no such event type)"));
        }
    }
    assert!(
        stale.is_empty(),
        "not what the event types generate: {stale:#?}\nrun `{REGENERATE}` to regenerate"
    );
}

#[test]
fn the_architecture_document_lists_every_event() {
    let text = read("docs/architecture.md");
    let table = documents::catalogue_table(&documents::catalogue());
    assert_eq!(
        documents::with_table(&text, &table).as_deref(),
        Some(text.as_str()),
        "docs/architecture.md's event catalogue is out of date: run `{REGENERATE}` to regenerate"
    );
}

/// The newest version under `contracts/released/`.
fn last_release() -> Version {
    std::fs::read_dir(repository().join("contracts/released"))
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().to_str()?.parse().ok())
        .max()
        .expect("contracts/released/ holds a released version")
}

#[test]
fn the_contract_keeps_what_its_last_release_promised() {
    let released_version = last_release();
    let released = json(&format!(
        "contracts/released/{released_version}/asyncapi.json"
    ));
    assert_eq!(
        released["info"]["version"],
        released_version.to_string(),
        "a release is filed under its own version"
    );
    let breaks = breaking_changes(&released, &current());
    let version: Version = CONTRACT_VERSION.parse().unwrap();
    if let Err(problem) = check_release(
        released_version,
        version,
        &breaks,
        &read("contracts/CHANGELOG.md"),
    ) {
        panic!("{problem}");
    }
}

#[test]
fn a_field_removed_from_the_current_contract_would_fail_the_check() {
    // The check above on a deliberately broken contract: it must name the
    // field, or the check proves nothing.
    let released = current();
    let mut broken = released.clone();
    let booking = broken["components"]["schemas"]["Booking"]["properties"]
        .as_object_mut()
        .unwrap();
    booking.remove("amount").expect("bookings carry an amount");
    let breaks = breaking_changes(&released, &broken);
    assert!(
        breaks.contains(
            &r#"event boxoffice.reservation.confirmed: field "booking.amount" removed"#.to_owned()
        ),
        "{breaks:#?}"
    );
    let version: Version = CONTRACT_VERSION.parse().unwrap();
    let error = check_release(version, version, &breaks, "").unwrap_err();
    assert!(
        error.contains(r#"field "booking.amount" removed"#),
        "{error}"
    );
}

/// Every `contracts/consumers/<context>.json`.
fn consumers() -> Vec<(String, Consumer)> {
    let mut found: Vec<(String, Consumer)> =
        std::fs::read_dir(repository().join("contracts/consumers"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let consumer = Consumer::parse(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
                (name, consumer)
            })
            .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_consumer_reads_only_what_the_producers_publish() {
    let document = current();
    let consumers = consumers();
    let names: Vec<&str> = consumers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "catalog",
            "dashboard",
            "mypage",
            "notification",
            "payment",
            "reservation",
            "wallet"
        ],
        "one file per consuming context"
    );
    let mut unmet = Vec::new();
    for (name, consumer) in &consumers {
        assert_eq!(&consumer.consumer, name, "contracts/consumers/{name}.json");
        unmet.extend(consumer.unmet(&document));
    }
    assert!(unmet.is_empty(), "{unmet:#?}");
}

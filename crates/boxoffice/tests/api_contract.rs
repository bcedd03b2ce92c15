//! The public API document is generated from the handlers: the committed
//! `web/openapi.json` is what the code generates, and the current API keeps
//! what its last release promised (or says, in a new major version and the
//! changelog, what it breaks).

use std::path::{Path, PathBuf};

use contracts::api_compatibility::{api_breaking_changes, check_api_release};
use contracts::compatibility::Version;
use contracts::documents::REGENERATE;
use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repository().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}; run `{REGENERATE}`", path.display()))
}

#[test]
fn the_committed_api_document_is_what_the_handlers_generate() {
    let committed = read("web/openapi.json");
    assert!(
        committed == boxoffice::api::json(),
        "web/openapi.json is not what the handlers generate: run `{REGENERATE}` to regenerate"
    );
}

#[test]
fn the_api_document_is_openapi_3_1_with_every_operation_named_once() {
    let document: Value = serde_json::from_str(&boxoffice::api::json()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut ids = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str();
            assert!(id.is_some(), "{method} {path} has no operationId");
            ids.push(id.unwrap().to_owned());
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "an operationId is used twice");
    // Every reference names something the document has.
    let text = document.to_string();
    for target in text.split("\"$ref\":\"").skip(1) {
        let target = &target[..target.find('"').unwrap()];
        assert!(
            document.pointer(target.trim_start_matches('#')).is_some(),
            "{target} is referenced but not in the document"
        );
    }
}

/// The newest version under `contracts/released/` that has an API document.
fn last_api_release() -> Version {
    std::fs::read_dir(repository().join("contracts/released"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.join("openapi.json").is_file())
        .filter_map(|dir| dir.file_name()?.to_str()?.parse().ok())
        .max()
        .expect("contracts/released/ holds a released API document")
}

fn current() -> Value {
    serde_json::from_str(&boxoffice::api::json()).unwrap()
}

#[test]
fn the_api_keeps_what_its_last_release_promised() {
    let released_version = last_api_release();
    let released: Value = serde_json::from_str(&read(&format!(
        "contracts/released/{released_version}/openapi.json"
    )))
    .unwrap();
    assert_eq!(
        released["info"]["version"],
        released_version.to_string(),
        "a release is filed under its own version"
    );
    let current = current();
    let version: Version = current["info"]["version"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let breaks = api_breaking_changes(&released, &current);
    if let Err(problem) = check_api_release(
        released_version,
        version,
        &breaks,
        &read("contracts/CHANGELOG.md"),
    ) {
        panic!("{problem}");
    }
}

#[test]
fn a_response_field_removed_from_the_current_api_would_fail_the_check() {
    // The check above on a deliberately broken document: it must name the
    // operation and the field, or the check proves nothing.
    let released = current();
    let mut broken = released.clone();
    broken["components"]["schemas"]["Reservation"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("status")
        .expect("a reservation has a status");
    let breaks = api_breaking_changes(&released, &broken);
    let expected = r#"GET /reservations/{id}: response 200 field "status" removed"#;
    assert!(breaks.contains(&expected.to_owned()), "{breaks:#?}");
    let version: Version = released["info"]["version"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let error = check_api_release(version, version, &breaks, "").unwrap_err();
    assert!(error.contains(expected), "{error}");
}

#[test]
fn a_public_route_made_private_would_fail_the_check() {
    let released = current();
    let mut broken = released.clone();
    broken["paths"]["/listings"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("security");
    assert_eq!(
        api_breaking_changes(&released, &broken),
        ["GET /listings: security tightened: a public operation now needs a token"]
    );
}

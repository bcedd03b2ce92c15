//! The public API document is generated from the handlers: the committed
//! `web/openapi.json` is what the code generates, and the current API keeps
//! what its last release promised (or says, in a new major version and the
//! changelog, what it breaks).

use std::path::{Path, PathBuf};

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

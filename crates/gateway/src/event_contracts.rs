//! The event contract, served as documents: the AsyncAPI document and each
//! event type's JSON Schema, public like the OpenAPI document. Generated
//! from the event types once, at first request: the same text as the
//! committed `contracts/` files (the contracts crate's tests hold them
//! equal), without reading the disk.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::http::problem_response;

static DOCUMENTS: LazyLock<BTreeMap<String, String>> = LazyLock::new(contracts::documents::files);

fn json(document: &str) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_owned(),
    )
        .into_response()
}

/// `GET /asyncapi.json`.
#[utoipa::path(get, path = "/asyncapi.json", tag = "operations", operation_id = "asyncapi",
    summary = "The event contract (AsyncAPI 3.0)",
    description = "The integration events the contexts publish to each other: a channel per topic, a message per CloudEvents type with its Kafka key, `ce_*` headers, correlation id and payload schema. Generated from the event types; `info.version` is the contract's version.",
    security(()),
    responses((status = 200, description = "The AsyncAPI document.", body = Object)))]
pub async fn asyncapi() -> Response {
    json(&DOCUMENTS["asyncapi.json"])
}

/// `GET /contracts/events/{type}.schema.json`.
#[utoipa::path(get, path = "/contracts/events/{file}", tag = "operations", operation_id = "eventSchema",
    summary = "One event type's JSON Schema",
    description = "The JSON Schema (2020-12) of one event type as a whole structured-mode CloudEvent: `{file}` is `<type>.schema.json`, e.g. `boxoffice.reservation.confirmed.schema.json`.",
    security(()),
    params(("file" = String, Path, description = "`<type>.schema.json`, for an event type of the AsyncAPI document.")),
    responses(
        (status = 200, description = "The event type's schema.", body = Object),
        (status = 404, response = runtime::api::E404),
    ))]
pub async fn event_schema(Path(file): Path<String>) -> Response {
    match schema_of(&DOCUMENTS, &file) {
        Some(document) => json(document),
        None => problem_response(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!(
                "no event schema {file:?}: ask for <type>.schema.json, with a type of /asyncapi.json"
            ),
        ),
    }
}

/// The schema named by a request's file name; only event schemas are
/// served this way (not the AsyncAPI document or the envelope).
fn schema_of<'a>(documents: &'a BTreeMap<String, String>, file: &str) -> Option<&'a String> {
    file.strip_suffix(".schema.json")?;
    documents.get(&format!("events/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_type_is_asked_for_by_its_schema_file_name() {
        let schema = schema_of(&DOCUMENTS, "boxoffice.reservation.confirmed.schema.json")
            .expect("a published type");
        let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
        assert_eq!(
            schema["properties"]["type"]["const"],
            "boxoffice.reservation.confirmed"
        );
        for not_an_event in [
            "boxoffice.reservation.confirmed",
            "boxoffice.reservation.approved.schema.json",
            "asyncapi.json",
            "../asyncapi.json",
        ] {
            assert_eq!(schema_of(&DOCUMENTS, not_an_event), None, "{not_an_event}");
        }
    }
}

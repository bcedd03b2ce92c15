//! The parts of the OpenAPI document every service shares: the problem
//! document, the error answers by status, the paging parameters, and the
//! way an operation says who may call it.
//!
//! Each service annotates its handlers (`#[utoipa::path]`) and its request
//! and response types (`#[derive(ToSchema)]`); the gateway merges the
//! services' documents into the public one. The error answers are shared
//! components (`#/components/responses/E404`, …) so that every operation
//! that can answer 404 says the same thing about it.

use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, Response, Schema};
use utoipa::{IntoParams, ToResponse};

use crate::http::Page;

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearerAuth";

/// The role named in an admin-only operation's security requirement
/// (`{"bearerAuth": ["admin"]}`, as OpenAPI 3.1 allows roles for schemes
/// other than OAuth).
pub const ADMIN_ROLE: &str = "admin";

/// Builds a value of an OpenAPI type from its JSON form, for the few
/// schemas and answers no derive can describe.
///
/// # Panics
/// When `value` is not of that type's shape: a fault in this source, found
/// by the tests that build the document.
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid OpenAPI fragment")
}

/// A schema that is a string taking one of `values`: for wire values a
/// domain type writes with its own `as_str`, so the document lists exactly
/// what the code can send.
pub fn string_enum(values: &[&str]) -> RefOr<Schema> {
    from_json(json!({"type": "string", "enum": values}))
}

fn problem(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut response = json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    if retry_after {
        response["headers"] = json!({"Retry-After": {
            "description": "Whole seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 1},
        }});
    }
    from_json(response)
}

/// Declares a problem+json answer as a reusable response component.
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal $(, $retry:ident)?;)+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($description, problem_responses!(@retry $($retry)?)))
            }
        }
    )+};
    (@retry retry_after) => { true };
    (@retry) => { false };
}

problem_responses! {
    /// 400.
    E400 => "Malformed request: the body is not valid JSON or does not match the expected shape (unknown fields are refused), or a query/header value is invalid.";
    /// 401.
    E401 => "No bearer token, or the token is invalid or expired.";
    /// 402.
    E402 => "The card was declined; `detail` gives the provider's reason. Nothing was booked or charged.";
    /// 403.
    E403 => "The caller's role may not do this (admin only).";
    /// 404.
    E404 => "Unknown, or not the caller's.";
    /// 409.
    E409 => "State conflict.";
    /// 413.
    E413 => "The body is larger than 64 KiB.";
    /// 415.
    E415 => "The body must be sent with `Content-Type: application/json`.";
    /// 422.
    E422 => "Well-formed but invalid (e.g. quantity 0, unknown listing, value out of range).";
    /// 429.
    E429 => "Rate limited: too many sign-in attempts from this client address, or too many changes by this user. `detail` names the limit; retry after the number of seconds in `Retry-After` (at least 1).", retry_after;
    /// 502.
    E502 => "A service's answer could not be passed on (larger than 16 MiB).";
    /// 503.
    E503 => "Unavailable for now: a service behind the gateway does not answer, payment is unavailable (the circuit breaker answers at once while it is open), or too many passwords are being checked at once. Retry after the number of seconds in `Retry-After`.", retry_after;
}

/// Every shared error answer, for the document's components.
pub fn problem_components() -> Vec<(String, RefOr<Response>)> {
    [
        E400::response(),
        E401::response(),
        E402::response(),
        E403::response(),
        E404::response(),
        E409::response(),
        E413::response(),
        E415::response(),
        E422::response(),
        E429::response(),
        E502::response(),
        E503::response(),
    ]
    .into_iter()
    .map(|(name, response)| (name.to_owned(), response))
    .collect()
}

/// `?limit=` and `?after=`, as [`Page`] reads them.
impl IntoParams for Page {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            from_json(json!({
                "name": "limit", "in": "query", "required": false,
                "description": format!(
                    "How many items to answer: {} unless given, at most {}.",
                    Page::DEFAULT_LIMIT, Page::MAX_LIMIT
                ),
                "schema": {"type": "integer", "minimum": 1, "maximum": Page::MAX_LIMIT, "default": Page::DEFAULT_LIMIT},
            })),
            from_json(json!({
                "name": "after", "in": "query", "required": false,
                "description": "An id: answer the items that come after it (the last id of the previous page).",
                "schema": {"type": "string"},
            })),
        ]
    }
}

/// The `Idempotency-Key` header that makes a booking or a purchase safe to
/// repeat (each handler reads and checks it from the headers).
#[derive(Debug)]
pub struct IdempotencyKey;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![from_json(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Client-chosen key (e.g. a UUID) that makes retries safe; an empty or over-long key is answered 400.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        }))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_answers_are_problem_documents_and_the_waits_say_when_to_retry() {
        let components = problem_components();
        assert_eq!(components.len(), 12);
        for (name, response) in &components {
            let json = serde_json::to_value(response).unwrap();
            assert_eq!(
                json["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{name}"
            );
            let retries = json["headers"].get("Retry-After").is_some();
            assert_eq!(retries, name == "E429" || name == "E503", "{name}");
        }
    }

    #[test]
    fn the_paging_parameters_are_the_pages_bounds() {
        let params = serde_json::to_value(Page::into_params(|| None)).unwrap();
        assert_eq!(params[0]["name"], "limit");
        assert_eq!(params[0]["schema"]["maximum"], Page::MAX_LIMIT);
        assert_eq!(params[0]["schema"]["default"], Page::DEFAULT_LIMIT);
        assert_eq!(params[1]["name"], "after");
    }
}

//! The public API document (OpenAPI 3.1), put together from the handlers.
//!
//! Each service annotates its own handlers and types and hands over its
//! part ([`utoipa::openapi::OpenApi`]); the gateway adds the routes it owns
//! (sign-in, health, the admin lists over every service, the documents and
//! the UI), then what it does to every call it passes on, by rule rather
//! than on each operation:
//!
//! - a public operation (`security(())` on its handler) is written with
//!   `security: []`; every other one needs a bearer token, so it may be
//!   answered 401, and an admin-only one (`{"bearerAuth": ["admin"]}`) 403;
//! - a JSON body may be malformed (400), too large (413) or of another
//!   type (415);
//! - a change (POST, PUT, PATCH, DELETE) may be rate limited (429);
//! - a call passed on to a service may find it unavailable (503) or its
//!   answer too large to pass on (502);
//! - each route with a rewrite (an alias such as `/items`) answers what the
//!   path it rewrites to answers, so it is documented as that operation.
//!
//! The document is built once, at start-up ([`document`]), and served as
//! it is; `web/openapi.json` is the same document, committed, and checked
//! against the released one for breaking changes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use runtime::api::{ADMIN_ROLE, BEARER};
use serde_json::{json, Map, Value};
use utoipa::openapi::OpenApi;

use crate::proxy::Route;

/// The gateway's own routes and what every document shares.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "boxoffice public API",
        version = "1.0.0",
        description = "The public HTTP API of boxoffice, served by the gateway. JSON bodies with camelCase fields; ids are opaque strings; money is integer minor units. Errors are `application/problem+json` (RFC 9457). Every call needs `Authorization: Bearer <token>` (from `POST /auth/token`) except `GET /listings…`, `/auth/…`, `/health/…`, `/metrics`, `/openapi.json`, the event contracts (`/asyncapi.json`, `/contracts/…`) and the web UI at `/`; on those a missing, invalid or expired token is ignored (the call is anonymous). Operations only admins may call name the `admin` role in their security requirement; the admin user is `admin`. A path with a `.` or `..` segment, an encoded slash, dot or backslash (`%2f`, `%2e`, `%5c`) or a backslash is answered 400 whatever it names. Rate limits: sign-ins and signups per client address, changes (POST, PUT, PATCH, DELETE) per signed-in user; over a limit the answer is 429 with `Retry-After`.",
    ),
    servers((url = "/")),
    security(("bearerAuth" = [])),
    tags(
        (name = "auth"),
        (name = "catalog"),
        (name = "reservations"),
        (name = "notifications"),
        (name = "mypage"),
        (name = "operations"),
        (name = "payments", description = "Card payments and the built-in provider."),
        (name = "points", description = "Loyalty points."),
        (name = "dashboard", description = "The admin's live view of listings, bookings, revenue and points (a read model)."),
        (name = "aliases", description = "Other names of catalog and my-page paths, as the gateway's route table gives them; each answers exactly what its canonical path answers."),
    ),
    paths(
        crate::identity::http::signup,
        crate::identity::http::token,
        crate::dead_letters::list,
        crate::dead_letters::replay,
        crate::services::circuit_breakers,
        openapi,
        crate::event_contracts::asyncapi,
        crate::event_contracts::event_schema,
        crate::ui::index,
        crate::ui::docs,
        crate::ui::asset,
    ),
    components(schemas(
        runtime::http::Problem,
        runtime::dead_letters::DeadLetterView,
        runtime::breaker::BreakerStatus,
    )),
)]
struct GatewayApi;

/// The document, as served.
#[derive(Clone, Debug)]
pub struct ApiDocument(Arc<str>);

impl ApiDocument {
    /// `document` as pretty JSON, ending with a newline (as committed).
    pub fn new(document: &OpenApi) -> ApiDocument {
        ApiDocument(to_json(document).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The document as committed: pretty JSON ending with a newline.
pub fn to_json(document: &OpenApi) -> String {
    let mut text = document
        .to_pretty_json()
        .expect("an OpenAPI document always serialises");
    text.push('\n');
    text
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    summary = "This document", security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object)))]
pub async fn openapi(State(document): State<ApiDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str().to_owned(),
    )
        .into_response()
}

/// Why the parts do not make one document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssemblyError {
    #[error("{method} {path} is documented by two parts")]
    TwiceDocumented { method: String, path: String },
    #[error("the schema {0} is described differently by two parts")]
    SchemaDisagrees(String),
    #[error("the route {prefix} rewrites to {rewrite}, which documents no operation")]
    AliasOfNothing { prefix: String, rewrite: String },
}

/// The public API document: the gateway's routes, `services`' operations
/// (each service's part), the aliases `routes` define, and what the
/// gateway adds to each operation. `dead_letter_services` are the services
/// whose dead letters the admin lists.
pub fn document(
    services: Vec<OpenApi>,
    routes: &[Route],
    dead_letter_services: &[&str],
) -> Result<OpenApi, AssemblyError> {
    let own = to_value(&<GatewayApi as utoipa::OpenApi>::openapi());
    let mut root = own.clone();
    root["paths"] = json!({});
    root["components"]["schemas"] = json!({});
    merge(&mut root, own, false)?;
    merge(
        &mut root,
        to_value(&<runtime::app::HealthApi as utoipa::OpenApi>::openapi()),
        false,
    )?;
    for service in services {
        merge(&mut root, to_value(&service), true)?;
    }
    aliases(&mut root, routes)?;
    name_services(&mut root, dead_letter_services);
    root["components"]["responses"] = runtime::api::problem_components()
        .into_iter()
        .map(|(name, response)| (name, serde_json::to_value(response).unwrap()))
        .collect::<Map<_, _>>()
        .into();
    root["components"]["securitySchemes"] =
        json!({BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}});
    Ok(serde_json::from_value(root).expect("the assembled document is an OpenAPI document"))
}

fn to_value(document: &OpenApi) -> Value {
    serde_json::to_value(document).expect("an OpenAPI document always serialises")
}

/// Adds `part`'s operations and schemas to `root`, with what the gateway
/// does to each operation (`proxied`: passed on to a service).
fn merge(root: &mut Value, part: Value, proxied: bool) -> Result<(), AssemblyError> {
    for (path, item) in part["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let slot = &mut root["paths"][path.as_str()][method.as_str()];
            if !slot.is_null() {
                return Err(AssemblyError::TwiceDocumented {
                    method: method.to_uppercase(),
                    path: path.clone(),
                });
            }
            let mut operation = operation.clone();
            gateway_answers(&mut operation, method, proxied);
            *slot = operation;
        }
    }
    for (name, schema) in part["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let slot = &mut root["components"]["schemas"][name.as_str()];
        if slot.is_null() {
            *slot = schema.clone();
        } else if slot != schema {
            return Err(AssemblyError::SchemaDisagrees(name.clone()));
        }
    }
    Ok(())
}

/// The answers the gateway itself may give to `operation`, and its
/// security written as the document states it.
fn gateway_answers(operation: &mut Value, method: &str, proxied: bool) {
    let security = operation.get("security").cloned();
    let public = security
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|requirements| requirements.iter().all(|r| r == &json!({})));
    let admin = security
        .as_ref()
        .and_then(|s| s.pointer(&format!("/0/{BEARER}")))
        .and_then(Value::as_array)
        .is_some_and(|roles| roles.iter().any(|role| role == ADMIN_ROLE));
    if public {
        operation["security"] = json!([]);
    }
    let mut added = Vec::new();
    if operation.get("requestBody").is_some() {
        added.extend(["400", "413", "415"]);
    }
    if !public {
        added.push("401");
    }
    if admin {
        added.push("403");
    }
    if matches!(method, "post" | "put" | "patch" | "delete") {
        added.push("429");
    }
    if proxied {
        added.extend(["502", "503"]);
    }
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for status in added {
        responses
            .entry(status)
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/E{status}")}));
    }
    let mut sorted: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.cmp(b));
    responses.extend(sorted);
}

/// The operations a route with a rewrite answers: for each path its
/// rewrite reaches, the same operations under the route's prefix, tagged
/// `aliases`. Only reads are listed: the aliases exist for clients that
/// browse under those names.
fn aliases(root: &mut Value, routes: &[Route]) -> Result<(), AssemblyError> {
    let canonical: Vec<(String, Value)> = root["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, item)| (path.clone(), item.clone()))
        .collect();
    for route in routes {
        let Some(rewrite) = &route.rewrite else {
            continue;
        };
        let mut found = 0;
        for (path, operation, fixed) in aliased(&canonical, &route.prefix, rewrite) {
            found += 1;
            root["paths"][path.as_str()]["get"] = operation_alias(operation, &path, &fixed);
        }
        if found == 0 {
            return Err(AssemblyError::AliasOfNothing {
                prefix: route.prefix.clone(),
                rewrite: rewrite.clone(),
            });
        }
    }
    Ok(())
}

/// `(alias path, canonical GET operation, query parameters the rewrite
/// fixes)` for each canonical path the route `prefix` → `rewrite` reaches.
fn aliased<'a>(
    canonical: &'a [(String, Value)],
    prefix: &str,
    rewrite: &str,
) -> Vec<(String, &'a Value, Vec<String>)> {
    let (target, query) = rewrite.split_once('?').unwrap_or((rewrite, ""));
    let fixed: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    let (before, after) = target.split_once("{rest}").unwrap_or((target, ""));
    let mut found = Vec::new();
    for (path, item) in canonical {
        let Some(get) = item.get("get") else {
            continue;
        };
        let rest = if target.contains("{rest}") {
            match path
                .strip_prefix(before)
                .and_then(|rest| rest.strip_suffix(after))
            {
                // The prefix ends with the `/` the rest follows, or the
                // rest starts with one (or is empty).
                Some(rest)
                    if prefix.ends_with('/') && !rest.is_empty() && !rest.starts_with('/') =>
                {
                    rest
                }
                Some(rest)
                    if !prefix.ends_with('/') && (rest.is_empty() || rest.starts_with('/')) =>
                {
                    rest
                }
                _ => continue,
            }
        } else if path == target {
            ""
        } else {
            continue;
        };
        found.push((format!("{prefix}{rest}"), get, fixed.clone()));
    }
    found
}

fn operation_alias(canonical: &Value, path: &str, fixed: &[String]) -> Value {
    let mut operation = canonical.clone();
    let id = canonical["operationId"].as_str().unwrap_or_default();
    operation["operationId"] = json!(format!("{id}Via{}", camel(path)));
    operation["tags"] = json!(["aliases"]);
    let summary = canonical["summary"].as_str().unwrap_or_default();
    operation["summary"] = json!(format!("{summary} (alias)"));
    operation["description"] = json!(format!(
        "Answers what the canonical operation `{id}` answers{}.",
        if fixed.is_empty() {
            String::new()
        } else {
            format!(
                "; `{}` is fixed by the route, a value the client sends is overruled",
                fixed.join("`, `")
            )
        }
    ));
    if let Some(parameters) = operation["parameters"].as_array_mut() {
        parameters.retain(|p| {
            !(p["in"] == "query" && fixed.iter().any(|name| p["name"] == name.as_str()))
        });
    }
    operation
}

/// `/myPages/{id}` → `MyPagesId`.
fn camel(path: &str) -> String {
    path.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The `service` of the dead-letter routes takes one of the services that
/// keep dead letters.
fn name_services(root: &mut Value, services: &[&str]) {
    let schema = json!({"type": "string", "enum": services});
    for (path, method) in [
        ("/admin/dead-letters", "get"),
        ("/admin/dead-letters/{service}/{id}/replay", "post"),
    ] {
        let parameters = root["paths"][path][method]["parameters"].as_array_mut();
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == "service" {
                parameter["schema"] = schema.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, rewrite: Option<&str>) -> Route {
        Route {
            prefix: prefix.to_owned(),
            service: "catalog".to_owned(),
            upstream: "http://catalog".to_owned(),
            rewrite: rewrite.map(str::to_owned),
        }
    }

    fn part(path: &str, method: &str, operation: Value) -> OpenApi {
        serde_json::from_value(json!({
            "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "paths": {path: {method: operation}},
        }))
        .unwrap()
    }

    fn assembled(parts: Vec<OpenApi>, routes: &[Route]) -> Value {
        serde_json::to_value(document(parts, routes, &["catalog"]).unwrap()).unwrap()
    }

    #[test]
    fn a_public_read_is_answered_by_the_gateway_only_when_the_service_is_unreachable() {
        let doc = assembled(
            vec![part(
                "/things",
                "get",
                json!({"operationId": "list", "security": [{}], "responses": {"200": {"description": "ok"}}}),
            )],
            &[],
        );
        let operation = &doc["paths"]["/things"]["get"];
        assert_eq!(operation["security"], json!([]));
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert_eq!(statuses, ["200", "502", "503"]);
    }

    #[test]
    fn an_admin_change_with_a_body_may_be_refused_by_the_gateway_in_every_way() {
        let doc = assembled(
            vec![part(
                "/things",
                "post",
                json!({
                    "operationId": "add", "security": [{"bearerAuth": ["admin"]}],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": {"description": "ok"}},
                }),
            )],
            &[],
        );
        let operation = &doc["paths"]["/things"]["post"];
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert_eq!(
            statuses,
            ["201", "400", "401", "403", "413", "415", "429", "502", "503"]
        );
        assert_eq!(
            operation["responses"]["403"]["$ref"],
            "#/components/responses/E403"
        );
    }

    #[test]
    fn two_parts_may_not_document_one_operation_or_describe_one_schema_differently() {
        let get = json!({"operationId": "a", "responses": {"200": {"description": "ok"}}});
        let twice = document(
            vec![
                part("/a", "get", get.clone()),
                part("/a", "get", get.clone()),
            ],
            &[],
            &[],
        );
        assert_eq!(
            twice.err(),
            Some(AssemblyError::TwiceDocumented {
                method: "GET".to_owned(),
                path: "/a".to_owned()
            })
        );
        let with_schema = |path: &str, values: &[&str]| -> OpenApi {
            serde_json::from_value(json!({
                "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
                "paths": {path: {"get": get}},
                "components": {"schemas": {"Status": {"type": "string", "enum": values}}},
            }))
            .unwrap()
        };
        let disagreeing = document(
            vec![
                with_schema("/a", &["on"]),
                with_schema("/b", &["on", "off"]),
            ],
            &[],
            &[],
        );
        assert_eq!(
            disagreeing.err(),
            Some(AssemblyError::SchemaDisagrees("Status".to_owned()))
        );
    }

    #[test]
    fn an_alias_answers_what_its_rewrite_reaches_without_the_fixed_parameters() {
        let list = json!({"operationId": "listThings", "summary": "Things", "security": [{}],
            "parameters": [{"name": "kind", "in": "query", "required": false, "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "ok"}}});
        let one = json!({"operationId": "getThing", "summary": "A thing",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}}});
        let parts = vec![
            part("/things", "get", list),
            part("/things/{id}", "get", one.clone()),
            part("/things/{id}/parts", "get", one),
        ];
        let doc = assembled(
            parts,
            &[
                route("/items", Some("/things?kind=musical")),
                route("/items/", Some("/things/{rest}")),
                route("/parts/", Some("/things/{rest}/parts")),
            ],
        );
        let items = &doc["paths"]["/items"]["get"];
        assert_eq!(items["operationId"], "listThingsViaItems");
        assert_eq!(items["tags"], json!(["aliases"]));
        let names: Vec<&Value> = items["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["name"])
            .collect();
        assert_eq!(names, [&json!("limit")]);
        assert_eq!(
            doc["paths"]["/items/{id}"]["get"]["operationId"],
            "getThingViaItemsId"
        );
        assert!(doc["paths"]["/items/{id}/parts"]["get"].is_object());
        assert!(doc["paths"]["/parts/{id}"]["get"].is_object());
        let nothing = document(vec![], &[route("/x", Some("/nowhere"))], &[]);
        assert!(matches!(nothing, Err(AssemblyError::AliasOfNothing { .. })));
    }
}

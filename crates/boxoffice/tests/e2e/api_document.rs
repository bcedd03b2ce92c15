//! `web/openapi.json` (generated from the handlers) tells the truth: every
//! operation it documents is answered by a running platform, and every
//! route in the source is in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Answer, TestApp};

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];

/// The gateway's fallback answers `404 no route for …`, axum answers a
/// method a path does not take with 405, and a service without the route
/// answers a bare 404 (its own 404s are problem documents).
fn is_no_route(answer: &Answer) -> bool {
    answer.status == 405
        || (answer.status == 404
            && (answer.content_type != "application/problem+json"
                || answer.detail().starts_with("no route for")))
}

/// A concrete path for a documented template: a service name for
/// `{service}`, a fresh id for any other parameter.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{service}" => "catalog".to_owned(),
            s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_answered_by_the_platform() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let document = app.get("/openapi.json", None).await;
    assert_eq!(document.status, 200);
    let on_disk: Value =
        serde_json::from_str(include_str!("../../../../web/openapi.json")).unwrap();
    assert_eq!(
        document.body, on_disk,
        "the gateway serves web/openapi.json"
    );

    let mut unanswered = Vec::new();
    let mut checked = 0;
    for (template, operations) in document.body["paths"].as_object().unwrap() {
        for method in METHODS {
            if operations.get(method).is_none() {
                continue;
            }
            let path = concrete(template);
            let body = (method != "get" && method != "head").then(|| json!({}));
            let answer = if is_event_stream(&operations[method]) {
                opened(&app, method, &path, &admin).await
            } else {
                app.call(&method.to_uppercase(), &path, Some(&admin), body)
                    .await
            };
            checked += 1;
            if is_no_route(&answer) {
                unanswered.push(format!("{method} {template}: {answer:?}"));
            }
        }
    }
    assert!(checked >= 15, "only {checked} operations documented");
    assert!(
        unanswered.is_empty(),
        "documented but not served: {unanswered:#?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_event_contract_is_served_as_committed_without_a_token() {
    let mut app = spawn_app().await;
    let asyncapi = app.get("/asyncapi.json", None).await;
    assert_eq!(asyncapi.status, 200);
    let committed: Value =
        serde_json::from_str(include_str!("../../../../contracts/asyncapi.json")).unwrap();
    assert_eq!(
        asyncapi.body, committed,
        "the gateway serves contracts/asyncapi.json"
    );
    let confirmed = app
        .get(
            "/contracts/events/boxoffice.reservation.confirmed.schema.json",
            None,
        )
        .await;
    assert_eq!(confirmed.status, 200);
    let committed: Value = serde_json::from_str(include_str!(
        "../../../../contracts/events/boxoffice.reservation.confirmed.schema.json"
    ))
    .unwrap();
    assert_eq!(confirmed.body, committed);
    let unknown = app
        .get(
            "/contracts/events/boxoffice.reservation.approved.schema.json",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.content_type, "application/problem+json");
    app.stop().await;
}

/// Whether the operation answers a stream of server-sent events.
fn is_event_stream(operation: &Value) -> bool {
    operation["responses"].as_object().is_some_and(|responses| {
        responses
            .values()
            .any(|response| response["content"].get("text/event-stream").is_some())
    })
}

/// What an event stream answers when opened: its status and content type
/// (its body never ends, so it is not read; dropping it closes it).
async fn opened(app: &TestApp, method: &str, path: &str, token: &str) -> Answer {
    let response = app
        .http
        .request(
            reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
            format!("{}{path}", app.url),
        )
        .bearer_auth(token)
        .send()
        .await
        .expect("the gateway answers");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "text/event-stream", "{method} {path}");
    Answer {
        status: response.status(),
        content_type,
        body: Value::Null,
    }
}

#[test]
fn every_route_of_the_gateways_default_table_is_documented() {
    let document: Value =
        serde_json::from_str(include_str!("../../../../web/openapi.json")).unwrap();
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    let undocumented: Vec<String> = boxoffice::config::RouteConfig::defaults()
        .into_iter()
        .map(|route| route.prefix)
        .filter(|prefix| {
            let base = prefix.trim_end_matches('/');
            !paths
                .iter()
                .any(|path| *path == base || path.starts_with(&format!("{base}/")))
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "routed by the gateway but not documented: {undocumented:?}"
    );
}

/// `(path, method)` of every `.route("<path>", <method>(…).<method>(…))`
/// in `source`.
fn routes_in(source: &str) -> Vec<(String, String)> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = source[at..].find(".route(") {
        at += offset + ".route(".len();
        let mut i = skip_space(bytes, at);
        if bytes.get(i) != Some(&b'"') {
            continue;
        }
        let end = i + 1 + source[i + 1..].find('"').unwrap();
        let path = source[i + 1..end].to_owned();
        i = skip_space(bytes, end + 1);
        if bytes.get(i) != Some(&b',') {
            continue;
        }
        i = skip_space(bytes, i + 1);
        // A chain of method routers: get(…).post(…)…
        loop {
            let name_end = i + source[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(0);
            let name = &source[i..name_end];
            if !METHODS.contains(&name) || bytes.get(name_end) != Some(&b'(') {
                break;
            }
            found.push((path.clone(), name.to_owned()));
            i = skip_space(bytes, after_parens(bytes, name_end));
            if bytes.get(i) != Some(&b'.') {
                break;
            }
            i = skip_space(bytes, i + 1);
        }
        at = i.max(at);
    }
    found
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index just past the parenthesis that closes the one at `open`,
/// skipping string literals.
fn after_parens(bytes: &[u8], open: usize) -> usize {
    let (mut depth, mut i, mut in_string) = (0, open, false);
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn the_route_scanner_reads_chains_across_lines() {
    let source = r#"
        Router::new()
            .route("/a", get(list).post(register))
            .route(
                "/b/{id}",
                get(move || async { ("text/plain; (x)", handle.render()) }),
            )
            .route("/c", post(cancel))
    "#;
    let routes = routes_in(source);
    let expected = [
        ("/a", "get"),
        ("/a", "post"),
        ("/b/{id}", "get"),
        ("/c", "post"),
    ];
    assert_eq!(
        routes,
        expected.map(|(p, m)| (p.to_owned(), m.to_owned())).to_vec()
    );
}

#[test]
fn every_route_in_the_source_is_documented() {
    let document: Value =
        serde_json::from_str(include_str!("../../../../web/openapi.json")).unwrap();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();

    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        if dir.join("src").is_dir() {
            rust_files(&dir.join("src"), &mut files);
        }
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            for (path, method) in routes_in(&source) {
                seen += 1;
                // A catch-all segment (`{*path}`) is a plain parameter in OpenAPI.
                let path = path.replace("{*", "{");
                let under =
                    |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
                // A service's health, metrics and dead letters are its own
                // operations; the public API is the gateway's (which serves
                // the same health and metrics routes, through `runtime`, and
                // its own `/admin/…` over every service's). `/internal/…` is
                // for services only: the gateway routes no client there.
                let per_service = (name != "gateway"
                    && name != "runtime"
                    && (under("/health") || under("/metrics")))
                    || (name != "gateway" && under("/admin/dead-letters"))
                    || under("/internal");
                if !per_service && !documented.contains(&(path.clone(), method.clone())) {
                    missing.push(format!("{method} {path} ({})", file.display()));
                }
            }
        }
    }
    assert!(seen >= 15, "the scan found only {seen} routes");
    assert!(
        missing.is_empty(),
        "served but not documented: {missing:#?}"
    );
}

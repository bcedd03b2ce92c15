//! The web UI: static files under `web/ui/`, built into the binary so a
//! plain `boxoffice up` serves them with nothing else installed (in debug
//! builds they are read from the source tree, so an edit shows on reload).
//! `/` is the page; `/docs` the interactive API docs; `/ui/…` their
//! modules, styles and vendored libraries.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use runtime::http::ApiError;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/ui/"]
struct Files;

/// `GET /`: the page.
#[utoipa::path(get, path = "/", tag = "operations", operation_id = "webUi",
    summary = "The web UI", security(()),
    responses(
        (status = 200, description = "The single-page UI.", content_type = "text/html", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` sent."),
    ))]
pub async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers).unwrap_or_else(|error| error.into_response())
}

/// `GET /docs`: the interactive API docs over `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "operations", operation_id = "apiDocs",
    summary = "The interactive API docs",
    description = "Swagger UI over this document, served from the binary (works offline). Authorize with a token from `POST /auth/token` to try operations.",
    security(()),
    responses(
        (status = 200, description = "The docs page.", content_type = "text/html", body = String),
        (status = 304, description = "Unchanged since the `If-None-Match` sent."),
    ))]
pub async fn docs(headers: HeaderMap) -> Response {
    file("docs.html", &headers).unwrap_or_else(|error| error.into_response())
}

/// `GET /ui/{*path}`: one of the page's files.
#[utoipa::path(get, path = "/ui/{path}", tag = "operations", operation_id = "webUiFile",
    summary = "The web UI's modules, styles and vendored libraries",
    description = "Served with an `ETag` and `Cache-Control: no-cache`: a browser revalidates each file and gets 304 while it is unchanged.",
    security(()),
    params(("path" = String, Path, example = "app/main.js")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 304, description = "Unchanged since the `If-None-Match` sent."),
        (status = 404, response = runtime::api::E404),
    ))]
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&path, &headers).unwrap_or_else(|error| error.into_response())
}

fn file(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let file = Files::get(path).ok_or_else(|| ApiError::NotFound(format!("no file {path:?}")))?;
    // Revalidated on every load (no stale module after an upgrade), and
    // answered 304 when unchanged.
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let cache = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header"),
        ),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let content_type = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        cache,
        [(header::CONTENT_TYPE, content_type)],
        file.data.into_owned(),
    )
        .into_response())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_modules_are_built_in_with_their_media_types() {
        let media_type = |path: &str| {
            Files::get(path)
                .unwrap_or_else(|| panic!("web/ui/{path} is built in"))
                .metadata
                .mimetype()
                .to_owned()
        };
        assert_eq!(media_type("index.html"), "text/html");
        // Browsers run a module only with a JavaScript media type.
        assert_eq!(media_type("app/main.js"), "text/javascript");
        assert_eq!(media_type("vendor/preact.module.js"), "text/javascript");
        assert_eq!(media_type("app/styles.css"), "text/css");
    }
}

//! The edge: paths that would mean another path once normalised are
//! refused before anyone decides who may call them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

/// Sends `GET <path>` exactly as written (an HTTP client would normalise
/// the dots away); the status and the body.
async fn raw_get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

#[tokio::test]
async fn dot_segments_and_encoded_separators_are_refused_before_access_is_decided() {
    let mut app = spawn_app().await;
    let customer = app.customer("wanderer").await;
    for path in [
        "/listings/../admin/x",
        "/listings/%2e%2e/admin/x",
        "/listings%2F..%2Fadmin",
        "/listings/./x",
        "/listings/..",
        "/listings%5c..%5cadmin",
        "/listings\\..\\admin",
    ] {
        for token in [None, Some(customer.as_str())] {
            let (status, answer) = raw_get(&app.url, path, token).await;
            assert_eq!(status, 400, "{path}: {answer}");
            assert!(
                answer.contains("application/problem+json") && answer.contains("the path"),
                "{path}: {answer}"
            );
        }
    }
    // The plain path still works over the same kind of connection.
    let (status, answer) = raw_get(&app.url, "/listings", None).await;
    assert_eq!(status, 200, "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn the_web_ui_is_served_without_a_token_revalidated_by_etag_and_unknown_files_are_404() {
    let app = spawn_app().await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.url));
    for (path, media_type) in [
        ("/", "text/html"),
        ("/docs", "text/html"),
        ("/ui/app/main.js", "text/javascript"),
        ("/ui/vendor/preact.module.js", "text/javascript"),
    ] {
        let answer = get(path).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["content-type"], media_type, "{path}");
        let etag = answer.headers()["etag"].clone();
        let again = get(path)
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} unchanged");
    }
    let missing = get("/ui/app/nothing-here.js").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let (status, _) = raw_get(&app.url, "/ui/../admin/dead-letters", None).await;
    assert_eq!(status, 400, "no way out of /ui");
}

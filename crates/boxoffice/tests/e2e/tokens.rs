//! Tokens the gateway must refuse: each one is answered 401 problem+json,
//! however it was crafted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

const SECRET: &str = "e2e-token-signing-secret-0123456789abcdef";

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The claims the gateway issues, for `user`, changed by `change`.
fn claims(user: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = json!({
        "sub": user["id"], "name": user["username"], "role": "customer",
        "iss": "boxoffice", "iat": now(), "exp": now() + 600,
    });
    change(&mut claims);
    claims
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn assert_refused(app: &TestApp, what: &str, token: &str) {
    let answer = app.get("/reservations", Some(token)).await;
    assert_eq!(answer.status, 401, "{what}: {answer:?}");
    assert_eq!(answer.content_type, "application/problem+json", "{what}");
    assert_eq!(answer.body["type"], "/problems/unauthorized", "{what}");
}

#[tokio::test]
async fn expired_unsigned_confused_foreign_or_forged_tokens_are_refused() {
    let mut app = spawn_app_with(|config| config.jwt_secret = Some(SECRET.to_owned())).await;
    let signup = app
        .post(
            "/auth/signup",
            None,
            json!({"username": "holder", "password": "correct horse"}),
        )
        .await;
    assert_eq!(signup.status, 201);
    let user = signup.body;

    // The crafted claims are right: signed properly, they are accepted.
    let genuine = hs256(&claims(&user, |_| {}), SECRET);
    assert_eq!(app.get("/reservations", Some(&genuine)).await.status, 200);

    let expired = hs256(
        &claims(&user, |c| {
            c["iat"] = json!(now() - 7200);
            c["exp"] = json!(now() - 3600);
        }),
        SECRET,
    );
    assert_refused(&app, "expired", &expired).await;
    let answer = app.get("/reservations", Some(&expired)).await;
    assert!(answer.detail().contains("expired"), "{answer:?}");

    let payload = b64(&claims(&user, |_| {}));
    let unsigned = format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})));
    assert_refused(&app, "alg none", &unsigned).await;

    // An RS256 header over an HMAC signature made with the shared secret
    // (the key-confusion attack): the header does not get to pick.
    let confused_header = b64(&json!({"alg": "RS256", "typ": "JWT"}));
    let signature = jsonwebtoken::crypto::sign(
        format!("{confused_header}.{payload}").as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    let confused = format!("{confused_header}.{payload}.{signature}");
    assert_refused(&app, "RS256 header, HMAC signature", &confused).await;

    let foreign = hs256(&claims(&user, |c| c["iss"] = json!("someone-else")), SECRET);
    assert_refused(&app, "wrong issuer", &foreign).await;

    let forged = hs256(
        &claims(&user, |c| c["role"] = json!("admin")),
        "a-different-secret-0123456789abcdef",
    );
    assert_refused(&app, "wrong signature", &forged).await;
    app.stop().await;
}

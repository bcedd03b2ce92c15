//! `POST /auth/signup` and `POST /auth/token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use runtime::http::{ApiError, Body, Role};
use serde::{Deserialize, Serialize};

use super::{check_new_password, Tokens, Username, Users};
use crate::passwords::PasswordError;

#[derive(Clone, Debug)]
pub struct AuthState {
    pub users: Users,
    pub tokens: Tokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct UserView {
    id: String,
    username: String,
    role: Role,
}

/// A busy hasher is a 503 the client may retry; anything else is a fault.
fn identity_error(error: anyhow::Error) -> ApiError {
    match error.downcast_ref::<PasswordError>() {
        Some(PasswordError::Busy) => ApiError::Unavailable {
            detail: "too many sign-ins are being checked right now; retry shortly".to_owned(),
            retry_after_secs: 1,
        },
        _ => ApiError::Internal(error),
    }
}

pub async fn signup(
    State(auth): State<AuthState>,
    Body(credentials): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let username = Username::parse(&credentials.username).map_err(ApiError::Unprocessable)?;
    check_new_password(&credentials.password).map_err(ApiError::Unprocessable)?;
    let user = auth
        .users
        .create(&username, &credentials.password, Role::Customer)
        .await
        .map_err(identity_error)?
        .ok_or_else(|| ApiError::Conflict(format!("username {:?} is taken", username.as_str())))?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: user.id.to_string(),
            username: user.username,
            role: user.role,
        }),
    ))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenView {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub async fn token(
    State(auth): State<AuthState>,
    Body(credentials): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth
        .users
        .authenticate(&credentials.username, &credentials.password)
        .await
        .map_err(identity_error)?
        .ok_or_else(|| ApiError::Unauthorized("invalid username or password".to_owned()))?;
    Ok(Json(TokenView {
        access_token: auth.tokens.issue(&user.caller())?,
        token_type: "Bearer",
        expires_in: auth.tokens.ttl().as_secs(),
    }))
}

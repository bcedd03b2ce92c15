//! `POST /auth/signup` and `POST /auth/token`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use runtime::api::{E422, E503};
use runtime::http::{ApiError, Body, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_new_password, Tokens, Username, Users};
use crate::passwords::PasswordError;

#[derive(Clone, Debug)]
pub struct AuthState {
    pub users: Users,
    pub tokens: Tokens,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(min_length = 1)]
    username: String,
    #[schema(min_length = 1, format = Password)]
    password: String,
}

/// A new customer's name and password, checked by [`Username::parse`] and
/// [`check_new_password`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// 3 to 32 characters of a-z, 0-9, '.', '_' or '-'; trimmed and
    /// lower-cased.
    #[schema(pattern = r"^\s*[A-Za-z0-9._-]{3,32}\s*$")]
    username: String,
    #[schema(min_length = 8, max_length = 128, format = Password)]
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
struct UserView {
    id: String,
    username: String,
    #[schema(inline)]
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

#[utoipa::path(post, path = "/auth/signup", tag = "auth", operation_id = "signUp",
    summary = "Create a customer account",
    description = "An invalid username or password is answered 422.",
    security(()),
    request_body = SignUp,
    responses(
        (status = 201, description = "Created.", body = UserView),
        (status = 409, description = "The username is taken.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 422, response = E422),
        (status = 503, response = E503),
    ))]
pub async fn signup(
    State(auth): State<AuthState>,
    Body(credentials): Body<SignUp>,
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

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Token)]
struct TokenView {
    /// A JWT; send it as `Authorization: Bearer <accessToken>`.
    access_token: String,
    #[schema(schema_with = bearer)]
    token_type: &'static str,
    /// Seconds until the token expires.
    #[schema(minimum = 1)]
    expires_in: u64,
}

fn bearer() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    runtime::api::string_enum(&["Bearer"])
}

#[utoipa::path(post, path = "/auth/token", tag = "auth", operation_id = "issueToken",
    summary = "Log in: exchange credentials for a bearer token",
    security(()),
    request_body = Credentials,
    responses(
        (status = 200, description = "A token.", body = TokenView),
        (status = 401, description = "Wrong username or password.",
            body = runtime::http::Problem, content_type = "application/problem+json"),
        (status = 503, response = E503),
    ))]
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

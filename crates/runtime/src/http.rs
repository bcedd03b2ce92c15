//! HTTP plumbing shared by the services: problem+json errors (RFC 9457),
//! the caller's identity as the gateway passes it, JSON bodies whose
//! rejections name the problem, and the operational routes.

use std::sync::OnceLock;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kernel::ids::UserId;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

/// Headers in which the gateway passes the authenticated caller. The
/// gateway strips them from every incoming request, so only it can set them.
pub const USER_ID_HEADER: &str = "x-boxoffice-user-id";
pub const USERNAME_HEADER: &str = "x-boxoffice-username";
pub const ROLE_HEADER: &str = "x-boxoffice-role";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error answered as `application/problem+json`. Client mistakes carry a
/// precise detail; server faults are logged with their cause chain and
/// answered opaquely.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The card was declined (402).
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A rate limit was reached; `retry_after_secs` (at least 1) says when
    /// the next request will be let through.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u32,
    },
    /// A service behind the gateway answered something it cannot pass on.
    #[error("{0}")]
    BadGateway(String),
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PaymentRequired(_) => "payment-declined",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::TooManyRequests { .. } => "rate-limited",
            ApiError::BadGateway(_) => "bad-gateway",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// RFC 9457 problem details. A rejected request changes nothing.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(format = "uri-reference", examples("/problems/unprocessable"))]
    pub problem_type: String,
    #[schema(examples("Unprocessable Entity"))]
    pub title: String,
    #[schema(minimum = 100, maximum = 599, examples(422))]
    pub status: u16,
    #[schema(examples("quantity must be between 1 and 1000 (got 0)"))]
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A store or bus that cannot be reached is a passing fault: say so,
        // and when to try again, rather than a bare 500.
        let this = match self {
            ApiError::Internal(error) if crate::retry::is_transient(&error) => {
                tracing::warn!(error = format!("{error:#}"), "a dependency is unavailable");
                ApiError::Unavailable {
                    detail: "the service's database or event bus is unavailable; try again shortly"
                        .to_owned(),
                    retry_after_secs: 1,
                }
            }
            other => other,
        };
        let status = this.status();
        let detail = match &this {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = problem_response(status, this.slug(), &detail);
        if let ApiError::Unavailable {
            retry_after_secs, ..
        }
        | ApiError::TooManyRequests {
            retry_after_secs, ..
        } = this
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

/// A problem+json response.
pub fn problem_response(status: StatusCode, slug: &str, detail: &str) -> Response {
    let problem = Problem {
        problem_type: format!("/problems/{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.to_owned(),
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body,
    )
        .into_response()
}

/// A JSON request body; its rejections become precise problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(error) => ApiError::BadRequest(format!(
            "the body does not match the expected shape: {}",
            error
                .body_text()
                .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        )),
        JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest(format!(
            "the body is not valid JSON: {}",
            error
                .body_text()
                .trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON, sent with content-type: application/json".to_owned(),
        ),
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Who is calling, as established by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "customer" => Some(Role::Customer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses callers that are not admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this action needs the admin role".to_owned(),
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let missing = || ApiError::Unauthorized("authentication is required".to_owned());
        let user_id = header(USER_ID_HEADER)
            .and_then(|v| v.parse().ok())
            .ok_or_else(missing)?;
        let role = header(ROLE_HEADER)
            .and_then(Role::parse)
            .ok_or_else(missing)?;
        let username = header(USERNAME_HEADER).unwrap_or_default().to_owned();
        Ok(Caller {
            user_id,
            username,
            role,
        })
    }
}

/// The one timestamp format in storage: RFC 3339 in UTC with exactly six
/// fraction digits (`2026-11-21T10:00:00.500000Z`). Fixed width, so text
/// order is time order (`…00.5Z` would sort after `…00.51Z`), and still
/// RFC 3339, so it goes on the wire as it is.
pub fn timestamp(at: OffsetDateTime) -> String {
    const FIXED: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FIXED)
        .unwrap_or_default()
}

/// Parses what [`timestamp`] wrote (any RFC 3339 text).
pub fn parse_timestamp(text: &str) -> anyhow::Result<OffsetDateTime> {
    Ok(OffsetDateTime::parse(
        text,
        &time::format_description::well_known::Rfc3339,
    )?)
}

/// `UPDATE` statements that rewrite timestamp columns written before
/// [`timestamp`] had a fixed width (`…00.5Z`, `…00Z`) into it, for a
/// migration. Plain SQL both engines read; running it twice changes nothing.
/// Usage: `fixed_width_timestamps!(("listings", "created_at"), ("holds", "updated_at"))`.
#[macro_export]
macro_rules! fixed_width_timestamps {
    ($(($table:literal, $column:literal)),+ $(,)?) => {
        concat!($(
            "UPDATE ", $table, " SET ", $column, " = substr(", $column, ", 1, 19) || '.' || substr(CASE WHEN length(",
            $column, ") > 20 THEN substr(", $column, ", 21, length(", $column, ") - 21) ELSE '' END || '000000', 1, 6) || 'Z'",
            " WHERE ", $column, " IS NOT NULL;\n",
        )+)
    };
}

/// A page of a list: `?limit=` (default 100, at most 1000) and `?after=`
/// (the id of the last item of the previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub after: Option<String>,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    pub fn parse(limit: Option<&str>, after: Option<&str>) -> Result<Page, ApiError> {
        let limit = match limit {
            None => Page::DEFAULT_LIMIT,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=Page::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "limit must be a whole number from 1 to {} (got {text:?})",
                        Page::MAX_LIMIT
                    ))
                })?,
        };
        let after = match after {
            Some("") => {
                return Err(ApiError::Unprocessable(
                    "after must name the last item of the previous page".to_owned(),
                ))
            }
            other => other.map(str::to_owned),
        };
        Ok(Page { limit, after })
    }

    /// The answer when `after` names nothing in the list.
    pub fn unknown_after(&self, what: &str) -> ApiError {
        ApiError::Unprocessable(format!(
            "after names no {what} ({:?})",
            self.after.as_deref().unwrap_or_default()
        ))
    }

    /// `after` as the id type of the list, or a 422 naming it.
    pub fn after_id<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.after
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    ApiError::Unprocessable(format!("after must be an id (got {text:?})"))
                })
            })
            .transpose()
    }
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(query) =
            axum::extract::Query::<PageQuery>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        Page::parse(query.limit.as_deref(), query.after.as_deref())
    }
}

/// How long bookings take from placed to confirmed or rejected (a
/// histogram by `outcome`, recorded by reservation).
pub const BOOKING_SETTLE_SECONDS: &str = "boxoffice_booking_settle_seconds";

/// The process-wide Prometheus recorder (one per process, shared by every
/// service that runs in it; series carry a `service` label).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .expect("static buckets are valid")
                // A booking settles in seconds (a saga over the bus), not
                // in the milliseconds of a request.
                .set_buckets_for_metric(
                    Matcher::Full(BOOKING_SETTLE_SECONDS.to_owned()),
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
                )
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by a test
            // harness); metrics then go there and this handle renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `/metrics` in Prometheus text format.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics).with_state(metrics_handle()))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    summary = "Prometheus metrics", security(()),
    responses((status = 200, description = "Prometheus text exposition format.",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(
    axum::extract::State(handle): axum::extract::State<PrometheusHandle>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_timestamps_sort_as_text_in_time_order() {
        let base = time::macros::datetime!(2026-11-21 10:00:00 UTC);
        let times = [
            base,
            base + time::Duration::milliseconds(5),
            base + time::Duration::milliseconds(50),
            base + time::Duration::milliseconds(500),
            base + time::Duration::milliseconds(510),
            base + time::Duration::seconds(1),
        ];
        let texts: Vec<String> = times.iter().map(|t| timestamp(*t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        assert_eq!(texts[3], "2026-11-21T10:00:00.500000Z");
        assert!(texts.iter().all(|t| t.len() == texts[0].len()));
        for (text, time) in texts.iter().zip(times) {
            assert_eq!(parse_timestamp(text).unwrap(), time);
        }
        // Another offset is stored as the same instant in UTC.
        let elsewhere = base.to_offset(time::macros::offset!(+9));
        assert_eq!(timestamp(elsewhere), texts[0]);
    }

    #[test]
    fn pages_default_to_100_and_refuse_what_they_cannot_serve() {
        assert_eq!(
            Page::parse(None, None).unwrap(),
            Page {
                limit: 100,
                after: None
            }
        );
        assert_eq!(Page::parse(Some("1000"), Some("x")).unwrap().limit, 1000);
        for bad in ["0", "1001", "-1", "ten"] {
            let error = Page::parse(Some(bad), None).unwrap_err();
            assert!(error.to_string().contains("limit must be"), "{bad}");
        }
        assert!(Page::parse(None, Some("")).is_err());
    }
}

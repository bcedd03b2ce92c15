//! Reservations over gRPC (`proto/boxoffice/reservation/v1/reservations.proto`),
//! beside REST: the same use cases ([`Reservations`]), the same parsing of
//! what the caller sent (shared with [`super::http`]), the same ownership
//! rules, and the same problem details as status messages. Only the wire
//! differs, so the two APIs cannot drift apart in what they allow.
//!
//! It is reached directly, not through the gateway, so it authenticates
//! callers itself: the gateway's access token from the metadata
//! `authorization: Bearer <token>`, checked with the same key, issuer and
//! expiry ([`runtime::tokens`]).

use kernel::shutdown::Shutdown;
use runtime::http::{timestamp, ApiError, Caller, Page, MAX_BODY_BYTES};
use runtime::tokens::{bearer, Tokens};
use tokio::net::TcpListener;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

use super::http::{checked_idempotency_key, listing_id, order, reservation_id};
use crate::app::{PlaceReservation, Reservations};
use crate::domain::{self, Reservation};
use crate::grpc_api as api;
use crate::grpc_api::reservations_server::{self, ReservationsServer};

/// Where the gRPC API listens and the key its tokens are checked with.
#[derive(Debug)]
pub struct GrpcEndpoint {
    listener: TcpListener,
    tokens: Tokens,
}

impl GrpcEndpoint {
    /// `tokens` must be built from the gateway's signing secret, or no
    /// token it issues is accepted here.
    pub fn new(listener: TcpListener, tokens: Tokens) -> GrpcEndpoint {
        GrpcEndpoint { listener, tokens }
    }
}

/// Serves the gRPC API until `shutdown` fires, then lets the calls in
/// flight finish (the service's workers are given [`runtime::app::WORKER_GRACE`]).
pub(crate) async fn serve(
    endpoint: GrpcEndpoint,
    reservations: Reservations,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let addr = endpoint.listener.local_addr()?;
    tracing::info!(service = "reservation", %addr, "serving gRPC");
    let api = ReservationsServer::new(Adapter {
        reservations,
        tokens: endpoint.tokens,
    })
    // The same bound as a REST body.
    .max_decoding_message_size(MAX_BODY_BYTES);
    tonic::transport::Server::builder()
        .add_service(api)
        .serve_with_incoming_shutdown(TcpIncoming::from(endpoint.listener), async move {
            shutdown.wait().await
        })
        .await?;
    Ok(())
}

#[derive(Debug)]
struct Adapter {
    reservations: Reservations,
    tokens: Tokens,
}

impl Adapter {
    /// The caller a request's token stands for.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        let value = request.metadata().get("authorization").ok_or_else(|| {
            ApiError::Unauthorized(
                "authentication is required: send the metadata authorization: Bearer <token> (POST /auth/token)"
                    .to_owned(),
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| bearer(v).ok())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the authorization metadata must be 'Bearer <token>'".to_owned(),
                )
            })?;
        self.tokens.verify(token).map_err(ApiError::Unauthorized)
    }

    async fn place(
        &self,
        request: Request<api::PlaceReservationRequest>,
    ) -> Result<api::Reservation, ApiError> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        let listing_id = listing_id(&request.listing_id)?;
        let order = order(request.quantity, request.seats)?;
        let payment_method = match api::PaymentMethod::try_from(request.payment_method) {
            Ok(api::PaymentMethod::Unspecified) => None,
            Ok(api::PaymentMethod::Card) => Some(contracts::reservation::PaymentMethod::Card),
            Ok(api::PaymentMethod::Points) => Some(contracts::reservation::PaymentMethod::Points),
            Err(_) => {
                return Err(ApiError::Unprocessable(format!(
                    "payment_method must be card or points (got {})",
                    request.payment_method
                )))
            }
        };
        // Empty is proto3's "not given".
        let idempotency_key = match request.idempotency_key.as_str() {
            "" => None,
            key => Some(checked_idempotency_key(Some(key))?),
        };
        let reservation = self
            .reservations
            .place(PlaceReservation {
                user_id: caller.user_id,
                listing_id,
                order,
                payment_method,
                idempotency_key,
            })
            .await?;
        Ok(api::Reservation::from(&reservation))
    }

    async fn get(
        &self,
        request: Request<api::GetReservationRequest>,
    ) -> Result<api::Reservation, ApiError> {
        let caller = self.caller(&request)?;
        let id = request.into_inner().id;
        let reservation = self
            .reservations
            .find_for(reservation_id(&id)?, caller.user_id, caller.is_admin())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no reservation with id {id:?}")))?;
        Ok(api::Reservation::from(&reservation))
    }

    async fn list(
        &self,
        request: Request<api::ListReservationsRequest>,
    ) -> Result<api::ListReservationsResponse, ApiError> {
        let caller = self.caller(&request)?;
        let request = request.into_inner();
        // The REST query's rules and words: the limit as it would be written there.
        let limit = request.limit.map(|n| n.to_string());
        let page = Page::parse(limit.as_deref(), request.after.as_deref())?;
        let owner = (!caller.is_admin()).then_some(caller.user_id);
        let list = self
            .reservations
            .list(owner, page.after_id()?, page.limit)
            .await?
            .ok_or_else(|| page.unknown_after("reservation"))?;
        Ok(api::ListReservationsResponse {
            reservations: list.iter().map(api::Reservation::from).collect(),
        })
    }

    async fn cancel(
        &self,
        request: Request<api::CancelReservationRequest>,
    ) -> Result<api::Reservation, ApiError> {
        let caller = self.caller(&request)?;
        let id = reservation_id(&request.into_inner().id)?;
        let reservation = self
            .reservations
            .cancel(id, caller.user_id, caller.is_admin())
            .await?;
        Ok(api::Reservation::from(&reservation))
    }
}

#[tonic::async_trait]
impl reservations_server::Reservations for Adapter {
    async fn place_reservation(
        &self,
        request: Request<api::PlaceReservationRequest>,
    ) -> Result<Response<api::Reservation>, Status> {
        answer(self.place(request).await)
    }

    async fn get_reservation(
        &self,
        request: Request<api::GetReservationRequest>,
    ) -> Result<Response<api::Reservation>, Status> {
        answer(self.get(request).await)
    }

    async fn list_reservations(
        &self,
        request: Request<api::ListReservationsRequest>,
    ) -> Result<Response<api::ListReservationsResponse>, Status> {
        answer(self.list(request).await)
    }

    async fn cancel_reservation(
        &self,
        request: Request<api::CancelReservationRequest>,
    ) -> Result<Response<api::Reservation>, Status> {
        answer(self.cancel(request).await)
    }
}

fn answer<T>(result: Result<T, ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(status)
}

/// The gRPC status for what REST answers with a problem: the code its HTTP
/// status stands for, the problem's detail as the message, and for a
/// passing fault, `retry-after` (seconds) as REST's header says it.
pub(crate) fn status(error: ApiError) -> Status {
    let error = match error {
        // As REST does: a store or bus that cannot be reached is a passing fault.
        ApiError::Internal(cause) if runtime::retry::is_transient(&cause) => {
            tracing::warn!(error = format!("{cause:#}"), "a dependency is unavailable");
            ApiError::Unavailable {
                detail: "the service's database or event bus is unavailable; try again shortly"
                    .to_owned(),
                retry_after_secs: 1,
            }
        }
        ApiError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "gRPC call failed");
            return Status::internal("an internal error occurred; it has been logged");
        }
        other => other,
    };
    let code = match &error {
        ApiError::BadRequest(_)
        | ApiError::Unprocessable(_)
        | ApiError::UnsupportedMediaType(_) => Code::InvalidArgument,
        ApiError::Unauthorized(_) => Code::Unauthenticated,
        ApiError::Forbidden(_) => Code::PermissionDenied,
        ApiError::NotFound(_) => Code::NotFound,
        // The booking is not in a state that allows it, or the card was
        // declined: asking again as it is will not help.
        ApiError::Conflict(_) | ApiError::PaymentRequired(_) => Code::FailedPrecondition,
        // gRPC's own answer to a message over the size limit.
        ApiError::PayloadTooLarge(_) | ApiError::TooManyRequests { .. } => Code::ResourceExhausted,
        ApiError::BadGateway(_) | ApiError::Unavailable { .. } => Code::Unavailable,
        ApiError::Internal(_) => Code::Internal,
    };
    let mut status = Status::new(code, error.to_string());
    if let ApiError::Unavailable {
        retry_after_secs, ..
    }
    | ApiError::TooManyRequests {
        retry_after_secs, ..
    } = error
    {
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from(retry_after_secs.max(1)));
    }
    status
}

impl From<&Reservation> for api::Reservation {
    fn from(r: &Reservation) -> Self {
        let status = match r.status {
            domain::Status::Pending => api::Status::Pending,
            domain::Status::Confirmed => api::Status::Confirmed,
            domain::Status::Rejected => api::Status::Rejected,
            domain::Status::Cancelled => api::Status::Cancelled,
            domain::Status::Returned => api::Status::Returned,
        };
        let payment_method = match r.payment_method {
            contracts::reservation::PaymentMethod::Card => api::PaymentMethod::Card,
            contracts::reservation::PaymentMethod::Points => api::PaymentMethod::Points,
        };
        api::Reservation {
            id: r.id.to_string(),
            listing_id: r.listing.id.to_string(),
            title: r.listing.title.clone(),
            user_id: r.user_id.to_string(),
            quantity: r.quantity.get(),
            seats: r.seats.iter().map(ToString::to_string).collect(),
            amount: r.amount.minor_units(),
            payment_method: payment_method.into(),
            status: status.into(),
            reason: r.reason.clone(),
            cancel_requested: r.cancel_requested,
            deadline: (r.status == domain::Status::Pending).then(|| timestamp(r.deadline)),
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_and_message(error: ApiError) -> (Code, String) {
        let status = status(error);
        (status.code(), status.message().to_owned())
    }

    #[test]
    fn each_problem_becomes_the_status_its_http_code_stands_for() {
        let detail = || "in plain words".to_owned();
        let cases = [
            (ApiError::BadRequest(detail()), Code::InvalidArgument),
            (ApiError::Unprocessable(detail()), Code::InvalidArgument),
            (ApiError::Unauthorized(detail()), Code::Unauthenticated),
            (ApiError::Forbidden(detail()), Code::PermissionDenied),
            (ApiError::NotFound(detail()), Code::NotFound),
            (ApiError::Conflict(detail()), Code::FailedPrecondition),
            (
                ApiError::PaymentRequired(detail()),
                Code::FailedPrecondition,
            ),
            (
                ApiError::TooManyRequests {
                    detail: detail(),
                    retry_after_secs: 3,
                },
                Code::ResourceExhausted,
            ),
            (
                ApiError::Unavailable {
                    detail: detail(),
                    retry_after_secs: 2,
                },
                Code::Unavailable,
            ),
        ];
        for (error, code) in cases {
            let name = format!("{error:?}");
            assert_eq!(
                code_and_message(error),
                (code, "in plain words".to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn a_passing_fault_says_when_to_try_again() {
        let status = status(ApiError::Unavailable {
            detail: "payment is unavailable".to_owned(),
            retry_after_secs: 0,
        });
        assert_eq!(status.code(), Code::Unavailable);
        // At least a second, as REST's Retry-After.
        assert_eq!(
            status
                .metadata()
                .get("retry-after")
                .unwrap()
                .to_str()
                .unwrap(),
            "1"
        );
        let limited = super::status(ApiError::TooManyRequests {
            detail: "slow down".to_owned(),
            retry_after_secs: 7,
        });
        assert_eq!(limited.metadata().get("retry-after").unwrap(), "7");
        assert!(super::status(ApiError::NotFound("gone".to_owned()))
            .metadata()
            .get("retry-after")
            .is_none());
    }

    #[test]
    fn a_fault_of_ours_is_internal_and_says_nothing_of_its_cause() {
        let (code, message) = code_and_message(ApiError::Internal(anyhow::anyhow!(
            "disk on fire at /var/db"
        )));
        assert_eq!(code, Code::Internal);
        assert!(!message.contains("disk"), "{message}");
        let (code, _) = code_and_message(ApiError::Internal(anyhow::Error::new(
            sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(code, Code::Unavailable);
    }
}

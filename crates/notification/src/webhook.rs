//! The webhook channel: each message is POSTed as JSON to a configured URL,
//! signed so the receiver can tell it came from boxoffice.
//!
//! The signature is `X-Boxoffice-Signature: sha256=<hex>`, the HMAC-SHA256
//! of the exact body bytes under the shared secret. Network errors and 5xx
//! answers are retried a few times with backoff; after that (or at once on
//! a 4xx, which will not get better) the error propagates and the consumer
//! retries the whole event later. A retried event carries the same message
//! id, so a receiver can drop duplicates.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::Serialize;
use sha2::Sha256;

use crate::channel::Channel;
use crate::domain::Message;

pub const SIGNATURE_HEADER: &str = "x-boxoffice-signature";

/// Tries per message before the error goes back to the consumer.
const TRIES: usize = 5;
/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The JSON a webhook receives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    id: String,
    user_id: String,
    reservation_id: String,
    kind: &'static str,
    message: &'a str,
    at: String,
}

impl<'a> From<&'a Message> for Payload<'a> {
    fn from(message: &'a Message) -> Self {
        Payload {
            id: message.id.to_string(),
            user_id: message.user_id.to_string(),
            reservation_id: message.reservation_id.to_string(),
            kind: message.kind.as_str(),
            message: &message.text,
            at: runtime::http::timestamp(message.at),
        }
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Why one try failed, and whether another could do better.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the webhook could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("the webhook answered {0}")]
    Answered(StatusCode),
}

impl Failure {
    fn is_passing(&self) -> bool {
        match self {
            Failure::Unreachable(_) => true,
            Failure::Answered(status) => status.is_server_error(),
        }
    }
}

pub struct WebhookChannel {
    client: reqwest::Client,
    url: String,
    secret: Option<String>,
    first_delay: Duration,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &self.url)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookChannel {
    /// Posts to `url`, signing with `secret` when there is one.
    pub fn new(url: impl Into<String>, secret: Option<String>) -> anyhow::Result<WebhookChannel> {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(WebhookChannel {
            client,
            url: url.into(),
            secret,
            first_delay: Duration::from_millis(200),
        })
    }

    /// The wait before the second try (it doubles from there, with jitter).
    pub fn with_first_delay(mut self, delay: Duration) -> WebhookChannel {
        self.first_delay = delay;
        self
    }

    async fn post(&self, body: &[u8]) -> Result<(), Failure> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret.as_bytes(), body));
        }
        let response = request.send().await.map_err(Failure::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Answered(status))
        }
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message: &Message) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&Payload::from(message))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.first_delay * 16)
            .with_jitter()
            .with_max_times(TRIES - 1);
        (|| self.post(&body))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Failure::is_passing)
            .notify(|failure, delay| {
                tracing::warn!(url = %self.url, error = %failure, ?delay, "webhook delivery failed; trying again");
            })
            .await
            .map_err(|failure| anyhow::Error::new(failure).context(format!("posting to the webhook {}", self.url)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use axum::Router;
    use kernel::ids::{NotificationId, ReservationId, UserId};

    use super::*;
    use crate::domain::MessageKind;

    const SECRET: &str = "s3cret";

    /// A request as the receiver saw it: its signature header and body.
    type Received = (Option<String>, Bytes);

    /// A receiver that answers the given statuses in turn (then 200) and
    /// keeps what it was sent.
    #[derive(Clone, Default)]
    struct Receiver {
        answers: Arc<Mutex<Vec<u16>>>,
        received: Arc<Mutex<Vec<Received>>>,
    }

    async fn receive(
        State(receiver): State<Receiver>,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::http::StatusCode {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        receiver.received.lock().unwrap().push((signature, body));
        let mut answers = receiver.answers.lock().unwrap();
        let status = if answers.is_empty() {
            200
        } else {
            answers.remove(0)
        };
        axum::http::StatusCode::from_u16(status).unwrap()
    }

    async fn serve(answers: &[u16]) -> (String, Receiver) {
        let receiver = Receiver::default();
        receiver.answers.lock().unwrap().extend_from_slice(answers);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        // A receiver that answers any path (the URL says /hook).
        let router = Router::new()
            .fallback(post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (url, receiver)
    }

    fn message() -> Message {
        Message {
            id: NotificationId::new(),
            user_id: UserId::new(),
            reservation_id: ReservationId::new(),
            kind: MessageKind::Refunded,
            text: "Your payment of 15000 was refunded.".into(),
            at: time::macros::datetime!(2026-11-21 10:00 UTC),
        }
    }

    fn channel(url: &str) -> WebhookChannel {
        WebhookChannel::new(url, Some(SECRET.into()))
            .unwrap()
            .with_first_delay(Duration::from_millis(5))
    }

    #[tokio::test]
    async fn the_message_arrives_as_signed_json() {
        let (url, receiver) = serve(&[]).await;
        let message = message();
        channel(&url).send(&message).await.unwrap();

        let received = receiver.received.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        let (signature, body) = &received[0];
        assert_eq!(
            signature.as_deref(),
            Some(super::signature(SECRET.as_bytes(), body).as_str())
        );
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": message.id.to_string(),
                "userId": message.user_id.to_string(),
                "reservationId": message.reservation_id.to_string(),
                "kind": "refunded",
                "message": "Your payment of 15000 was refunded.",
                "at": "2026-11-21T10:00:00.000000Z",
            })
        );
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn a_server_error_is_retried_until_the_webhook_takes_it() {
        let (url, receiver) = serve(&[500, 503]).await;
        channel(&url).send(&message()).await.unwrap();

        let received = receiver.received.lock().unwrap().clone();
        assert_eq!(received.len(), 3);
        assert!(
            received.windows(2).all(|pair| pair[0] == pair[1]),
            "the same signed body each time"
        );
    }

    #[tokio::test]
    async fn a_webhook_that_keeps_failing_gives_the_error_back_after_five_tries() {
        let (url, receiver) = serve(&[500; 10]).await;
        let error = channel(&url).send(&message()).await.unwrap_err();

        assert!(format!("{error:#}").contains("500"), "{error:#}");
        assert_eq!(receiver.received.lock().unwrap().len(), TRIES);
    }

    #[tokio::test]
    async fn a_client_error_is_not_retried() {
        let (url, receiver) = serve(&[400]).await;
        assert!(channel(&url).send(&message()).await.is_err());
        assert_eq!(receiver.received.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        drop(listener);
        assert!(channel(&url).send(&message()).await.is_err());
    }
}

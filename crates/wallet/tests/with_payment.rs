//! The wallet against the real payment service, over HTTP and the embedded
//! bus: points bought by card (payment's internal sale), a declined card
//! and payment down crediting nothing, the breaker opening with its own
//! gauge, and a booking paid with points spent and given back.

use std::sync::Arc;
use std::time::Duration;

use bus_embedded::EmbeddedBus;
use contracts::catalog::ListingKind;
use contracts::reservation::{Booking, PaymentMethod, ReservationEvent};
use contracts::IntegrationEvent;
use kernel::bus::EventBus;
use kernel::ids::{ListingId, ReservationId, UserId};
use kernel::shutdown::{self, ShutdownTrigger};
use kernel::Money;
use runtime::breaker::CallSettings;
use runtime::http::{ROLE_HEADER, USER_ID_HEADER};
use runtime::store::sqlite_url;
use serde_json::{json, Value};

struct Running {
    _dir: tempfile::TempDir,
    wallet: String,
    payment: String,
    bus: Arc<dyn EventBus>,
    http: reqwest::Client,
    stop: ShutdownTrigger,
}

async fn serve(app: runtime::App, shutdown: kernel::shutdown::Shutdown) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, shutdown));
    url
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let bus: Arc<dyn EventBus> =
        Arc::new(EmbeddedBus::open(&dir.path().join("bus.db")).await.unwrap());
    let (stop, shutdown) = shutdown::channel();
    let mut payment_settings = payment::Settings::default();
    payment_settings.provider.decline_above = Some(50_000);
    let payment = payment::build(
        &sqlite_url(dir.path(), "payment"),
        bus.clone(),
        payment_settings,
    )
    .await
    .unwrap();
    let payment = serve(payment, shutdown.clone()).await;
    let settings = wallet::Settings {
        payment: CallSettings {
            timeout_ms: 1_000,
            failures_to_open: 2,
            open_for_ms: 1_000,
        },
        ..wallet::Settings::default()
    };
    let wallet = wallet::build(
        &sqlite_url(dir.path(), "wallet"),
        &payment,
        bus.clone(),
        settings,
    )
    .await
    .unwrap();
    let wallet = serve(wallet, shutdown).await;
    Running {
        _dir: dir,
        wallet,
        payment,
        bus,
        http: reqwest::Client::new(),
        stop,
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Running {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        user: UserId,
        role: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, url)
            .header(USER_ID_HEADER, user.to_string())
            .header(ROLE_HEADER, role);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or_default();
        Answer {
            status,
            retry_after,
            body,
        }
    }

    async fn buy(&self, user: UserId, amount: i64) -> Answer {
        let url = format!("{}/points/purchases", self.wallet);
        self.call(
            reqwest::Method::POST,
            url,
            user,
            "customer",
            Some(json!({"amount": amount})),
        )
        .await
    }

    async fn points(&self, user: UserId) -> Value {
        let url = format!("{}/points", self.wallet);
        self.call(reqwest::Method::GET, url, user, "customer", None)
            .await
            .body
    }

    async fn provider(&self, down: bool) {
        let url = format!("{}/admin/payment-provider", self.payment);
        let settings =
            json!({"latencyMs": 0, "failureRate": 0.0, "down": down, "declineAbove": 50000});
        let answer = self
            .call(
                reqwest::Method::PUT,
                url,
                UserId::new(),
                "admin",
                Some(settings),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    async fn publish(&self, event: &ReservationEvent) {
        self.bus.publish(&[event.outgoing(None)]).await.unwrap();
    }

    async fn balance_becomes(&self, user: UserId, balance: u64) -> Value {
        for _ in 0..200 {
            let points = self.points(user).await;
            if points["balance"] == balance {
                return points;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the balance never became {balance}: {}",
            self.points(user).await
        );
    }

    async fn breaker_state(&self) -> Option<String> {
        let text = self
            .http
            .get(format!("{}/metrics", self.wallet))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().find_map(|line| {
            line.strip_prefix(
                "boxoffice_circuit_breaker_state{dependency=\"payment\",caller=\"wallet\"} ",
            )
            .map(str::to_owned)
        })
    }
}

fn booking(user: UserId, amount: i64) -> Booking {
    Booking {
        reservation_id: ReservationId::new(),
        user_id: user,
        listing_id: ListingId::new(),
        listing_title: "Bike 7".to_owned(),
        listing_kind: ListingKind::Bike,
        quantity: 1,
        seats: Vec::new(),
        amount: Money::parse(amount).unwrap(),
        payment_method: PaymentMethod::Points,
    }
}

#[tokio::test]
async fn points_bought_by_card_pay_for_a_booking_and_come_back_when_it_is_cancelled() {
    let running = start().await;
    let user = UserId::new();

    let first = running.buy(user, 3_000).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["balance"], 3_000);
    let second = running.buy(user, 5_000).await;
    assert_eq!(second.body["balance"], 8_000);

    let payments = running
        .call(
            reqwest::Method::GET,
            format!("{}/payments", running.payment),
            user,
            "customer",
            None,
        )
        .await;
    let payments = payments.body.as_array().unwrap().clone();
    assert_eq!(payments.len(), 2);
    for payment in &payments {
        assert_eq!(payment["status"], "captured");
        assert!(payment.get("reservationId").is_none());
    }

    let declined = running.buy(user, 60_000).await;
    assert_eq!(declined.status, 402, "{}", declined.body);
    assert!(declined.body["detail"]
        .as_str()
        .unwrap()
        .contains("over its limit"));

    // Payment down: refused twice, then the breaker answers at once.
    running.provider(true).await;
    assert_eq!(running.breaker_state().await.as_deref(), Some("0"));
    for _ in 0..2 {
        let refused = running.buy(user, 100).await;
        assert_eq!(refused.status, 503, "{}", refused.body);
    }
    assert_eq!(running.breaker_state().await.as_deref(), Some("2"));
    let open = running.buy(user, 100).await;
    assert_eq!(open.status, 503);
    assert_eq!(open.retry_after.as_deref(), Some("1"));
    assert!(open.body["detail"]
        .as_str()
        .unwrap()
        .starts_with("payment is unavailable, try again later"));
    assert_eq!(running.points(user).await["balance"], 8_000);

    running.provider(false).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(running.buy(user, 1_000).await.status, 201);
    assert_eq!(running.breaker_state().await.as_deref(), Some("0"));

    // A booking paid with points: spent, then given back on cancel.
    let booking = booking(user, 4_000);
    running
        .publish(&ReservationEvent::ReservationPlaced {
            booking: booking.clone(),
            placed_at: kernel::now(),
        })
        .await;
    let points = running.balance_becomes(user, 5_000).await;
    assert_eq!(points["entries"][0]["kind"], "spent");
    assert_eq!(
        points["entries"][0]["reservationId"],
        booking.reservation_id.to_string()
    );
    running
        .publish(&ReservationEvent::ReservationCancelled {
            booking,
            cancelled_at: kernel::now(),
        })
        .await;
    let points = running.balance_becomes(user, 9_000).await;
    assert_eq!(points["entries"][0]["kind"], "refunded");
    running.stop.fire();
}

//! Charges cards through payment's internal sale (`POST /internal/charges`),
//! synchronously while the customer waits, behind the shared breaker of
//! [`runtime::breaker`]: its state is
//! `boxoffice_circuit_breaker_state{dependency="payment",caller="wallet"}`.
//! Cancels (`POST /internal/charges/{paymentId}/cancel`) bypass the breaker:
//! taking back a charge must go out whatever its state.

use async_trait::async_trait;
use kernel::ids::{PaymentId, UserId};
use kernel::Money;
use runtime::breaker::{CallError, CallSettings, Dependency, GuardedClient};
use serde::Serialize;

use crate::app::Card;

#[derive(Clone, Debug)]
pub struct CardSales {
    calls: GuardedClient,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChargeRequest {
    payment_id: PaymentId,
    user_id: UserId,
    amount: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CancelRequest {
    user_id: UserId,
    amount: i64,
}

impl CardSales {
    pub fn new(payment_url: &str, settings: CallSettings) -> CardSales {
        let payment = Dependency {
            name: "payment",
            caller: "wallet",
            while_open: "purchases of points are refused at once until payment answers again",
        };
        CardSales {
            calls: GuardedClient::new(payment_url, payment, settings),
        }
    }

    /// The guarded client, whose breaker admins may look at.
    pub fn guarded(&self) -> GuardedClient {
        self.calls.clone()
    }
}

#[async_trait]
impl Card for CardSales {
    async fn charge(
        &self,
        payment: PaymentId,
        user: UserId,
        amount: Money,
    ) -> Result<(), CallError> {
        let request = ChargeRequest {
            payment_id: payment,
            user_id: user,
            amount: amount.minor_units(),
        };
        // Charged is all the wallet needs to know; the payment is not kept.
        self.calls
            .post::<_, serde::de::IgnoredAny>("/internal/charges", &request)
            .await
            .map(|_| ())
    }

    async fn cancel(&self, payment: PaymentId, user: UserId, amount: Money) -> anyhow::Result<()> {
        let response = self
            .calls
            .http()
            .post(
                self.calls
                    .url(&format!("/internal/charges/{payment}/cancel")),
            )
            .json(&CancelRequest {
                user_id: user,
                amount: amount.minor_units(),
            })
            .send()
            .await?;
        let status = response.status();
        // 409: the id names no charge of this user's; there is nothing of
        // this purchase to take back.
        if status.is_success() || status.as_u16() == 409 {
            Ok(())
        } else {
            anyhow::bail!("payment answered {status} to a cancel")
        }
    }
}

//! A card payment's life, free of I/O.
//!
//! A payment is authorised synchronously while the customer waits; what
//! happens to it afterwards (capture on confirmation, void on rejection,
//! refund on cancel) is *requested* by the saga and *settled* with the
//! provider later by a worker, so that a slow or absent provider never
//! holds up the saga's consumers and a request made while the provider is
//! down is simply settled when it is back.

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Authorised,
    Declined,
    Captured,
    Voided,
    Refunded,
}

/// Where a payment stands, as the API writes it.
impl utoipa::PartialSchema for Status {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        runtime::api::string_enum(
            &[
                Status::Authorised,
                Status::Declined,
                Status::Captured,
                Status::Voided,
                Status::Refunded,
            ]
            .map(Status::as_str),
        )
    }
}

impl utoipa::ToSchema for Status {
    fn name() -> std::borrow::Cow<'static, str> {
        "PaymentStatus".into()
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Authorised => "authorised",
            Status::Declined => "declined",
            Status::Captured => "captured",
            Status::Voided => "voided",
            Status::Refunded => "refunded",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        Some(match value {
            "authorised" => Status::Authorised,
            "declined" => Status::Declined,
            "captured" => Status::Captured,
            "voided" => Status::Voided,
            "refunded" => Status::Refunded,
            _ => return None,
        })
    }
}

/// What the saga asked for and the provider has not done yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Capture,
    Void,
    Refund,
}

impl Settlement {
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::Capture => "capture",
            Settlement::Void => "void",
            Settlement::Refund => "refund",
        }
    }

    pub fn parse(value: &str) -> Option<Settlement> {
        Some(match value {
            "capture" => Settlement::Capture,
            "void" => Settlement::Void,
            "refund" => Settlement::Refund,
            _ => return None,
        })
    }

    /// The status the payment reaches once the provider has done it.
    pub fn outcome(self) -> Status {
        match self {
            Settlement::Capture => Status::Captured,
            Settlement::Void => Status::Voided,
            Settlement::Refund => Status::Refunded,
        }
    }
}

/// What the saga says happened to the booking a payment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingOutcome {
    /// Confirmed: take the money.
    Confirmed,
    /// Rejected or expired before confirmation: release the authorisation.
    Abandoned,
    /// Cancelled by the customer: give back whatever was taken.
    Cancelled,
}

/// A payment's state as far as settling it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: Status,
    pub pending: Option<Settlement>,
}

/// The settlement a booking outcome calls for, given where the payment
/// stands; `None` when there is nothing (more) to do. Repeated or late
/// outcomes therefore change nothing.
///
/// - Confirmed: capture an authorisation.
/// - Abandoned: void an authorisation (a capture cannot be pending: the
///   booking was never confirmed).
/// - Cancelled: refund a capture; an authorisation never captured, or one
///   whose capture has not reached the provider yet, is voided instead —
///   the customer is never charged only to be refunded.
pub fn settlement_for(standing: Standing, outcome: BookingOutcome) -> Option<Settlement> {
    use BookingOutcome::*;
    use Status::*;
    match (standing.status, standing.pending, outcome) {
        (Authorised, None, Confirmed) => Some(Settlement::Capture),
        (Authorised, None | Some(Settlement::Capture), Abandoned | Cancelled) => {
            Some(Settlement::Void)
        }
        (Captured, None, Cancelled | Abandoned) => Some(Settlement::Refund),
        _ => None,
    }
}

/// The built-in provider's behaviour, set by configuration
/// (`[payment.provider]`) and at run time (`PUT /admin/payment-provider`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// How long every provider call takes.
    pub latency_ms: u64,
    /// The share of calls that fail as if the provider were overloaded (0 to 1).
    pub failure_rate: f64,
    /// Every call fails: the provider is down.
    pub down: bool,
    /// Cards are declined for amounts above this.
    pub decline_above: Option<i64>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            latency_ms: 0,
            failure_rate: 0.0,
            down: false,
            decline_above: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("failureRate must be between 0 and 1 (got {0})")]
    FailureRate(String),
    #[error("latencyMs must be at most {MAX_LATENCY_MS} (got {0})")]
    Latency(u64),
    #[error("declineAbove must not be negative (got {0})")]
    DeclineAbove(i64),
}

/// Longest latency the fake provider may be given (a minute).
pub const MAX_LATENCY_MS: u64 = 60_000;

impl ProviderSettings {
    pub fn validate(self) -> Result<ProviderSettings, SettingsError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(SettingsError::FailureRate(self.failure_rate.to_string()));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(SettingsError::Latency(self.latency_ms));
        }
        if let Some(limit) = self.decline_above.filter(|limit| *limit < 0) {
            return Err(SettingsError::DeclineAbove(limit));
        }
        Ok(self)
    }

    /// The fake provider's answer to an authorisation of `amount`, given a
    /// random `roll` in `[0, 1)`.
    pub fn judge(&self, amount: i64, roll: f64) -> Verdict {
        if self.down || roll < self.failure_rate {
            return Verdict::Fail;
        }
        match self.decline_above {
            Some(limit) if amount > limit => Verdict::Decline(format!(
                "the card was declined: {amount} is over its limit of {limit}"
            )),
            _ => Verdict::Approve,
        }
    }

    /// Captures, voids and refunds are never declined, only failed.
    pub fn judge_settlement(&self, roll: f64) -> Verdict {
        if self.down || roll < self.failure_rate {
            Verdict::Fail
        } else {
            Verdict::Approve
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Decline(String),
    Fail,
}

/// A payment as the service keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: kernel::ids::PaymentId,
    pub reservation_id: Option<kernel::ids::ReservationId>,
    pub user_id: kernel::ids::UserId,
    pub amount: kernel::Money,
    pub status: Status,
    pub pending: Option<Settlement>,
    pub reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a charge (a card sale, e.g. of points) answers when its payment id
/// is known already: the first outcome, whatever happened since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleStanding {
    /// Taken, or reserved and being captured.
    Paid,
    /// The card was refused, for this reason.
    Declined(String),
    /// The caller took the sale back (it never got the answer): nothing
    /// stays taken, and the id must not be charged again.
    Cancelled,
    /// The id names another payment: a booking's, or another user's or
    /// amount's sale.
    Different,
}

/// Where an existing payment leaves a charge request for `user` and
/// `amount` under the same payment id.
pub fn sale_standing(
    existing: &Payment,
    user: kernel::ids::UserId,
    amount: kernel::Money,
) -> SaleStanding {
    if existing.reservation_id.is_some() || existing.user_id != user || existing.amount != amount {
        return SaleStanding::Different;
    }
    match (existing.status, existing.pending) {
        (Status::Declined, _) => SaleStanding::Declined(
            existing
                .reason
                .clone()
                .unwrap_or_else(|| "the card was declined".to_owned()),
        ),
        (Status::Voided | Status::Refunded, _)
        | (_, Some(Settlement::Void | Settlement::Refund)) => SaleStanding::Cancelled,
        (Status::Authorised | Status::Captured, None | Some(Settlement::Capture)) => {
            SaleStanding::Paid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(status: Status, pending: Option<Settlement>) -> Standing {
        Standing { status, pending }
    }

    #[test]
    fn a_confirmed_booking_captures_its_authorisation_once() {
        let authorised = standing(Status::Authorised, None);
        assert_eq!(
            settlement_for(authorised, BookingOutcome::Confirmed),
            Some(Settlement::Capture)
        );
        let capturing = standing(Status::Authorised, Some(Settlement::Capture));
        assert_eq!(settlement_for(capturing, BookingOutcome::Confirmed), None);
        let captured = standing(Status::Captured, None);
        assert_eq!(settlement_for(captured, BookingOutcome::Confirmed), None);
    }

    #[test]
    fn a_rejected_or_expired_booking_voids_its_authorisation() {
        assert_eq!(
            settlement_for(
                standing(Status::Authorised, None),
                BookingOutcome::Abandoned
            ),
            Some(Settlement::Void)
        );
        assert_eq!(
            settlement_for(standing(Status::Voided, None), BookingOutcome::Abandoned),
            None
        );
    }

    #[test]
    fn a_cancel_refunds_a_capture_but_voids_what_was_never_taken() {
        assert_eq!(
            settlement_for(standing(Status::Captured, None), BookingOutcome::Cancelled),
            Some(Settlement::Refund)
        );
        assert_eq!(
            settlement_for(
                standing(Status::Authorised, None),
                BookingOutcome::Cancelled
            ),
            Some(Settlement::Void)
        );
        // Confirmed then cancelled while the provider was down: the capture
        // never happened, so nothing is taken and nothing refunded.
        assert_eq!(
            settlement_for(
                standing(Status::Authorised, Some(Settlement::Capture)),
                BookingOutcome::Cancelled
            ),
            Some(Settlement::Void)
        );
    }

    #[test]
    fn finished_payments_take_no_more_settlements() {
        for status in [Status::Declined, Status::Voided, Status::Refunded] {
            for outcome in [
                BookingOutcome::Confirmed,
                BookingOutcome::Abandoned,
                BookingOutcome::Cancelled,
            ] {
                assert_eq!(settlement_for(standing(status, None), outcome), None);
            }
        }
        assert_eq!(
            settlement_for(
                standing(Status::Captured, Some(Settlement::Refund)),
                BookingOutcome::Cancelled
            ),
            None
        );
    }

    #[test]
    fn the_fake_provider_declines_over_the_limit_and_fails_when_down_or_unlucky() {
        let settings = ProviderSettings {
            decline_above: Some(100_000),
            failure_rate: 0.25,
            ..ProviderSettings::default()
        };
        assert_eq!(settings.judge(100_000, 0.9), Verdict::Approve);
        assert!(
            matches!(settings.judge(100_001, 0.9), Verdict::Decline(reason) if reason.contains("over its limit"))
        );
        assert_eq!(settings.judge(10, 0.1), Verdict::Fail);
        let down = ProviderSettings {
            down: true,
            ..ProviderSettings::default()
        };
        assert_eq!(down.judge(10, 0.99), Verdict::Fail);
        assert_eq!(down.judge_settlement(0.99), Verdict::Fail);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let bad_rate = ProviderSettings {
            failure_rate: 1.5,
            ..ProviderSettings::default()
        };
        assert!(bad_rate.validate().is_err());
        let bad_latency = ProviderSettings {
            latency_ms: MAX_LATENCY_MS + 1,
            ..ProviderSettings::default()
        };
        assert!(bad_latency.validate().is_err());
        assert!(ProviderSettings::default().validate().is_ok());
    }

    fn sale(status: Status, pending: Option<Settlement>) -> Payment {
        let now = kernel::now();
        Payment {
            id: kernel::ids::PaymentId::new(),
            reservation_id: None,
            user_id: kernel::ids::UserId::new(),
            amount: kernel::Money::parse(3_000).unwrap(),
            status,
            pending,
            reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_repeated_charge_stands_where_the_first_one_ended() {
        let stands = |payment: &Payment| sale_standing(payment, payment.user_id, payment.amount);
        assert_eq!(stands(&sale(Status::Captured, None)), SaleStanding::Paid);
        // Reserved on the card, captured once the provider is back.
        assert_eq!(
            stands(&sale(Status::Authorised, Some(Settlement::Capture))),
            SaleStanding::Paid
        );
        assert_eq!(
            stands(&sale(Status::Declined, None)),
            SaleStanding::Declined("the card was declined".to_owned())
        );
        for (status, pending) in [
            (Status::Voided, None),
            (Status::Refunded, None),
            (Status::Captured, Some(Settlement::Refund)),
            (Status::Authorised, Some(Settlement::Void)),
        ] {
            assert_eq!(
                stands(&sale(status, pending)),
                SaleStanding::Cancelled,
                "{status:?} {pending:?}"
            );
        }
    }

    #[test]
    fn a_payment_id_of_another_payment_is_not_this_charge() {
        let paid = sale(Status::Captured, None);
        let other_amount = kernel::Money::parse(3_001).unwrap();
        assert_eq!(
            sale_standing(&paid, paid.user_id, other_amount),
            SaleStanding::Different
        );
        assert_eq!(
            sale_standing(&paid, kernel::ids::UserId::new(), paid.amount),
            SaleStanding::Different
        );
        let booking = Payment {
            reservation_id: Some(kernel::ids::ReservationId::new()),
            ..paid.clone()
        };
        assert_eq!(
            sale_standing(&booking, paid.user_id, paid.amount),
            SaleStanding::Different
        );
    }

    #[test]
    fn statuses_and_settlements_round_trip() {
        for status in [
            Status::Authorised,
            Status::Declined,
            Status::Captured,
            Status::Voided,
            Status::Refunded,
        ] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        for settlement in [Settlement::Capture, Settlement::Void, Settlement::Refund] {
            assert_eq!(Settlement::parse(settlement.as_str()), Some(settlement));
        }
    }
}

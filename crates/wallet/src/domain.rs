//! A customer's wallet of loyalty points, and how payments change it. Pure.
//!
//! The balance is never negative: earning and buying add, paying a booking
//! deducts all or nothing, and a refund takes back what its booking earned
//! only as far as the balance allows, the rest being recorded as a
//! shortfall rather than owed. One point is worth one unit of money.

use kernel::Money;

/// A number of loyalty points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Points(u64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub fn new(points: u64) -> Points {
        Points(points)
    }

    pub fn value(self) -> u64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for Points {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The share of a card payment paid back as points, in whole percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarnRate(u32);

impl EarnRate {
    pub fn percent(percent: u32) -> EarnRate {
        EarnRate(percent)
    }

    /// The points `amount` earns: `amount × rate / 100`, rounded down, so a
    /// customer is never credited a fraction the payment did not cover.
    pub fn points_for(self, amount: Money) -> Points {
        // Money is at most 10^12 and non-negative, so u128 cannot overflow.
        let minor = u128::try_from(amount.minor_units()).unwrap_or(0);
        let points = minor * u128::from(self.0) / 100;
        Points(u64::try_from(points).unwrap_or(u64::MAX))
    }
}

/// The most points one purchase buys.
pub const MAX_PURCHASE: u64 = 1_000_000;

/// A purchase of points that cannot be made as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPurchase {
    #[error("amount must be at least 1 point (got {0})")]
    TooFew(i64),
    #[error("amount must be at most {MAX_PURCHASE} points (got {0})")]
    TooMany(i64),
}

impl Points {
    /// The points a purchase of `amount` buys: a whole number from 1 to
    /// [`MAX_PURCHASE`].
    pub fn purchase(amount: i64) -> Result<Points, InvalidPurchase> {
        match u64::try_from(amount) {
            Ok(0) | Err(_) => Err(InvalidPurchase::TooFew(amount)),
            Ok(points) if points > MAX_PURCHASE => Err(InvalidPurchase::TooMany(amount)),
            Ok(points) => Ok(Points(points)),
        }
    }

    /// The points a booking of `amount` costs: one point per unit of money.
    pub fn for_amount(amount: Money) -> Points {
        Points(u64::try_from(amount.minor_units()).unwrap_or(0))
    }

    /// What the points are worth in money (a purchase's charge).
    pub fn worth(self) -> Result<Money, kernel::money::MoneyError> {
        Money::parse(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

/// Why a booking could not be paid with points; said to the customer as it
/// is written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no points yet: buy points first ({needed} needed)")]
    NoWallet { needed: Points },
    #[error("not enough points: {available} available, {needed} needed")]
    NotEnough { available: Points, needed: Points },
}

/// Pays a booking with points from `wallet` (none if the customer never
/// had one): the wallet after the deduction, or why it was refused (and
/// then nothing is deducted).
pub fn pay_booking(wallet: Option<Wallet>, needed: Points) -> Result<Wallet, Refusal> {
    let wallet = wallet.ok_or(Refusal::NoWallet { needed })?;
    wallet.spend(needed).map_err(|short| Refusal::NotEnough {
        available: short.balance,
        needed,
    })
}

/// Where a purchase of points stands. The card is charged under the
/// purchase's payment id, which payment knows charges by, so asking again
/// never charges twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseStatus {
    /// Recorded before the card is charged; being charged, or left so by a
    /// process that stopped (recovery finishes it).
    Pending,
    /// Charged and credited: the answer.
    Credited,
    /// The card was declined: the answer; nothing was credited.
    Declined,
    /// Payment could not charge (down, or its breaker open); nothing was
    /// taken and nothing credited. The customer may try again.
    Failed,
    /// The charge's answer never came (a timeout): payment is being told to
    /// take it back; nothing was credited.
    Cancelling,
    /// Payment took it back; the customer may try again.
    Cancelled,
}

impl PurchaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Pending => "pending",
            PurchaseStatus::Credited => "credited",
            PurchaseStatus::Declined => "declined",
            PurchaseStatus::Failed => "failed",
            PurchaseStatus::Cancelling => "cancelling",
            PurchaseStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<PurchaseStatus> {
        Some(match text {
            "pending" => PurchaseStatus::Pending,
            "credited" => PurchaseStatus::Credited,
            "declined" => PurchaseStatus::Declined,
            "failed" => PurchaseStatus::Failed,
            "cancelling" => PurchaseStatus::Cancelling,
            "cancelled" => PurchaseStatus::Cancelled,
            _ => return None,
        })
    }
}

/// What a request does on finding a purchase under its Idempotency-Key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Answer what the first request got (credited, or declined).
    Answer,
    /// Another request is charging it: wait for its outcome.
    Wait,
    /// It was left pending (its process stopped): charge it again under
    /// the same payment id, which charges at most once, and finish it.
    TakeOver,
    /// Nothing was taken: try again, under a new payment id.
    Retry,
    /// The last attempt is being taken back: try again shortly.
    TakingBack,
}

/// What to do with a purchase found in `status`; `stale` when it has been
/// pending longer than any request charging it can take.
pub fn on_repeat(status: PurchaseStatus, stale: bool) -> Repeat {
    match status {
        PurchaseStatus::Credited | PurchaseStatus::Declined => Repeat::Answer,
        PurchaseStatus::Pending if stale => Repeat::TakeOver,
        PurchaseStatus::Pending => Repeat::Wait,
        PurchaseStatus::Failed | PurchaseStatus::Cancelled => Repeat::Retry,
        PurchaseStatus::Cancelling => Repeat::TakingBack,
    }
}

/// A spend larger than the balance: refused, nothing deducted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{requested} points requested, {balance} available")]
pub struct Insufficient {
    pub requested: Points,
    pub balance: Points,
}

/// What taking back a refunded booking's points did: `taken` left the
/// balance, `shortfall` could not because it was spent already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withdrawal {
    pub wallet: Wallet,
    pub taken: Points,
    pub shortfall: Points,
}

/// One user's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wallet {
    balance: Points,
}

impl Wallet {
    /// A wallet nobody has earned anything into yet.
    pub fn empty() -> Wallet {
        Wallet::default()
    }

    /// A wallet as stored.
    pub fn restore(balance: Points) -> Wallet {
        Wallet { balance }
    }

    pub fn balance(self) -> Points {
        self.balance
    }

    /// Points a captured payment earned. Saturates rather than wraps: no
    /// real balance comes near `u64::MAX`.
    pub fn earn(self, points: Points) -> Wallet {
        Wallet {
            balance: Points(self.balance.0.saturating_add(points.0)),
        }
    }

    /// Points bought with money: the first purchase opens the wallet,
    /// later ones top it up.
    pub fn top_up(self, points: Points) -> Wallet {
        self.earn(points)
    }

    /// Points a booking spent, given back because it did not go ahead.
    pub fn give_back(self, points: Points) -> Wallet {
        self.earn(points)
    }

    /// Pays with points: all of them or, when the balance is short, none.
    pub fn spend(self, points: Points) -> Result<Wallet, Insufficient> {
        match self.balance.0.checked_sub(points.0) {
            Some(left) => Ok(Wallet {
                balance: Points(left),
            }),
            None => Err(Insufficient {
                requested: points,
                balance: self.balance,
            }),
        }
    }

    /// Takes back the points a refunded booking `earned`, as far as the
    /// balance goes: a refund must not leave the customer owing points.
    pub fn withdraw(self, earned: Points) -> Withdrawal {
        let taken = Points(earned.0.min(self.balance.0));
        Withdrawal {
            wallet: Wallet {
                balance: Points(self.balance.0 - taken.0),
            },
            taken,
            shortfall: Points(earned.0 - taken.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: i64) -> Money {
        Money::parse(amount).unwrap()
    }

    fn wallet(balance: u64) -> Wallet {
        Wallet::restore(Points::new(balance))
    }

    #[test]
    fn a_payment_earns_its_rate_in_points() {
        assert_eq!(
            EarnRate::percent(10).points_for(money(15_000)),
            Points::new(1_500)
        );
    }

    #[test]
    fn fractions_of_a_point_are_rounded_down() {
        assert_eq!(EarnRate::percent(10).points_for(money(19)), Points::new(1));
        assert_eq!(EarnRate::percent(10).points_for(money(9)), Points::ZERO);
        assert_eq!(EarnRate::percent(0).points_for(money(15_000)), Points::ZERO);
    }

    #[test]
    fn the_largest_payment_does_not_overflow() {
        let points = EarnRate::percent(u32::MAX).points_for(money(kernel::money::MAX_AMOUNT));
        assert!(points.value() > 0);
    }

    #[test]
    fn earning_adds_to_the_balance() {
        assert_eq!(
            wallet(100).earn(Points::new(1_500)).balance().value(),
            1_600
        );
        assert_eq!(wallet(0).top_up(Points::new(50)).balance().value(), 50);
    }

    #[test]
    fn spending_deducts_when_the_balance_covers_it() {
        assert_eq!(
            wallet(1_500).spend(Points::new(1_500)).unwrap().balance(),
            Points::ZERO
        );
    }

    #[test]
    fn spending_more_than_the_balance_is_refused_and_deducts_nothing() {
        let before = wallet(1_000);
        assert_eq!(
            before.spend(Points::new(1_001)),
            Err(Insufficient {
                requested: Points::new(1_001),
                balance: Points::new(1_000)
            })
        );
        assert_eq!(before.balance().value(), 1_000);
    }

    #[test]
    fn a_purchase_buys_a_whole_number_of_points_up_to_a_million() {
        assert_eq!(Points::purchase(1), Ok(Points::new(1)));
        assert_eq!(Points::purchase(1_000_000), Ok(Points::new(1_000_000)));
        assert_eq!(Points::purchase(0), Err(InvalidPurchase::TooFew(0)));
        assert_eq!(Points::purchase(-5), Err(InvalidPurchase::TooFew(-5)));
        assert_eq!(
            Points::purchase(1_000_001),
            Err(InvalidPurchase::TooMany(1_000_001))
        );
        assert_eq!(
            InvalidPurchase::TooMany(1_000_001).to_string(),
            "amount must be at most 1000000 points (got 1000001)"
        );
        assert_eq!(
            InvalidPurchase::TooFew(0).to_string(),
            "amount must be at least 1 point (got 0)"
        );
    }

    #[test]
    fn a_point_is_worth_one_unit_of_money() {
        assert_eq!(Points::for_amount(money(1_000)), Points::new(1_000));
        assert_eq!(Points::new(3_000).worth().unwrap(), money(3_000));
    }

    #[test]
    fn the_first_purchase_opens_the_wallet_and_later_ones_top_it_up() {
        let opened = Wallet::empty().top_up(Points::new(3_000));
        assert_eq!(opened.top_up(Points::new(5_000)).balance().value(), 8_000);
    }

    #[test]
    fn a_booking_is_paid_when_the_balance_covers_it() {
        let paid = pay_booking(Some(wallet(5_000)), Points::new(1_000)).unwrap();
        assert_eq!(paid.balance().value(), 4_000);
        assert_eq!(
            pay_booking(Some(wallet(1_000)), Points::new(1_000))
                .unwrap()
                .balance(),
            Points::ZERO
        );
    }

    #[test]
    fn a_booking_beyond_the_balance_is_refused_in_plain_words() {
        let refused = pay_booking(Some(wallet(500)), Points::new(1_000)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not enough points: 500 available, 1000 needed"
        );
        let never = pay_booking(None, Points::new(1_000)).unwrap_err();
        assert_eq!(
            never.to_string(),
            "no points yet: buy points first (1000 needed)"
        );
    }

    #[test]
    fn a_repeated_purchase_answers_the_first_outcome_and_never_charges_beside_a_live_one() {
        use PurchaseStatus::*;
        assert_eq!(on_repeat(Credited, false), Repeat::Answer);
        assert_eq!(on_repeat(Declined, true), Repeat::Answer);
        assert_eq!(on_repeat(Pending, false), Repeat::Wait);
        assert_eq!(on_repeat(Pending, true), Repeat::TakeOver);
        assert_eq!(on_repeat(Failed, false), Repeat::Retry);
        assert_eq!(on_repeat(Cancelled, false), Repeat::Retry);
        assert_eq!(on_repeat(Cancelling, true), Repeat::TakingBack);
        for status in [Pending, Credited, Declined, Failed, Cancelling, Cancelled] {
            assert_eq!(PurchaseStatus::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn points_given_back_return_to_the_balance() {
        assert_eq!(
            wallet(4_000)
                .give_back(Points::new(1_000))
                .balance()
                .value(),
            5_000
        );
    }

    #[test]
    fn a_refund_takes_back_what_its_booking_earned() {
        let withdrawal = wallet(2_000).withdraw(Points::new(1_500));
        assert_eq!(withdrawal.taken, Points::new(1_500));
        assert_eq!(withdrawal.shortfall, Points::ZERO);
        assert_eq!(withdrawal.wallet.balance(), Points::new(500));
    }

    #[test]
    fn a_refund_of_spent_points_stops_at_zero_and_records_the_shortfall() {
        let withdrawal = wallet(400).withdraw(Points::new(1_500));
        assert_eq!(withdrawal.taken, Points::new(400));
        assert_eq!(withdrawal.shortfall, Points::new(1_100));
        assert_eq!(withdrawal.wallet.balance(), Points::ZERO);
    }
}

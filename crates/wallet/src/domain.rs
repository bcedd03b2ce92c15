//! A customer's wallet of loyalty points, and how payments change it. Pure.
//!
//! The balance is never negative: earning adds, spending deducts all or
//! nothing, and a refund takes back what its booking earned only as far as
//! the balance allows, the rest being recorded as a shortfall rather than
//! owed.

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

    /// Points bought with money (the bike line's top-up).
    pub fn top_up(self, points: Points) -> Wallet {
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

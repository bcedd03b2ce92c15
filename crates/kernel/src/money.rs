//! Money as integer minor units. Prices in boxoffice are whole amounts of
//! the smallest currency unit (won have none, cents would be the unit for
//! dollars), so arithmetic is exact.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative amount in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

/// The largest amount boxoffice accepts anywhere (one trillion units):
/// far above any real price, far below where `i64` arithmetic could overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must not be negative (got {0})")]
    Negative(i64),
    #[error("amount must be at most {MAX_AMOUNT} (got {0})")]
    TooLarge(i64),
}

/// Minor units as a JSON integer, within what [`Money::parse`] accepts.
impl schemars::JsonSchema for Money {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "format": "int64",
            "minimum": 0,
            "maximum": MAX_AMOUNT,
            "description": "An amount in minor currency units."
        })
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(MAX_AMOUNT))
            .description(Some("An amount in integer minor units of the currency."))
            .into()
    }
}

/// A component of the API document (`#/components/schemas/Money`).
impl utoipa::ToSchema for Money {}

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn parse(amount: i64) -> Result<Self, MoneyError> {
        if amount < 0 {
            Err(MoneyError::Negative(amount))
        } else if amount > MAX_AMOUNT {
            Err(MoneyError::TooLarge(amount))
        } else {
            Ok(Money(amount))
        }
    }

    pub fn minor_units(self) -> i64 {
        self.0
    }

    /// The price of `count` items, or `None` when it would exceed [`MAX_AMOUNT`].
    pub fn times(self, count: u32) -> Option<Money> {
        self.0
            .checked_mul(i64::from(count))
            .filter(|total| *total <= MAX_AMOUNT)
            .map(Money)
    }

    /// The sum, or `None` when it would exceed [`MAX_AMOUNT`].
    pub fn plus(self, other: Money) -> Option<Money> {
        self.0
            .checked_add(other.0)
            .filter(|total| *total <= MAX_AMOUNT)
            .map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_amounts_are_refused() {
        assert_eq!(Money::parse(-1), Err(MoneyError::Negative(-1)));
    }

    #[test]
    fn amounts_above_the_ceiling_are_refused() {
        assert!(Money::parse(MAX_AMOUNT + 1).is_err());
        assert!(Money::parse(MAX_AMOUNT).is_ok());
    }

    #[test]
    fn multiplying_past_the_ceiling_is_none() {
        let price = Money::parse(MAX_AMOUNT / 2).unwrap();
        assert_eq!(price.times(2), Some(Money(MAX_AMOUNT)));
        assert_eq!(price.times(3), None);
        assert_eq!(price.plus(price), Some(Money(MAX_AMOUNT)));
        assert_eq!(price.plus(Money(MAX_AMOUNT / 2 + 1)), None);
    }
}

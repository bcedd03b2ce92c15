//! Typed identifiers. Each aggregate has its own id type so that a
//! `ListingId` can never be passed where a `ReservationId` is expected.
//! On the wire they are opaque strings (a UUIDv7 in canonical form).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        /// On the wire an id is a UUID string; it is written in place (no
        /// named definition) because every id reads the same.
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "format": "uuid"})
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A thing that can be booked: a movie, a musical, a bike.
    ListingId
);
typed_id!(
    /// One customer's booking, and the correlation id of its saga.
    ReservationId
);
typed_id!(
    /// A registered user (customer or admin).
    UserId
);
typed_id!(
    /// One integration event; consumers de-duplicate on it.
    EventId
);
typed_id!(
    /// One message sent to a user.
    NotificationId
);
typed_id!(
    /// A cinema hall: a fixed grid of seats that showings are assigned to.
    ScreenId
);
typed_id!(
    /// One card payment: authorised, then captured, voided or refunded.
    PaymentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = ReservationId::new();
        let parsed: ReservationId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn ids_are_time_ordered() {
        let first = ListingId::new();
        let second = ListingId::new();
        assert!(first < second);
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-an-id".parse::<UserId>().is_err());
    }
}

//! The shared language of boxoffice: what every bounded context agrees on.
//!
//! Nothing here does I/O. It defines identities, money, the event envelope
//! that travels between contexts, the [`bus::EventBus`] port that both the
//! embedded log and Kafka implement, and the shutdown signal services obey.
//!
//! # Layout
//! - [`ids`]: typed identifiers (UUIDv7, time-ordered, opaque on the wire).
//! - [`money`]: amounts in integer minor units, never floating point.
//! - [`seat`]: seat labels (`A-1`): a row letter and a seat number.
//! - [`envelope`]: CloudEvents 1.0 attributes plus correlation and causation ids.
//! - [`bus`]: the publish / subscribe port with consumer groups and explicit commits.
//! - [`shutdown`]: a cloneable signal for graceful shutdown.

pub mod bus;
pub mod envelope;
pub mod ids;
pub mod money;
pub mod seat;
pub mod shutdown;

pub use envelope::Envelope;
pub use money::Money;
pub use seat::SeatLabel;

/// The current time, truncated to milliseconds so that what is stored,
/// sent on the wire and read back compares equal.
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now)
}

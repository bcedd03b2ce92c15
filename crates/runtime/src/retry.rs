//! Telling a passing fault from a real rejection, and waiting one out.
//!
//! A consumer or relay that cannot reach its database or the bus has done
//! nothing wrong with the event in hand: it must wait and try again, for as
//! long as the outage lasts, without ever counting that against the event.
//! Only an error that would come back however often it is retried (the
//! handler rejects the event) may, after a few tries, park it as a dead
//! letter.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use kernel::shutdown::Shutdown;

/// An optimistic write lost a race (the row changed since it was read).
/// Trying again reads the new state, so it is a passing fault, not a
/// verdict on the event.
#[derive(Debug, thiserror::Error)]
#[error("{0} changed concurrently")]
pub struct Contention(pub String);

/// Something outside the service's own store and bus (a payment provider,
/// another service) cannot be reached right now. Like an outage of the
/// store, it says nothing about the work in hand: wait and try again.
#[derive(Debug, thiserror::Error)]
#[error("{0} is unavailable")]
pub struct Unavailable(pub String);

/// Whether `error` is a passing fault of the store or the bus (retry as
/// long as it takes) rather than a rejection of the work itself.
pub fn is_transient(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if cause.is::<Contention>() || cause.is::<Unavailable>() {
            return true;
        }
        match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| transient_database_code(&code))
            }
            Some(other) => transient_sqlx(other),
            None => false,
        }
    })
}

fn transient_sqlx(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// PostgreSQL SQLSTATEs and SQLite result codes that mean "not now" rather
/// than "never".
fn transient_database_code(code: &str) -> bool {
    // SQLite reports its (extended) result code as a number of at most four
    // digits, the primary code in the low byte; PostgreSQL's SQLSTATEs have
    // five characters (and may be all digits).
    if let Some(number) = code.parse::<i32>().ok().filter(|_| code.len() < 5) {
        const BUSY: i32 = 5;
        const LOCKED: i32 = 6;
        const READONLY: i32 = 8;
        const IOERR: i32 = 10;
        const FULL: i32 = 13;
        const CANTOPEN: i32 = 14;
        return matches!(
            number & 0xff,
            BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN
        );
    }
    // PostgreSQL: connection exceptions (08), serialization failure and
    // deadlock (40001, 40P01), lock not available (55P03), insufficient
    // resources (53), operator intervention such as a shutdown (57P0x).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03"
        )
}

/// How often an ongoing outage is reported while it lasts.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Waits out a passing fault: capped exponential backoff with jitter, a
/// counter per failure, a log line when it starts, once a minute while it
/// lasts, and when it ends.
#[derive(Debug)]
pub struct Outage {
    /// Who is waiting (a consumer group, `outbox-relay`), for logs and metrics.
    who: String,
    delays: ExponentialBackoff,
    started: Option<Instant>,
    last_report: Instant,
    failures: u64,
}

impl Outage {
    pub fn new(who: impl Into<String>) -> Outage {
        Outage {
            who: who.into(),
            delays: delays(),
            started: None,
            last_report: Instant::now(),
            failures: 0,
        }
    }

    /// Records a failure and sleeps before the next try. Returns `false`
    /// when shutdown fired meanwhile (the caller should stop trying).
    pub async fn wait(&mut self, error: &anyhow::Error, shutdown: &mut Shutdown) -> bool {
        self.failures += 1;
        metrics::counter!("boxoffice_transient_failures_total", "who" => self.who.clone())
            .increment(1);
        let now = Instant::now();
        match self.started {
            None => {
                self.started = Some(now);
                self.last_report = now;
                tracing::warn!(who = %self.who, error = format!("{error:#}"), "store or bus unavailable; retrying until it is back");
            }
            Some(started) if now - self.last_report >= REPORT_EVERY => {
                self.last_report = now;
                tracing::warn!(who = %self.who, error = format!("{error:#}"), failures = self.failures,
                    seconds = (now - started).as_secs(), "store or bus still unavailable; still retrying");
            }
            Some(_) => {}
        }
        let delay = self.delays.next().unwrap_or(MAX_DELAY);
        tokio::select! {
            _ = tokio::time::sleep(delay) => !shutdown.is_fired(),
            _ = shutdown.wait() => false,
        }
    }

    /// The work went through: report the end of an outage, if there was one.
    pub fn recovered(&mut self) {
        if let Some(started) = self.started.take() {
            tracing::info!(who = %self.who, failures = self.failures,
                seconds = started.elapsed().as_secs_f64(), "store and bus reachable again");
        }
        self.failures = 0;
        self.delays = delays();
    }
}

const MAX_DELAY: Duration = Duration::from_secs(5);

/// 50 ms doubling to at most 5 s, each with random jitter so that many
/// waiting consumers do not return in lockstep; never gives up.
fn delays() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_stores_and_lost_races_are_transient() {
        assert!(is_transient(&anyhow::Error::new(sqlx::Error::PoolTimedOut)));
        assert!(is_transient(
            &anyhow::Error::new(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            )))
            .context("starting a transaction")
        ));
        assert!(is_transient(&anyhow::Error::new(Contention(
            "listing 1".into()
        ))));
        for code in ["5", "517", "8", "14", "08006", "40001", "40P01", "57P01"] {
            assert!(transient_database_code(code), "{code}");
        }
    }

    #[test]
    fn rejections_are_not_transient() {
        assert!(!is_transient(&anyhow::anyhow!(
            "boxoffice.reservation.placed payload does not match its schema"
        )));
        assert!(!is_transient(&anyhow::Error::new(sqlx::Error::RowNotFound)));
        // Constraint violations and syntax errors will fail the same way again.
        for code in ["19", "2067", "1", "23505", "23514", "42601"] {
            assert!(!transient_database_code(code), "{code}");
        }
    }

    #[test]
    fn delays_grow_and_stay_capped() {
        let delays: Vec<Duration> = delays().take(20).collect();
        assert_eq!(delays.len(), 20, "it never gives up");
        assert!(delays.iter().all(|d| *d <= MAX_DELAY * 2));
        assert!(delays[0] < Duration::from_millis(200));
    }
}

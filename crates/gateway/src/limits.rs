//! Rate limits at the edge (GCRA, the `governor` crate): sign-in and
//! signup attempts per client address, changes (POST, PUT, PATCH, DELETE)
//! per signed-in user. A request over its limit is answered 429
//! `rate-limited` with `Retry-After` and counted in
//! `boxoffice_rate_limited_total{limit}`.
//!
//! The client address is the TCP peer: behind a load balancer every
//! client shares the balancer's address, so set the sign-in limit for that.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kernel::ids::UserId;
use runtime::http::ApiError;
use serde::{Deserialize, Serialize};

/// How often the limiters forget clients whose allowance is full again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The limits; a rate of 0 switches that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Sign-ins and signups per second from one client address.
    pub auth_per_second: u32,
    /// How many of them may come at once before the rate applies.
    pub auth_burst: u32,
    /// Changes (POST, PUT, PATCH, DELETE) per second by one signed-in user.
    pub writes_per_second: u32,
    /// How many changes may come at once before the rate applies.
    pub writes_burst: u32,
}

impl Default for RateLimits {
    /// Far above what a person does (a household or an office behind one
    /// address signing in together, a customer clicking fast), low enough
    /// that one client cannot keep the password hasher or a service busy.
    fn default() -> Self {
        RateLimits {
            auth_per_second: 20,
            auth_burst: 200,
            writes_per_second: 50,
            writes_burst: 100,
        }
    }
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Auth,
    Writes,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Auth => "auth",
            Limit::Writes => "writes",
        }
    }
}

/// The keyed limiters, shared by every request.
#[derive(Clone)]
pub struct Limiter {
    limits: RateLimits,
    auth: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    writes: Option<Arc<DefaultKeyedRateLimiter<UserId>>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            auth: quota(limits.auth_per_second, limits.auth_burst)
                .map(|q| Arc::new(RateLimiter::keyed(q))),
            writes: quota(limits.writes_per_second, limits.writes_burst)
                .map(|q| Arc::new(RateLimiter::keyed(q))),
            clock: DefaultClock::default(),
        }
    }

    /// A sign-in or signup attempt from `client`.
    pub fn check_auth(&self, client: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.auth else {
            return Ok(());
        };
        limiter.check_key(&client).map_err(|not_until| {
            self.refuse(
                Limit::Auth,
                not_until.wait_time_from(self.clock.now()),
                format!(
                    "too many sign-in attempts from your address (limit: {} per second, bursts of {})",
                    self.limits.auth_per_second, self.limits.auth_burst
                ),
            )
        })
    }

    /// A request by `user`; only changes count.
    pub fn check_write(&self, method: &Method, user: &UserId) -> Result<(), ApiError> {
        let Some(limiter) = &self.writes else {
            return Ok(());
        };
        if !is_write(method) {
            return Ok(());
        }
        limiter.check_key(user).map_err(|not_until| {
            self.refuse(
                Limit::Writes,
                not_until.wait_time_from(self.clock.now()),
                format!(
                    "too many changes by this user (limit: {} per second, bursts of {})",
                    self.limits.writes_per_second, self.limits.writes_burst
                ),
            )
        })
    }

    fn refuse(&self, limit: Limit, wait: Duration, what: String) -> ApiError {
        metrics::counter!("boxoffice_rate_limited_total", "limit" => limit.label()).increment(1);
        // Whole seconds, rounded up, at least one.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let retry_after_secs = u32::try_from(secs.max(1)).unwrap_or(u32::MAX);
        ApiError::TooManyRequests {
            detail: format!("{what}; retry in {retry_after_secs} s"),
            retry_after_secs,
        }
    }

    /// Forgets the clients whose allowance is full again, so the keyed
    /// state holds only recent clients.
    pub fn retain_recent(&self) {
        if let Some(auth) = &self.auth {
            auth.retain_recent();
            auth.shrink_to_fit();
        }
        if let Some(writes) = &self.writes {
            writes.retain_recent();
            writes.shrink_to_fit();
        }
    }

    /// How many clients and users the limiters remember.
    pub fn tracked(&self) -> usize {
        self.auth.as_ref().map_or(0, |l| l.len()) + self.writes.as_ref().map_or(0, |l| l.len())
    }
}

/// Whether a request changes something.
pub fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Middleware for `/auth/*`: limits attempts per client address.
pub async fn limit_auth(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    match limiter.check_auth(client) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32) -> Limiter {
        Limiter::new(RateLimits {
            auth_per_second: per_second,
            auth_burst: burst,
            writes_per_second: per_second,
            writes_burst: burst,
        })
    }

    #[test]
    fn a_client_over_its_burst_is_refused_with_a_retry_after_while_others_pass() {
        let limiter = limiter(1, 3);
        let flooder: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            limiter.check_auth(flooder).unwrap();
        }
        let refused = limiter.check_auth(flooder).unwrap_err();
        let ApiError::TooManyRequests {
            detail,
            retry_after_secs,
        } = refused
        else {
            panic!("expected 429, got {refused:?}");
        };
        assert!(retry_after_secs >= 1);
        assert!(detail.contains("sign-in attempts"), "{detail}");
        assert!(detail.contains("retry in"), "{detail}");
        limiter.check_auth("10.0.0.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn only_changes_count_against_a_user() {
        let limiter = limiter(1, 1);
        let (alice, bob) = (UserId::new(), UserId::new());
        for _ in 0..10 {
            limiter.check_write(&Method::GET, &alice).unwrap();
        }
        limiter.check_write(&Method::POST, &alice).unwrap();
        assert!(limiter.check_write(&Method::DELETE, &alice).is_err());
        limiter.check_write(&Method::PATCH, &bob).unwrap();
    }

    #[test]
    fn a_rate_of_zero_switches_the_limit_off() {
        let limiter = limiter(0, 0);
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..1000 {
            limiter.check_auth(client).unwrap();
            limiter.check_write(&Method::POST, &UserId::new()).unwrap();
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn clients_whose_allowance_is_full_again_are_forgotten() {
        let limiter = limiter(1_000_000, 1);
        for n in 0..100u8 {
            limiter.check_auth(IpAddr::from([10, 0, 0, n])).unwrap();
        }
        assert_eq!(limiter.tracked(), 100);
        // One request at a million per second is forgotten within a microsecond.
        std::thread::sleep(Duration::from_millis(5));
        limiter.retain_recent();
        assert_eq!(limiter.tracked(), 0);
    }
}

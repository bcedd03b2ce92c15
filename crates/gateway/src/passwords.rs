//! Password hashing (Argon2id), bounded.
//!
//! Argon2 is deliberately slow and memory-hard: each hash or verification
//! takes a 19 MiB work buffer and a core for tens of milliseconds. Run
//! unbounded, a login flood would queue thousands of them on the blocking
//! pool and exhaust memory. So at most one runs per core at a time; a
//! request that cannot get a turn within a short wait is answered "busy"
//! (503 with `Retry-After`) instead of queueing forever.
//!
//! A login for a user that does not exist is verified against a dummy hash
//! computed once at start, so a miss costs what a wrong password costs and
//! the answer time does not tell which usernames exist.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// How long a request waits for a turn before it is answered busy.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(2);

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Every permit stayed taken for the whole wait.
    #[error("too many passwords are being checked right now")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What the hasher has done, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// How many may run at once.
    pub permits: usize,
    /// Verifications performed (a dummy one for an unknown user included).
    pub verifications: u64,
    /// Hashes computed (signups, admin password changes).
    pub hashes: u64,
    /// The most hashes and verifications that ever ran at the same time.
    pub peak_concurrent: usize,
}

/// Hashes and verifies passwords, a bounded number at a time.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    semaphore: Semaphore,
    permits: usize,
    wait: Duration,
    /// A hash of a random password: what an unknown user is checked against.
    dummy: String,
    verifications: AtomicU64,
    hashes: AtomicU64,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// One hash at a time per core of this machine, waiting up to
    /// [`DEFAULT_WAIT`] for a turn.
    pub async fn for_this_machine() -> anyhow::Result<Passwords> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords::new(cores, DEFAULT_WAIT).await
    }

    /// `permits` hashes at a time, waiting up to `wait` for a turn.
    pub async fn new(permits: usize, wait: Duration) -> anyhow::Result<Passwords> {
        let random = uuid::Uuid::new_v4().to_string();
        let dummy = tokio::task::spawn_blocking(move || hash_now(&random)).await??;
        Ok(Passwords {
            inner: Arc::new(Inner {
                semaphore: Semaphore::new(permits),
                permits,
                wait,
                dummy,
                verifications: AtomicU64::new(0),
                hashes: AtomicU64::new(0),
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        })
    }

    /// A new Argon2id hash (PHC string) of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        let hash = self.run(move || hash_now(&password)).await??;
        self.inner.hashes.fetch_add(1, Ordering::Relaxed);
        Ok(hash)
    }

    /// Whether `password` matches `stored`; with no stored hash (no such
    /// user) it is checked against the dummy hash, at the same cost, and
    /// the answer is always no.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let exists = stored.is_some();
        let password = password.to_owned();
        let stored = stored.unwrap_or(&self.inner.dummy).to_owned();
        let matches = self
            .run(move || {
                PasswordHash::new(&stored)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        Ok(exists && matches)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            permits: self.inner.permits,
            verifications: self.inner.verifications.load(Ordering::Relaxed),
            hashes: self.inner.hashes.load(Ordering::Relaxed),
            peak_concurrent: self.inner.peak.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = tokio::time::timeout(self.inner.wait, self.inner.semaphore.acquire())
            .await
            .map_err(|_| PasswordError::Busy)?
            .map_err(|_| PasswordError::Busy)?;
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let result = work();
            inner.running.fetch_sub(1, Ordering::SeqCst);
            result
        })
        .await
        .map_err(|e| PasswordError::Failed(anyhow::anyhow!("password hashing panicked: {e}")));
        drop(permit);
        result
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::new(1, DEFAULT_WAIT).await.unwrap();
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(passwords
            .verify("correct horse", Some(&hash))
            .await
            .unwrap());
        assert!(!passwords.verify("wrong horse", Some(&hash)).await.unwrap());
        assert_eq!(passwords.stats().hashes, 1);
        assert_eq!(passwords.stats().verifications, 2);
    }

    #[tokio::test]
    async fn a_check_without_a_stored_hash_costs_one_verification_and_never_matches() {
        let passwords = Passwords::new(1, DEFAULT_WAIT).await.unwrap();
        assert!(!passwords.verify("anything", None).await.unwrap());
        assert_eq!(passwords.stats().verifications, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_never_run_more_hashes_at_once_than_the_permits() {
        let passwords = Passwords::new(2, Duration::from_secs(60)).await.unwrap();
        let hash = passwords.hash("correct horse").await.unwrap();
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (passwords, hash) = (passwords.clone(), hash.clone());
            checks.spawn(async move { passwords.verify("correct horse", Some(&hash)).await });
        }
        while let Some(checked) = checks.join_next().await {
            assert!(checked.unwrap().unwrap());
        }
        let stats = passwords.stats();
        assert_eq!(stats.verifications, 32);
        assert!(stats.peak_concurrent <= 2, "{stats:?}");
        assert!(stats.peak_concurrent >= 1, "{stats:?}");
    }

    #[tokio::test]
    async fn a_check_that_gets_no_turn_within_the_wait_is_answered_busy() {
        let passwords = Passwords::new(0, Duration::from_millis(10)).await.unwrap();
        assert!(matches!(
            passwords.verify("anything", None).await,
            Err(PasswordError::Busy)
        ));
        assert!(matches!(
            passwords.hash("anything").await,
            Err(PasswordError::Busy)
        ));
        assert_eq!(passwords.stats().verifications, 0);
    }
}

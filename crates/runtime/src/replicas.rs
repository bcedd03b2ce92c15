//! A service's replicas as its callers see them: one or several base URLs
//! for the same service (`http://catalog-1:8080,http://catalog-2:8080`),
//! taken in turn (round robin). A replica that could not be reached is set
//! aside for a moment ([`SET_ASIDE_FOR`], passive health): the next calls
//! go to the others first, so a replica being restarted costs its callers
//! one refused connection, not one per call. A set-aside replica is still
//! tried last: when every replica failed a moment ago, trying them again
//! beats refusing outright.
//!
//! The choice of the replica ([`order`]) is pure; [`Replicas`] adds the
//! shared turn and the memory of failures; [`Replicas::connect`] sends a
//! request to the first replica that takes the connection, for the calls
//! services make to each other.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a replica that could not be reached is tried last.
pub const SET_ASIDE_FOR: Duration = Duration::from_secs(2);

/// The base URLs of a setting that names one service: separated by commas,
/// each trimmed of blanks and of a trailing `/`, empty ones dropped.
pub fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect()
}

/// The replicas of `list`, or why they cannot be used: at least one, each
/// an http(s) URL, none twice.
pub fn check(list: &str) -> Result<Vec<String>, String> {
    let urls = split(list);
    if urls.is_empty() {
        return Err("no URL given".to_owned());
    }
    for (n, url) in urls.iter().enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        if urls[..n].contains(url) {
            return Err(format!("{url:?} is listed twice"));
        }
    }
    Ok(urls)
}

/// The order in which to try the replicas: round the ring from `start`,
/// those not set aside first, then the set-aside ones, the one back
/// soonest first. `set_aside_until[i]` is when replica `i` may be tried
/// first again.
pub fn order(start: usize, set_aside_until: &[Option<Instant>], now: Instant) -> Vec<usize> {
    let count = set_aside_until.len();
    if count == 0 {
        return Vec::new();
    }
    let ring = (0..count).map(|step| (start + step) % count);
    let aside = |i: usize| set_aside_until[i].filter(|until| *until > now);
    let mut plan: Vec<usize> = ring.clone().filter(|&i| aside(i).is_none()).collect();
    let mut last: Vec<usize> = ring.filter(|&i| aside(i).is_some()).collect();
    // Stable: replicas back at the same moment keep the ring's order.
    last.sort_by_key(|&i| aside(i));
    plan.extend(last);
    plan
}

/// One service's replicas, shared by every call to it.
#[derive(Debug)]
pub struct Replicas {
    urls: Vec<String>,
    turn: AtomicUsize,
    set_aside_until: Mutex<Vec<Option<Instant>>>,
}

impl Replicas {
    /// The replicas of `list` (see [`split`]), unchecked: a list that
    /// [`check`] refuses gives calls that fail, not a panic. Start-up
    /// checks the configured lists before anything runs.
    pub fn new(list: &str) -> Replicas {
        let mut urls = split(list);
        if urls.is_empty() {
            // Calls fail with "builder error" rather than go nowhere silently.
            urls.push(String::new());
        }
        let count = urls.len();
        Replicas {
            urls,
            turn: AtomicUsize::new(0),
            set_aside_until: Mutex::new(vec![None; count]),
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The URL of replica `replica`.
    pub fn url(&self, replica: usize) -> &str {
        &self.urls[replica]
    }

    /// The replicas to try for one call, best first; each call starts one
    /// further round the ring than the last.
    pub fn plan(&self, now: Instant) -> Vec<usize> {
        // One replica (the usual case): nothing to choose, no lock taken.
        if self.urls.len() == 1 {
            return vec![0];
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        let set_aside = self.set_aside_until.lock().expect("never poisoned");
        order(start, &set_aside, now)
    }

    /// Replica `replica` could not be reached: try it last for a while.
    pub fn unreachable(&self, replica: usize, now: Instant) {
        if self.urls.len() == 1 {
            return;
        }
        let mut set_aside = self.set_aside_until.lock().expect("never poisoned");
        set_aside[replica] = Some(now + SET_ASIDE_FOR);
        tracing::debug!(replica = %self.urls[replica], "replica unreachable: tried last for a while");
    }

    /// Replica `replica` answered: it is as good as any again.
    pub fn reached(&self, replica: usize) {
        if self.urls.len() == 1 {
            return;
        }
        let mut set_aside = self.set_aside_until.lock().expect("never poisoned");
        set_aside[replica] = None;
    }

    /// Sends `send(base_url)` to one replica after the other until one
    /// takes the connection; its answer (or failure) is the call's. Only a
    /// refused connection moves on: the request never left, so sending it
    /// elsewhere cannot do anything twice.
    pub async fn connect<F, Fut>(&self, send: F) -> Result<reqwest::Response, reqwest::Error>
    where
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
    {
        self.send_until(send, reqwest::Error::is_connect).await
    }

    /// Sends `send(base_url)` to one replica after the other, moving on
    /// (and setting the replica aside) after a failure `move_on` accepts;
    /// an answer, or any other failure, is the call's.
    pub async fn send_until<F, Fut>(
        &self,
        mut send: F,
        move_on: impl Fn(&reqwest::Error) -> bool,
    ) -> Result<reqwest::Response, reqwest::Error>
    where
        F: FnMut(&str) -> Fut,
        Fut: Future<Output = Result<reqwest::Response, reqwest::Error>>,
    {
        let plan = self.plan(Instant::now());
        let mut last = None;
        for replica in plan {
            match send(self.url(replica)).await {
                Err(error) if move_on(&error) => {
                    self.unreachable(replica, Instant::now());
                    last = Some(error);
                }
                answer => {
                    if answer.is_ok() {
                        self.reached(replica);
                    }
                    return answer;
                }
            }
        }
        Err(last.expect("a plan has at least one replica"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_split_on_commas_and_trimmed() {
        assert_eq!(split("http://a:1"), ["http://a:1"]);
        assert_eq!(
            split(" http://a:1/ , http://b:2,,"),
            ["http://a:1", "http://b:2"]
        );
        assert!(split(" , ").is_empty());
    }

    #[test]
    fn a_list_needs_distinct_http_urls() {
        assert_eq!(
            check("http://a:1, https://b:2").unwrap(),
            ["http://a:1", "https://b:2"]
        );
        assert!(check("").unwrap_err().contains("no URL"));
        assert!(check("http://a,ftp://b").unwrap_err().contains("ftp://b"));
        assert!(check("http://a,http://a/")
            .unwrap_err()
            .contains("listed twice"));
    }

    #[test]
    fn calls_go_round_the_ring() {
        let now = Instant::now();
        let free = [None, None, None];
        assert_eq!(order(0, &free, now), [0, 1, 2]);
        assert_eq!(order(1, &free, now), [1, 2, 0]);
        assert_eq!(order(5, &free, now), [2, 0, 1]);
        assert!(order(0, &[], now).is_empty());
    }

    #[test]
    fn a_set_aside_replica_is_tried_last_until_its_time_is_up() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let set_aside = [None, Some(later), None];
        assert_eq!(order(1, &set_aside, now), [2, 0, 1]);
        assert_eq!(order(0, &set_aside, now), [0, 2, 1]);
        // Its time is up: back in the ring.
        assert_eq!(order(1, &set_aside, later), [1, 2, 0]);
    }

    #[test]
    fn when_all_are_set_aside_the_one_back_soonest_comes_first() {
        let now = Instant::now();
        let soon = now + Duration::from_millis(100);
        let late = now + Duration::from_millis(900);
        assert_eq!(order(0, &[Some(late), Some(soon)], now), [1, 0]);
        assert_eq!(order(1, &[Some(soon), Some(soon)], now), [1, 0]);
    }

    #[test]
    fn the_turn_moves_on_and_failures_are_remembered_for_a_while() {
        let replicas = Replicas::new("http://a,http://b,http://c");
        let now = Instant::now();
        let firsts: Vec<usize> = (0..6).map(|_| replicas.plan(now)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        replicas.unreachable(1, now);
        for _ in 0..3 {
            let plan = replicas.plan(now);
            assert_eq!(plan.last(), Some(&1), "{plan:?}");
        }
        assert_eq!(
            replicas.plan(now + SET_ASIDE_FOR)[..],
            [0, 1, 2],
            "back in turn once its time is up"
        );
        // Replica 1 is still set aside at `now`; an answer clears it.
        assert_eq!(replicas.plan(now)[..], [2, 0, 1]);
        replicas.reached(1);
        assert_eq!(replicas.plan(now)[..], [2, 0, 1]);
        assert_eq!(replicas.plan(now)[..], [0, 1, 2], "back in turn");
    }

    #[test]
    fn an_empty_list_still_makes_replicas_whose_calls_fail() {
        let replicas = Replicas::new("");
        assert_eq!(replicas.urls(), [""]);
        assert_eq!(replicas.plan(Instant::now()), [0]);
    }

    #[tokio::test]
    async fn a_refused_connection_moves_on_to_the_next_replica() {
        // A port nobody listens on: bound, then closed.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open_addr = open.local_addr().unwrap();
        let router = axum::Router::new().route("/x", axum::routing::get(|| async { "here" }));
        tokio::spawn(async move { axum::serve(open, router).await });
        let replicas = Replicas::new(&format!("http://{closed},http://{open_addr}"));
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let answer = replicas
                .connect(|base| http.get(format!("{base}/x")).send())
                .await
                .unwrap();
            assert_eq!(answer.text().await.unwrap(), "here");
        }
        assert_eq!(replicas.plan(Instant::now()).last(), Some(&0));
        // Nobody listens anywhere: the refusal comes back.
        let none = Replicas::new(&format!("http://{closed}"));
        let error = none
            .connect(|base| http.get(format!("{base}/x")).send())
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error}");
    }
}

//! A consumer in another language on the same events: the Python notifier
//! (`examples/python-notifier`) reads the reservation and payment topics
//! with confluent-kafka, checks each event against the published JSON
//! Schemas and keeps its own SQLite inbox. Killed hard midway and started
//! again, it still sends one message per booking outcome, worded as the
//! platform's own notifier words it.
//!
//! Its Python comes from `BOXOFFICE_TEST_PYTHON` (`python3` otherwise);
//! without confluent-kafka there the test skips, except under `CI`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::common::gateway::{eventually, set_patience, Gateway};
use crate::deployment::{Deployment, Servers};

/// Bookings of one ticket each, on a movie with fewer tickets: the last
/// ones are rejected (sold out).
const BOOKINGS: usize = 12;
const TICKETS: u32 = 9;
/// How long the first notifier holds a sent message's offset uncommitted:
/// the kill below lands in that window, so the restart gets a redelivery.
/// Wide, because the test notices the send by polling a file on a machine
/// that eight services, the broker and the database keep busy (400 ms was
/// once missed, then 2 s in a CI run with the other distributed tests
/// beside it); the restarted notifier does not hold. The first notifier
/// is killed after its first message, so it holds once.
const HOLD_COMMIT_MS: u32 = 30_000;
/// Bound on every wait for the notifier.
const PATIENCE: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python to run the notifier with, if it has the notifier's
/// libraries; `None` (after saying why) when the test should skip.
async fn python(test: &str) -> Option<String> {
    let python = std::env::var("BOXOFFICE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = Command::new(&python)
        .args(["-c", "import confluent_kafka, jsonschema"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    if importable {
        return Some(python);
    }
    let advice = format!(
        "{test}: {python} cannot import confluent_kafka and jsonschema; \
         pip install -r examples/python-notifier/requirements.txt in a venv \
         and set BOXOFFICE_TEST_PYTHON to its python"
    );
    assert!(
        std::env::var("CI").is_err(),
        "{advice} (CI must run this test)"
    );
    eprintln!("skipped {advice}");
    None
}

/// The notifier as a child process, its log and files in `dir`.
struct Notifier {
    python: String,
    dir: PathBuf,
    kafka: String,
    namespace: String,
    starts: u32,
    child: Option<Child>,
}

impl Notifier {
    fn output(&self) -> PathBuf {
        self.dir.join("messages.jsonl")
    }

    fn db(&self) -> PathBuf {
        self.dir.join("notifier.sqlite3")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("python-notifier.{start}.log"))
    }

    fn start(&mut self, hold_commit_ms: u32) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("a log file");
        let script = repo_root().join("examples/python-notifier/notifier.py");
        let child = Command::new(&self.python)
            .arg(script)
            .args(["--bootstrap-servers", &self.kafka])
            .args(["--namespace", &self.namespace])
            .arg("--db")
            .arg(self.db())
            .arg("--output")
            .arg(self.output())
            .arg("--contracts")
            .arg(repo_root().join("contracts"))
            .env("NOTIFIER_HOLD_COMMIT_MS", hold_commit_ms.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the python notifier starts");
        self.child = Some(child);
    }

    /// SIGKILL: no commit, no goodbye to the group.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("a running notifier");
        child.kill().await.expect("kill -9");
    }

    /// SIGTERM; it must finish and exit cleanly within 15 s.
    async fn stop(&mut self) {
        let mut child = self.child.take().expect("a running notifier");
        let pid = child.id().expect("a running notifier has a pid");
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "the notifier stopped with {status}:\n{}",
                self.log(self.starts)
            ),
            _ => {
                let _ = child.kill().await;
                panic!("the notifier did not stop within 15 s of SIGTERM");
            }
        }
    }

    /// Fails with its log if it has exited.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("a running notifier");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the notifier exited with {status}:\n{}",
                self.log(self.starts)
            );
        }
    }

    fn log(&self, start: u32) -> String {
        std::fs::read_to_string(self.log_path(start)).unwrap_or_default()
    }

    /// Every message line it sent so far.
    fn sent(&self) -> Vec<Value> {
        std::fs::read_to_string(self.output())
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line per message"))
            .collect()
    }

    /// Waits (bounded) until it has sent `count` messages or more.
    async fn wait_sent(&mut self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let sent = self.sent();
            if sent.len() >= count {
                return sent;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the notifier sent {} of {count} messages within {PATIENCE:?}:\n{}",
                sent.len(),
                self.log(self.starts)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One SQL answer from its SQLite database, read with the same Python
    /// (no SQLite library on this side).
    async fn query(&self, sql: &str) -> Value {
        let program = "import json, sqlite3, sys; \
                       db = sqlite3.connect(sys.argv[1]); \
                       print(json.dumps(db.execute(sys.argv[2]).fetchall()))";
        let output = Command::new(&self.python)
            .args(["-c", program])
            .arg(self.db())
            .arg(sql)
            .output()
            .await
            .expect("python runs");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON rows")
    }
}

/// Books one ticket `count` times, three at a time; returns the ids.
async fn book(gateway: &Gateway, token: &str, listing: &str, count: usize) -> Vec<String> {
    stream::iter(0..count)
        .map(|_| async move {
            let answer = gateway.book(token, listing, 1).await;
            assert_eq!(answer.status, 202, "{answer:?}");
            answer.body["id"].as_str().unwrap().to_owned()
        })
        .buffer_unordered(3)
        .collect()
        .await
}

#[tokio::test]
async fn a_python_notifier_killed_midway_sends_each_outcome_once_in_the_platforms_words() {
    const TEST: &str = "the Python notifier";
    set_patience(PATIENCE.as_secs());
    let Some(servers) = Servers::from_env(TEST) else {
        return;
    };
    let Some(python) = python(TEST).await else {
        return;
    };
    let deployment = Deployment::start(servers).await;
    let gateway = deployment.gateway.clone();
    let admin = gateway.admin_token().await;
    let customer = gateway.customer("polyglot").await;
    let movie = gateway.movie(&admin, "Babel", TICKETS).await;

    let files = tempfile::tempdir().expect("a temp dir");
    let mut notifier = Notifier {
        python,
        dir: files.path().to_owned(),
        kafka: deployment.servers.kafka.clone(),
        namespace: deployment.namespace.clone(),
        starts: 0,
        child: None,
    };
    notifier.start(HOLD_COMMIT_MS);

    // The first half, all confirmed; the notifier is killed as soon as it
    // has sent one, while that one's offset is still uncommitted.
    let mut ids = book(&gateway, &customer, &movie, BOOKINGS / 2).await;
    notifier.wait_sent(1).await;
    notifier.kill().await;

    // The second half while it is down: the movie sells out meanwhile.
    ids.extend(book(&gateway, &customer, &movie, BOOKINGS - BOOKINGS / 2).await);
    let mut outcome = BTreeMap::new();
    for id in &ids {
        outcome.insert(id.clone(), gateway.settled(&customer, id).await);
    }
    let confirmed = outcome.values().filter(|s| *s == "confirmed").count();
    assert_eq!(confirmed, TICKETS as usize, "{outcome:?}");
    assert_eq!(
        outcome.values().filter(|s| *s == "rejected").count(),
        BOOKINGS - TICKETS as usize,
        "{outcome:?}"
    );

    notifier.start(0);
    notifier.wait_sent(BOOKINGS).await;
    // Anything sent twice would show up by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    notifier.assert_running();
    let sent = notifier.sent();

    // One message per outcome: "reserved" for a confirmed booking,
    // "rejected" (with the reason) for one refused, none twice.
    let expected: BTreeSet<(String, String)> = outcome
        .iter()
        .map(|(id, status)| {
            let kind = if status == "confirmed" {
                "reserved"
            } else {
                "rejected"
            };
            (id.clone(), kind.to_owned())
        })
        .collect();
    let got: Vec<(String, String)> = sent
        .iter()
        .map(|m| {
            (
                m["reservationId"].as_str().unwrap().to_owned(),
                m["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got.len(), BOOKINGS, "one message per booking: {sent:#?}");
    assert_eq!(
        got.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{sent:#?}"
    );

    // The kill did land between a send and its offset commit: the restart
    // got that event again, and the inbox absorbed it.
    assert!(
        notifier.log(2).contains("already in the inbox: skipped"),
        "no redelivery reached the inbox after the kill:\n{}\nbefore the kill:\n{}",
        notifier.log(2),
        notifier.log(1)
    );

    // The same words as the platform's own notifier, message for message.
    let ours: BTreeMap<(String, String), String> = eventually(|| async {
        let all = gateway.list("/notifications", &admin).await;
        let ours: BTreeMap<(String, String), String> = all
            .iter()
            .filter(|n| outcome.contains_key(n["reservationId"].as_str().unwrap_or_default()))
            .map(|n| {
                (
                    (
                        n["reservationId"].as_str().unwrap().to_owned(),
                        n["kind"].as_str().unwrap().to_owned(),
                    ),
                    n["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (ours.len() == BOOKINGS).then_some(ours)
    })
    .await;
    for message in &sent {
        let key = (
            message["reservationId"].as_str().unwrap().to_owned(),
            message["kind"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            message["text"].as_str(),
            ours.get(&key).map(String::as_str),
            "{key:?}"
        );
    }

    // Its inbox: every booking's placed and outcome event once; every
    // message decided was sent; nothing broke the contract.
    let inbox = notifier
        .query(
            "SELECT event_type, COUNT(*), COUNT(DISTINCT subject) FROM inbox GROUP BY event_type",
        )
        .await;
    let by_type: BTreeMap<String, (u64, u64)> = inbox
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                (row[1].as_u64().unwrap(), row[2].as_u64().unwrap()),
            )
        })
        .collect();
    let n = |count: usize| (count as u64, count as u64);
    assert_eq!(
        by_type.get("boxoffice.reservation.placed"),
        Some(&n(BOOKINGS)),
        "{by_type:?}"
    );
    assert_eq!(
        by_type.get("boxoffice.reservation.confirmed"),
        Some(&n(confirmed)),
        "{by_type:?}"
    );
    assert_eq!(
        by_type.get("boxoffice.reservation.rejected"),
        Some(&n(BOOKINGS - confirmed)),
        "{by_type:?}"
    );
    assert_eq!(
        notifier
            .query("SELECT COUNT(*), SUM(sent) FROM messages")
            .await,
        serde_json::json!([[BOOKINGS, BOOKINGS]])
    );
    assert_eq!(
        notifier.query("SELECT reason FROM rejected").await,
        serde_json::json!([]),
        "events parked as breaking their schema"
    );

    notifier.stop().await;
    deployment.tear_down().await;
}

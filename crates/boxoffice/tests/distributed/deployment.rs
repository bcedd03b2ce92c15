//! A distributed deployment for a test: every service is its own
//! `boxoffice serve` OS process, on a real Kafka-protocol broker and a real
//! PostgreSQL server, reached only through the gateway.
//!
//! Each deployment has its own namespace: its Kafka topics and consumer
//! groups are prefixed with it and its databases are named after it, so
//! deployments never see each other's data. Deployments run one at a time
//! (each is half a dozen processes on a small machine, and one test
//! restarts PostgreSQL).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

use crate::common::gateway::{Gateway, ADMIN_PASSWORD};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The servers the tests run against, from the environment.
#[derive(Clone, Debug)]
pub struct Servers {
    /// `BOXOFFICE_TEST_KAFKA`: bootstrap servers, `127.0.0.1:9092`.
    pub kafka: String,
    /// `BOXOFFICE_TEST_POSTGRES`: a server and a role that may create
    /// databases, `postgres://postgres@127.0.0.1:5432`.
    pub postgres: String,
    /// `BOXOFFICE_TEST_POSTGRES_RESTART`: a shell command that restarts
    /// that PostgreSQL server (for the restart test).
    pub restart_postgres: Option<String>,
    /// `BOXOFFICE_TEST_POSTGRES_STOP` and `…_START`: shell commands that
    /// stop and start it (for the outage test).
    pub stop_postgres: Option<String>,
    pub start_postgres: Option<String>,
    /// `BOXOFFICE_TEST_REDIS`: `host:port` of a Redis for the tests that
    /// keep my page's read model there (required under `CI=true`); the
    /// others run on the default, PostgreSQL.
    pub redis: Option<String>,
}

impl Servers {
    /// The servers, or `None` (and a message saying how to provide them).
    pub fn from_env(test: &str) -> Option<Servers> {
        let kafka = std::env::var("BOXOFFICE_TEST_KAFKA").ok();
        let postgres = std::env::var("BOXOFFICE_TEST_POSTGRES").ok();
        match (kafka, postgres) {
            (Some(kafka), Some(postgres)) => Some(Servers {
                kafka,
                postgres: server_url(&postgres),
                restart_postgres: std::env::var("BOXOFFICE_TEST_POSTGRES_RESTART").ok(),
                stop_postgres: std::env::var("BOXOFFICE_TEST_POSTGRES_STOP").ok(),
                start_postgres: std::env::var("BOXOFFICE_TEST_POSTGRES_START").ok(),
                redis: redis(test),
            }),
            _ => {
                // CI starts both servers: missing ones there are a broken
                // run, not a reason to skip.
                assert!(
                    std::env::var("CI").is_err(),
                    "{test}: BOXOFFICE_TEST_KAFKA and BOXOFFICE_TEST_POSTGRES are not set, but CI must run this test"
                );
                eprintln!(
                    "skipped {test}: set BOXOFFICE_TEST_KAFKA and BOXOFFICE_TEST_POSTGRES \
                     to run it against a broker and PostgreSQL (docs/operations.md)"
                );
                None
            }
        }
    }
}

/// The Redis to run my page on. CI starts one: missing there is a broken
/// run, not a reason to leave Redis out.
fn redis(test: &str) -> Option<String> {
    match std::env::var("BOXOFFICE_TEST_REDIS") {
        Ok(address) if !address.is_empty() => Some(if address.contains("://") {
            address
        } else {
            format!("redis://{address}")
        }),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "{test}: BOXOFFICE_TEST_REDIS is not set, but CI runs the distributed tests on Redis"
            );
            eprintln!(
                "{test}: no Redis (set BOXOFFICE_TEST_REDIS); tests of my page on Redis are skipped"
            );
            None
        }
    }
}

/// `postgres://user@host:port[/db][?…]` without the database part.
fn server_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, _)) => format!("{scheme}://{authority}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The services a deployment runs, in start order.
pub const SERVICES: [&str; 8] = [
    "catalog",
    "payment",
    "reservation",
    "wallet",
    "notification",
    "mypage",
    "dashboard",
    "gateway",
];

/// Services with a database of their own (the gateway's is `identity`).
const DATABASES: [&str; 8] = [
    "catalog",
    "payment",
    "reservation",
    "wallet",
    "notification",
    "mypage",
    "dashboard",
    "identity",
];

pub struct Deployment {
    pub servers: Servers,
    /// Prefix of topics, groups and databases.
    pub namespace: String,
    pub dir: tempfile::TempDir,
    /// Port of each service (replicas get their own ports).
    ports: BTreeMap<String, u16>,
    /// The instances each service's URL setting lists (`catalog` →
    /// `catalog`, `catalog-2`): callers balance over them.
    replicas: BTreeMap<String, Vec<String>>,
    /// The service each instance runs.
    service_of: BTreeMap<String, String>,
    /// Running instances by name (`notification`, `notification-2`, …).
    running: BTreeMap<String, Child>,
    /// How many times each instance was started (log files are per start).
    starts: BTreeMap<String, u32>,
    /// Settings every instance started from now on gets (`BOXOFFICE_…`).
    pub extra_env: BTreeMap<String, String>,
    pub gateway: Gateway,
    _turn: MutexGuard<'static, ()>,
}

impl Deployment {
    /// Starts every service and waits until each is ready.
    pub async fn start(servers: Servers) -> Deployment {
        Deployment::start_with(servers, BTreeMap::new()).await
    }

    /// Starts every service with extra settings (`BOXOFFICE_…` variables).
    pub async fn start_with(servers: Servers, extra_env: BTreeMap<String, String>) -> Deployment {
        Deployment::start_replicated(servers, &[], extra_env).await
    }

    /// Starts every service, two replicas of each in `replicated` (the
    /// second called `<service>-2`), every URL setting listing both.
    pub async fn start_replicated(
        servers: Servers,
        replicated: &[&str],
        extra_env: BTreeMap<String, String>,
    ) -> Deployment {
        remember_failures();
        let turn = ONE_AT_A_TIME.lock().await;
        let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut ports = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        let mut service_of = BTreeMap::new();
        for service in SERVICES {
            let mut names = vec![service.to_owned()];
            if replicated.contains(&service) {
                names.push(format!("{service}-2"));
            }
            for name in &names {
                let port = free_port_besides(&ports);
                ports.insert(name.clone(), port);
                service_of.insert(name.clone(), service.to_owned());
            }
            replicas.insert(service.to_owned(), names);
        }
        let gateway = Gateway::new(format!("http://127.0.0.1:{}", ports["gateway"]));
        let mut deployment = Deployment {
            servers,
            namespace,
            dir: tempfile::tempdir().expect("a temp dir"),
            ports,
            replicas,
            service_of,
            running: BTreeMap::new(),
            starts: BTreeMap::new(),
            extra_env,
            gateway,
            _turn: turn,
        };
        deployment.start_all().await;
        deployment
    }

    /// Starts every instance (each service and its listed replicas) that
    /// is not running, and waits for all.
    pub async fn start_all(&mut self) {
        let instances = self.instances();
        for name in &instances {
            if !self.running.contains_key(name) {
                let service = self.service_of[name].clone();
                self.spawn(name, &service).await;
            }
        }
        for name in &instances {
            self.wait_ready(name).await;
        }
    }

    /// Every instance the URL settings list, in start order.
    pub fn instances(&self) -> Vec<String> {
        SERVICES
            .iter()
            .flat_map(|service| self.replicas[*service].clone())
            .collect()
    }

    /// Starts an instance `name` of `service` (a replica when the name is
    /// new) without waiting for it.
    pub async fn spawn(&mut self, name: &str, service: &str) {
        let port = match self.ports.get(name) {
            Some(port) => *port,
            None => {
                let port = free_port_besides(&self.ports);
                self.ports.insert(name.to_owned(), port);
                port
            }
        };
        self.service_of
            .entry(name.to_owned())
            .or_insert_with(|| service.to_owned());
        let start = {
            let count = self.starts.entry(name.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let log_path = self.log_path(name, start);
        let log = std::fs::File::create(&log_path).expect("a log file");
        // Every replica the service has, comma-separated.
        let url = |service: &str| {
            self.replicas[service]
                .iter()
                .map(|name| format!("http://127.0.0.1:{}", self.ports[name]))
                .collect::<Vec<_>>()
                .join(",")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .args(["serve", service, "--port", &port.to_string()])
            .env("BOXOFFICE_BUS", "kafka")
            .env("BOXOFFICE_KAFKA__BOOTSTRAP_SERVERS", &self.servers.kafka)
            .env("BOXOFFICE_KAFKA__NAMESPACE", &self.namespace)
            .env("BOXOFFICE_KAFKA__PARTITIONS", "4")
            .env(
                "BOXOFFICE_DATABASE_URL",
                format!("{}/{}_{{service}}", self.servers.postgres, self.namespace),
            )
            .env("BOXOFFICE_DATA_DIR", self.dir.path())
            .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "BOXOFFICE_JWT_SECRET",
                "distributed-test-signing-key-0123456789",
            )
            .env("BOXOFFICE_URLS__CATALOG", url("catalog"))
            .env("BOXOFFICE_URLS__RESERVATION", url("reservation"))
            .env("BOXOFFICE_URLS__NOTIFICATION", url("notification"))
            .env("BOXOFFICE_URLS__MYPAGE", url("mypage"))
            .env("BOXOFFICE_URLS__PAYMENT", url("payment"))
            .env("BOXOFFICE_URLS__WALLET", url("wallet"))
            .env("BOXOFFICE_URLS__DASHBOARD", url("dashboard"))
            // Half a dozen processes share two cores here; the production
            // 610 ms would time out calls that are merely queued.
            .env("BOXOFFICE_RESERVATION__PAYMENT__TIMEOUT_MS", "5000")
            .env("BOXOFFICE_WALLET__PAYMENT__TIMEOUT_MS", "5000")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("BOXOFFICE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the boxoffice binary starts");
        self.running.insert(name.to_owned(), child);
    }

    /// Where instance `name` answers, bypassing the gateway (its metrics).
    pub fn url_of(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[name])
    }

    /// Waits until instance `name` answers ready (bounded), or fails with its log.
    pub async fn wait_ready(&mut self, name: &str) {
        let url = format!("http://127.0.0.1:{}/health/ready", self.ports[name]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.gateway.http.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            let exited = self
                .running
                .get_mut(name)
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "{name} exited with {status} before it was ready:\n{}",
                    self.log_tail(name)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} not ready within 60 s:\n{}",
                self.log_tail(name)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no shutdown, no final commits.
    pub async fn kill(&mut self, name: &str) {
        let mut child = self.running.remove(name).expect("a running instance");
        child.kill().await.expect("kill -9");
    }

    /// `kill -9`, then a new process in its place, waited for until ready.
    pub async fn replace(&mut self, name: &str) {
        self.kill(name).await;
        let service = self.service_of[name].clone();
        self.spawn(name, &service).await;
        self.wait_ready(name).await;
    }

    /// SIGTERM, as Kubernetes stops a pod; waits for a clean exit.
    pub async fn stop(&mut self, name: &str) {
        let mut child = self.running.remove(name).expect("a running instance");
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "{name} stopped with {status}:\n{}",
                self.log_tail(name)
            ),
            _ => {
                let _ = child.kill().await;
                panic!("{name} did not stop within 30 s of SIGTERM");
            }
        }
    }

    /// SIGTERM, and what a balancer probing readiness sees meanwhile:
    /// whether `/health/ready` answered 503 "draining" before the instance
    /// exited (it must exit cleanly within 30 s).
    ///
    /// A probe goes out every 20 ms without waiting for the one before: a
    /// probe that reached the instance just before the signal may take
    /// longer than the whole drain window to answer "ready" (the gateway's
    /// readiness asks every service behind it), and waiting for it would
    /// miss the window on a busy machine.
    pub async fn stop_draining(&mut self, name: &str) -> bool {
        let url = format!("{}/health/ready", self.url_of(name));
        let mut child = self.running.remove(name).expect("a running instance");
        let pid = child.id().expect("a running instance has a pid");
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        let probe = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(500))
            .build()
            .expect("a client");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut probes = tokio::task::JoinSet::new();
        let mut drained = false;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(
                    status.success(),
                    "{name} stopped with {status}:\n{}",
                    self.log_tail(name)
                );
                while let Some(saw_draining) = probes.join_next().await {
                    drained |= saw_draining.unwrap_or(false);
                }
                return drained;
            }
            while let Some(saw_draining) = probes.try_join_next() {
                drained |= saw_draining.unwrap_or(false);
            }
            if !drained {
                let (probe, url) = (probe.clone(), url.clone());
                probes.spawn(async move {
                    match probe.get(&url).send().await {
                        Ok(answer) => {
                            answer.status() == 503
                                && answer.text().await.unwrap_or_default().contains("draining")
                        }
                        Err(_) => false,
                    }
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                panic!("{name} did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops instance `name` with SIGTERM, starts it again and waits until
    /// it is ready; whether it said "draining" on the way out.
    pub async fn restart(&mut self, name: &str) -> bool {
        let drained = self.stop_draining(name).await;
        let service = self.service_of[name].clone();
        self.spawn(name, &service).await;
        self.wait_ready(name).await;
        drained
    }

    /// SIGSTOP: the process hangs, its sockets stay open.
    pub async fn freeze(&mut self, name: &str) {
        let pid = self.running[name].id().expect("a running instance");
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success());
    }

    /// Stops every instance gracefully, gateway first.
    pub async fn stop_all(&mut self) {
        let mut names: Vec<String> = self.running.keys().cloned().collect();
        names.sort_by_key(|name| !name.starts_with("gateway"));
        for name in names {
            self.stop(&name).await;
        }
    }

    fn log_path(&self, name: &str, start: u32) -> PathBuf {
        self.dir.path().join(format!("{name}.{start}.log"))
    }

    /// Every JSON log line instance `name` wrote, over all its starts.
    pub fn log_lines(&self, name: &str) -> Vec<Value> {
        let starts = self.starts.get(name).copied().unwrap_or(0);
        (1..=starts)
            .flat_map(|start| {
                std::fs::read_to_string(self.log_path(name, start))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The reservation ids of the messages instance `name` sent, one per send.
    pub fn sent_by(&self, name: &str) -> Vec<String> {
        self.log_lines(name)
            .into_iter()
            .filter(|line| line["target"] == "boxoffice::notification")
            .filter_map(|line| line["fields"]["reservation"].as_str().map(str::to_owned))
            .collect()
    }

    fn log_tail(&self, name: &str) -> String {
        let starts = self.starts.get(name).copied().unwrap_or(1);
        let text = std::fs::read_to_string(self.log_path(name, starts)).unwrap_or_default();
        // Without backtrace frames: a process that failed to start prints
        // its error first and a long backtrace after it.
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                let frame = line
                    .split_once(": ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                !frame && !line.starts_with("at ")
            })
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Restarts PostgreSQL with the configured command, if there is one.
    pub async fn restart_postgres(&self) -> bool {
        let Some(command) = &self.servers.restart_postgres else {
            eprintln!("BOXOFFICE_TEST_POSTGRES_RESTART is not set: PostgreSQL keeps running");
            return false;
        };
        let status = Command::new("sh")
            .args(["-c", command])
            .status()
            .await
            .expect("the restart command runs");
        assert!(status.success(), "restarting PostgreSQL failed: {status}");
        // Until it accepts connections again.
        let url = format!("{}/postgres", self.servers.postgres);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sqlx::PgConnection::connect(&url).await.is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not come back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    /// Runs one of the configured shell commands; `false` when it is not set.
    async fn run_configured(&self, command: Option<&String>, what: &str) -> bool {
        let Some(command) = command else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must provide a command to {what} PostgreSQL"
            );
            eprintln!("no command to {what} PostgreSQL is set: skipping that step");
            return false;
        };
        let status = Command::new("sh")
            .args(["-c", command])
            .status()
            .await
            .expect("the command runs");
        assert!(status.success(), "{what} PostgreSQL failed: {status}");
        true
    }

    /// Stops PostgreSQL (every service loses its database).
    pub async fn stop_postgres(&self) -> bool {
        self.run_configured(self.servers.stop_postgres.as_ref(), "stop")
            .await
    }

    /// Starts PostgreSQL again and waits until it accepts connections.
    pub async fn start_postgres(&self) {
        self.run_configured(self.servers.start_postgres.as_ref(), "start")
            .await;
        let url = format!("{}/postgres", self.servers.postgres);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sqlx::PgConnection::connect(&url).await.is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not come back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A count from one service's database (`SELECT COUNT(*) FROM …`).
    pub async fn count(&self, database: &str, from: &str) -> i64 {
        let url = format!("{}/{}_{database}", self.servers.postgres, self.namespace);
        let mut connection = sqlx::PgConnection::connect(&url)
            .await
            .expect("the service's database");
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {from}"))
            .fetch_one(&mut connection)
            .await
            .expect("a count")
    }

    /// Dead letters in every service's database.
    pub async fn dead_letters(&self) -> BTreeMap<&'static str, i64> {
        let mut found = BTreeMap::new();
        for service in DATABASES.into_iter().filter(|db| *db != "identity") {
            found.insert(service, self.count(service, "dead_letters").await);
        }
        found
    }

    /// Stops everything and drops the deployment's databases.
    pub async fn tear_down(mut self) {
        self.stop_all().await;
        let url = format!("{}/postgres", self.servers.postgres);
        if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
            for database in DATABASES {
                let sql = format!(
                    "DROP DATABASE IF EXISTS \"{}_{database}\" WITH (FORCE)",
                    self.namespace
                );
                let _ = sqlx::query(&sql).execute(&mut admin).await;
            }
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in self.starts.keys() {
                eprintln!("---- last lines of {name} ----\n{}", self.log_tail(name));
            }
            // The logs bury the failure; say it again after them, where a
            // reader of the output's tail (CI's excerpt) finds it.
            if let Some(failure) = LAST_FAILURE.lock().ok().and_then(|last| last.clone()) {
                eprintln!("---- the failure, again ----\n{failure}");
            }
        }
    }
}

/// The message and place of the latest panic in this test binary.
static LAST_FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Keeps each panic's message in [`LAST_FAILURE`] (and prints it as
/// before), once per binary.
fn remember_failures() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut last) = LAST_FAILURE.lock() {
                *last = Some(info.to_string());
            }
            report(info);
        }));
    });
}

/// A port nothing listens on now and no instance of the deployment was
/// given: the kernel may hand the same free port out twice in a row, and
/// two instances told one port leave the second unable to listen while the
/// test talks to the first.
fn free_port_besides(taken: &BTreeMap<String, u16>) -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        if !taken.values().any(|given| *given == port) {
            return port;
        }
    }
}

//! Booking load against a boxoffice platform, through the gateway only.
//!
//! It starts `boxoffice up` (release build) on a temporary data dir, signs
//! up one customer per client, registers a movie with a large quota, and
//! lets every client book one ticket at a time for the given duration.
//! Meanwhile a separate probe customer books one ticket at a time and
//! watches each booking until it is confirmed and until it shows on its my
//! page, so those latencies are measured under the load. At the end it
//! waits for the saga to settle, audits the inventory (sold + available =
//! capacity, sold = accepted) and reads the platform's peak RSS.
//!
//! With `--distributed` it starts one `boxoffice serve` process per service
//! instead, on Kafka and PostgreSQL (`--kafka`, `--postgres`, or the
//! `BOXOFFICE_TEST_KAFKA` / `BOXOFFICE_TEST_POSTGRES` variables the tests
//! use), and reports every process's memory.
//!
//! With `--rate N` the load is an open loop instead: bookings are due at
//! N a second in all, whatever the answers' pace (the clients are how many
//! may be waiting for an answer at once), and each one's accept latency
//! counts from when it was due, so a platform that falls behind shows it
//! in its latencies rather than by being sent less. The closed loop (the
//! default) finds the highest rate; the open loop holds a rate and shows
//! whether the saga keeps up with it.
//!
//! In both modes it also reads the propagation lag of the my-page
//! projection (from the producer's commit to the projection's commit) from
//! the `boxoffice_event_lag_seconds` histogram the services export, and the
//! CPU time the platform spent per 1,000 bookings (card payment included).
//!
//! Other scenarios (`--scenario`):
//! - `seat-rush`: `--requests` bookings (10,000) from `--clients` customers
//!   on a 100-seat showing; exactly 100 must sell. Prints every answer's
//!   latency, the time until sold out, and the audit.
//! - `quota-rush`: the same rush on a movie sold by quota, 100 tickets.
//! - `catch-up`: distributed, the my-page process is down while clients
//!   book for `--seconds`; then it is started again and catches up. In one
//!   process (`up`), the platform books for `--seconds` and stops, my page
//!   is rebuilt from the log (`boxoffice rebuild mypage`) and the platform
//!   started again, so my page works off every event of the load. Prints
//!   the events it had missed, the rate they were produced at and the rate
//!   it worked them off at (target: ten times faster).
//! - `breaker`: clients book while the payment provider is made slow (2 s
//!   for 20 s) and then healthy again; prints how many requests waited
//!   past the payment timeout once the circuit breaker had opened, the
//!   fallback's latency, and how long the breaker took to close.
//!
//! - `points-rental`: riders buy points by card and rent bikes with them for
//!   `--seconds`, each rental watched until confirmed (or refused: the bike
//!   is out) and returned. Prints rentals per second, answer and
//!   confirmation latencies, and audits every wallet (bought − 1,000 per
//!   rental, never negative) and every bike (free again at the end).
//!
//! - `hold-expiry` (with `--distributed`): customers book every seat of a
//!   500-seat musical with points while the wallet process is down, so
//!   catalog holds each seat and nothing pays for it; at the deadline
//!   (`--deadline-secs`, 5) reservation expires them all while other
//!   customers keep booking tickets by card. Prints holds expired per
//!   second, checks every seat is free again, then restarts the wallet and
//!   audits that every wallet is whole (spent on replay, refunded).
//!
//! ```sh
//! cargo build --release -p boxoffice -p bench
//! ./target/release/bench --clients 64 --seconds 20
//! ./target/release/bench --clients 64 --seconds 20 --distributed \
//!     --kafka 127.0.0.1:9092 --postgres postgres://postgres@127.0.0.1:5432
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Bookings of one ticket from a large quota, for `--seconds`.
    Quota,
    /// `--requests` bookings racing for the 100 seats of one showing.
    SeatRush,
    /// `--requests` bookings racing for the 100 tickets of one quota.
    QuotaRush,
    /// A consumer down while bookings flow, then catching up.
    CatchUp,
    /// Payment slow for 20 s under load: the circuit breaker at work.
    Breaker,
    /// Bikes rented with points and returned, for `--seconds`.
    PointsRental,
    /// Seats held for bookings nobody pays, expired at their deadline.
    HoldExpiry,
}

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Quota)]
    scenario: Scenario,
    /// How long a booking may stay pending (the hold-expiry scenario sets 5).
    #[arg(long)]
    deadline_secs: Option<u64>,
    /// Booking requests in the seat rush.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent booking clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long the clients book.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Bookings due per second in all (open loop, the quota scenario);
    /// without it each client books again as soon as it is answered
    /// (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// The boxoffice binary to start.
    #[arg(long, default_value = "target/release/boxoffice")]
    binary: PathBuf,
    /// Port for the gateway (services take the six ports below it).
    #[arg(long, default_value_t = 18188)]
    port: u16,
    /// One process per service on Kafka and PostgreSQL.
    #[arg(long)]
    distributed: bool,
    /// Kafka bootstrap servers (distributed).
    #[arg(long, env = "BOXOFFICE_TEST_KAFKA")]
    kafka: Option<String>,
    /// A PostgreSQL server and a role that may create databases (distributed).
    #[arg(long, env = "BOXOFFICE_TEST_POSTGRES")]
    postgres: Option<String>,
    /// Also write the results, with the targets they are held against, as
    /// JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What a run measured, by name, for `--json`.
#[derive(Default)]
struct Results(serde_json::Map<String, Value>);

impl Results {
    fn set(&mut self, name: &str, value: impl Into<Value>) {
        self.0.insert(name.to_owned(), value.into());
    }

    /// Prints a measure against its target and records both.
    fn against(&mut self, name: &str, label: &str, value: f64, target: Target) {
        let met = target.met_by(value);
        let (sign, bound) = match target {
            Target::AtLeast(bound) => ("≥", bound),
            Target::AtMost(bound) => ("≤", bound),
        };
        let verdict = if met {
            "met".to_owned()
        } else {
            format!("missed by a factor of {:.1}", target.factor(value))
        };
        println!("  {label:<34} {value:>10.2}   target {sign} {bound}: {verdict}");
        self.0.insert(
            name.to_owned(),
            json!({"value": value, "target": format!("{sign} {bound}"), "met": met}),
        );
    }

    fn write(self, path: Option<&std::path::Path>, args: &Args, mode: &str) -> anyhow::Result<()> {
        let Some(path) = path else { return Ok(()) };
        let document = json!({
            "scenario": clap::ValueEnum::to_possible_value(&args.scenario).map(|v| v.get_name().to_owned()),
            "mode": mode,
            "clients": args.clients,
            "seconds": args.seconds,
            "requests": args.requests,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "results": Value::Object(self.0),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// A goal a measure is held against (printed, never asserted).
#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtLeast(bound) => value >= bound,
            Target::AtMost(bound) => value <= bound,
        }
    }

    /// How many times better the value would have to be.
    fn factor(self, value: f64) -> f64 {
        match self {
            Target::AtLeast(bound) => bound / value.max(f64::EPSILON),
            Target::AtMost(bound) => value / bound,
        }
    }
}

/// The processes under test, by name.
struct Deployment {
    processes: Vec<Process>,
    /// PostgreSQL server and database prefix to drop afterwards (distributed).
    databases: Option<(String, String)>,
    /// Each consumer group and where its metrics are.
    consumers: Vec<(&'static str, String)>,
    mode: &'static str,
}

impl Deployment {
    fn start(args: &Args, data: &std::path::Path) -> anyhow::Result<Deployment> {
        let deadline = args
            .deadline_secs
            .or((args.scenario == Scenario::HoldExpiry).then_some(5))
            .map(|secs| {
                (
                    "BOXOFFICE_RESERVATION__DEADLINE_SECS".to_owned(),
                    secs.to_string(),
                )
            });
        let spawn = |name: &'static str, command_args: Vec<String>, env: &[(String, String)]| {
            let mut env = env.to_vec();
            env.extend(deadline.clone());
            spawn_process(&args.binary, data, name, command_args, &env)
        };
        if !args.distributed {
            let up = vec!["up".into(), "--port".into(), args.port.to_string()];
            return Ok(Deployment {
                processes: vec![spawn("boxoffice up", up, &[])?],
                consumers: CONSUMERS
                    .iter()
                    .map(|(group, _)| (*group, format!("http://127.0.0.1:{}/metrics", args.port)))
                    .collect(),
                mode: "embedded mode, one process",
                databases: None,
            });
        }
        let kafka = args
            .kafka
            .clone()
            .context("--kafka (or BOXOFFICE_TEST_KAFKA)")?;
        let postgres = args
            .postgres
            .clone()
            .context("--postgres (or BOXOFFICE_TEST_POSTGRES)")?;
        let namespace = format!("bench{}", std::process::id());
        let services = SERVICES;
        let port_of = |i: usize| args.port - services.len() as u16 + i as u16;
        let mut env = vec![
            ("BOXOFFICE_BUS".to_owned(), "kafka".to_owned()),
            ("BOXOFFICE_KAFKA__BOOTSTRAP_SERVERS".to_owned(), kafka),
            ("BOXOFFICE_KAFKA__NAMESPACE".to_owned(), namespace.clone()),
            (
                "BOXOFFICE_DATABASE_URL".to_owned(),
                format!("{}/{namespace}_{{service}}", postgres.trim_end_matches('/')),
            ),
            (
                "BOXOFFICE_JWT_SECRET".to_owned(),
                "benchmark-token-signing-secret-0123456789".to_owned(),
            ),
        ];
        for (i, service) in services.iter().enumerate() {
            env.push((
                format!("BOXOFFICE_URLS__{}", service.to_uppercase()),
                format!("http://127.0.0.1:{}", port_of(i)),
            ));
        }
        let mut processes = Vec::new();
        for (i, service) in services.iter().enumerate() {
            let serve = vec![
                "serve".into(),
                (*service).into(),
                "--port".into(),
                port_of(i).to_string(),
            ];
            processes.push(spawn(service, serve, &env)?);
        }
        let serve = vec![
            "serve".into(),
            "gateway".into(),
            "--port".into(),
            args.port.to_string(),
        ];
        processes.push(spawn("gateway", serve, &env)?);
        Ok(Deployment {
            processes,
            consumers: CONSUMERS
                .iter()
                .map(|(group, service)| {
                    let i = services.iter().position(|s| s == service).unwrap_or(0);
                    (*group, format!("http://127.0.0.1:{}/metrics", port_of(i)))
                })
                .collect(),
            mode: "distributed mode, a process per service on Kafka and PostgreSQL",
            databases: Some((postgres.trim_end_matches('/').to_owned(), namespace)),
        })
    }

    fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .filter_map(|process| process.child.id().map(|pid| (process.name, pid)))
            .collect()
    }

    async fn stop(mut self) {
        for process in &mut self.processes {
            process.kill().await;
        }
        if let Some((server, namespace)) = &self.databases {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await
            {
                for name in SERVICES.iter().chain(&["identity"]) {
                    let drop =
                        format!("DROP DATABASE IF EXISTS \"{namespace}_{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                }
            }
        }
    }
}

/// Starts one platform process with the bench's settings.
fn spawn_process(
    binary: &std::path::Path,
    data: &std::path::Path,
    name: &'static str,
    command_args: Vec<String>,
    env: &[(String, String)],
) -> anyhow::Result<Process> {
    let child = tokio::process::Command::new(binary)
        .args(&command_args)
        .envs(env.iter().cloned())
        .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        // Each client books far faster than a person: keep the
        // per-user limit (and its cost) on the path, but out of reach.
        .env("BOXOFFICE_RATE_LIMITS__WRITES_PER_SECOND", "1000000")
        .env("BOXOFFICE_RATE_LIMITS__WRITES_BURST", "1000000")
        // Every customer signs in from this one address, where a rush's
        // customers would each have their own.
        .env("BOXOFFICE_RATE_LIMITS__AUTH_PER_SECOND", "1000000")
        .env("BOXOFFICE_RATE_LIMITS__AUTH_BURST", "1000000")
        .env("BOXOFFICE_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with cargo build --release)",
                binary.display()
            )
        })?;
    Ok(Process {
        name,
        child,
        command_args,
        env: env.to_vec(),
        binary: binary.to_owned(),
        data: data.to_owned(),
    })
}

/// A running platform process and how to start it again.
struct Process {
    name: &'static str,
    child: tokio::process::Child,
    command_args: Vec<String>,
    env: Vec<(String, String)>,
    binary: PathBuf,
    data: PathBuf,
}

impl Process {
    /// Kills it hard, as a crash would.
    async fn kill(&mut self) {
        self.child.kill().await.ok();
    }

    /// Stops it as an operator would (SIGTERM, which it answers by
    /// draining and closing its stores), killing it if it has not stopped
    /// within 30 s.
    async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        self.kill().await;
    }

    /// Empties my page's view and rewinds its consumer group, as an
    /// operator does with the process stopped.
    async fn rebuild_mypage(&self) -> anyhow::Result<()> {
        let status = tokio::process::Command::new(&self.binary)
            .args(["rebuild", "mypage"])
            .envs(self.env.iter().cloned())
            .env("BOXOFFICE_DATA_DIR", &self.data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .await
            .context("running boxoffice rebuild mypage")?;
        anyhow::ensure!(status.success(), "boxoffice rebuild mypage: {status}");
        Ok(())
    }

    /// Starts it again, as it was started.
    fn restart(&mut self) -> anyhow::Result<()> {
        let again = spawn_process(
            &self.binary,
            &self.data,
            self.name,
            self.command_args.clone(),
            &self.env,
        )?;
        *self = again;
        Ok(())
    }
}

const ADMIN_PASSWORD: &str = "bench-admin-password";
/// The services of a distributed deployment (the gateway besides).
const SERVICES: [&str; 7] = [
    "catalog",
    "reservation",
    "payment",
    "wallet",
    "notification",
    "mypage",
    "dashboard",
];
/// The consumer groups a card booking passes through, in saga order, and
/// the service each runs in (`wallet.bookings` acts only on bookings paid
/// with points: none in these runs).
const CONSUMERS: [(&str, &str); 7] = [
    ("catalog.inventory", "catalog"),
    ("reservation.saga", "reservation"),
    ("payment.settlement", "payment"),
    ("wallet.points", "wallet"),
    ("mypage.projection", "mypage"),
    ("dashboard.projection", "dashboard"),
    ("notification.sender", "notification"),
];
const CAPACITY: u64 = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(rate) = args.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate is bookings a second, more than none: {rate}"
        );
    }
    let data = std::env::temp_dir().join(format!("boxoffice-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut deployment = Deployment::start(&args, &data)?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let mut results = Results::default();
    let result = match args.scenario {
        Scenario::Quota => run(&args, &http, &base, &deployment, &mut results).await,
        Scenario::SeatRush => {
            rush(
                &args,
                &http,
                &base,
                &deployment,
                Rushed::Seats,
                &mut results,
            )
            .await
        }
        Scenario::QuotaRush => {
            rush(
                &args,
                &http,
                &base,
                &deployment,
                Rushed::Quota,
                &mut results,
            )
            .await
        }
        Scenario::CatchUp => catch_up(&args, &http, &base, &mut deployment, &mut results).await,
        Scenario::Breaker => breaker(&args, &http, &base, &deployment).await,
        Scenario::PointsRental => points_rental(&args, &http, &base, &deployment).await,
        Scenario::HoldExpiry => hold_expiry(&args, &http, &base, &mut deployment).await,
    };
    let mode = deployment.mode;
    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    results.write(args.json.as_deref(), &args, mode)?;
    result
}

async fn run(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &Deployment,
    results: &mut Results,
) -> anyhow::Result<()> {
    let pids = deployment.pids();
    let total_rss =
        |field: &str| -> Vec<u64> { pids.iter().map(|(_, pid)| rss_kib(*pid, field)).collect() };
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let movie = register(
        http,
        base,
        &admin,
        json!({
            "kind": "movie", "title": "Benchmark Night", "price": 10000, "tickets": CAPACITY
        }),
    )
    .await?;
    let mut tokens = customers(http, base, "bench", args.clients + 1).await?;
    let probe_token = tokens.pop().expect("one token per client plus the probe");
    let rss_idle = total_rss("VmRSS");
    let cpu_before = cpu_secs(&pids);

    println!(
        "boxoffice booking benchmark: {} clients for {} s, {}, {} cores",
        args.clients,
        args.seconds,
        deployment.mode,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    if let Some(rate) = args.rate {
        println!(
            "open loop: {rate} bookings due per second, at most {} waiting for an answer",
            args.clients
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let schedule = args.rate.map(|rate| {
        Arc::new(Schedule::new(
            started,
            rate,
            Duration::from_secs(args.seconds),
        ))
    });
    let mut clients = Vec::new();
    for token in tokens {
        let (http, base, movie, stop, schedule) = (
            http.clone(),
            base.to_owned(),
            movie.clone(),
            stop.clone(),
            schedule.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut accept = Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0u64;
            let mut first_error = None;
            while !stop.load(Ordering::Relaxed) {
                let t = match &schedule {
                    Some(schedule) => match schedule.next_due() {
                        Some(due) => {
                            tokio::time::sleep_until(due.into()).await;
                            due
                        }
                        None => break,
                    },
                    None => Instant::now(),
                };
                match book(&http, &base, &token, &movie).await {
                    Ok(_) => accept.record(t.elapsed().as_micros() as u64).ok(),
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                        None
                    }
                };
            }
            (accept, errors, first_error)
        }));
    }
    let probe = {
        let (http, base, movie, stop) =
            (http.clone(), base.to_owned(), movie.clone(), stop.clone());
        tokio::spawn(async move { probe(&http, &base, &probe_token, &movie, &stop).await })
    };
    let mut rss_peak_sampled = vec![0; pids.len()];
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (peak, now) in rss_peak_sampled.iter_mut().zip(total_rss("VmRSS")) {
            *peak = (*peak).max(now);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut accept = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    let mut first_error = None;
    for client in clients {
        let (h, e, first) = client.await?;
        accept.add(h)?;
        errors += e;
        first_error = first_error.or(first);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (confirm, mypage, probed) = probe.await??;

    // Let the saga settle, then audit the inventory.
    let accepted = accept.len() + probed;
    let settle_started = Instant::now();
    let available = loop {
        let listing = get(http, base, &format!("/listings/{movie}"), None).await?;
        let available = listing["capacity"]["available"]
            .as_u64()
            .context("available")?;
        if CAPACITY - available >= accepted || settle_started.elapsed() > Duration::from_secs(120) {
            break available;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Catalog having every booking says nothing of the read models and
    // the rest of the saga: the CPU counted and the settle time include
    // every group working off what it is behind by.
    let settled = until_consumers_idle(http, &deployment.consumers, settle_started).await;
    let sold = CAPACITY - available;
    let cpu = cpu_secs(&pids) - cpu_before;
    let rss_peak = total_rss("VmHWM");
    let mut lags = Vec::new();
    for (group, url) in &deployment.consumers {
        lags.push((*group, lag_quantiles(http, url, group).await));
    }

    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "accepted bookings      {accepted} in {elapsed:.1} s = {:.0}/s ({errors} errors)",
        accept.len() as f64 / elapsed
    );
    if let Some(error) = &first_error {
        // A refusal under load is an answer too, but it must be known.
        println!("first error            {error}");
    }
    println!(
        "accept latency         p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(&accept, 0.5),
        ms(&accept, 0.99),
        accept.max() as f64 / 1000.0
    );
    println!(
        "until confirmed        p50 {:.1} ms   p99 {:.1} ms   (probe, {} bookings under load)",
        ms(&confirm, 0.5),
        ms(&confirm, 0.99),
        confirm.len()
    );
    println!(
        "until on my page       p50 {:.1} ms   p99 {:.1} ms",
        ms(&mypage, 0.5),
        ms(&mypage, 0.99)
    );
    println!(
        "settled after load     {}",
        match settled {
            Some(settled) => format!("{:.1} s (every consumer group idle)", settled.as_secs_f64()),
            None => "not within 120 s: some consumer group was still handling events".to_owned(),
        }
    );
    println!(
        "platform CPU           {cpu:.1} s = {:.2} CPU-seconds per 1,000 bookings (card payment included)",
        cpu * 1000.0 / accepted.max(1) as f64
    );
    println!("event lag, producer commit -> consumer commit (from histogram buckets):");
    for (group, lag) in lags {
        match lag {
            Ok((p50, p99, count)) => println!(
                "  {group:<20} p50 {:.1} ms   p99 {:.1} ms   ({count} events)",
                p50 * 1000.0,
                p99 * 1000.0
            ),
            Err(error) => println!("  {group:<20} unavailable: {error:#}"),
        }
    }
    let mib = |kib: u64| kib / 1024;
    for (i, (name, _)) in pids.iter().enumerate() {
        println!(
            "RSS {name:<18} idle {} MiB, peak sampled {} MiB, high-water mark {} MiB",
            mib(rss_idle[i]),
            mib(rss_peak_sampled[i]),
            mib(rss_peak[i])
        );
    }
    if pids.len() > 1 {
        println!(
            "RSS all processes      idle {} MiB, peak sampled {} MiB, high-water marks {} MiB",
            mib(rss_idle.iter().sum()),
            mib(rss_peak_sampled.iter().sum()),
            mib(rss_peak.iter().sum())
        );
    }
    let ok = sold + available == CAPACITY && sold == accepted;
    println!("audit                  sold {sold} + available {available} = {} (capacity {CAPACITY}); accepted {accepted}: {}", sold + available, if ok { "OK" } else { "MISMATCH" });
    let per_1000 = cpu * 1000.0 / accepted.max(1) as f64;
    let peak_mib = rss_peak.iter().sum::<u64>() as f64 / 1024.0;
    println!("against the targets ({}):", deployment.mode);
    let rate = accept.len() as f64 / elapsed;
    let targets = if args.distributed {
        vec![
            (
                "confirmed_p99_ms",
                "until confirmed p99 (ms)",
                ms(&confirm, 0.99),
                Target::AtMost(300.0),
            ),
            (
                "cpu_seconds_per_1000",
                "CPU-seconds per 1,000 bookings",
                per_1000,
                Target::AtMost(0.7),
            ),
        ]
    } else {
        vec![
            (
                "accepted_per_second",
                "accepted bookings/s",
                rate,
                Target::AtLeast(10_000.0),
            ),
            (
                "accept_p99_ms",
                "accept p99 (ms)",
                ms(&accept, 0.99),
                Target::AtMost(20.0),
            ),
            (
                "confirmed_p99_ms",
                "until confirmed p99 (ms)",
                ms(&confirm, 0.99),
                Target::AtMost(100.0),
            ),
            (
                "mypage_p99_ms",
                "until on my page p99 (ms)",
                ms(&mypage, 0.99),
                Target::AtMost(100.0),
            ),
            (
                "peak_rss_mib",
                "peak RSS (MiB)",
                peak_mib,
                Target::AtMost(150.0),
            ),
            (
                "cpu_seconds_per_1000",
                "CPU-seconds per 1,000 bookings",
                per_1000,
                Target::AtMost(0.3),
            ),
        ]
    };
    for (name, label, value, target) in targets {
        results.against(name, label, value, target);
    }
    results.set("accepted", accepted);
    results.set("accepted_per_second_measured", rate);
    if let Some(offered) = args.rate {
        results.set("offered_per_second", offered);
    }
    results.set("errors", errors);
    results.set("accept_p50_ms", ms(&accept, 0.5));
    results.set("confirmed_p50_ms", ms(&confirm, 0.5));
    results.set("mypage_p50_ms", ms(&mypage, 0.5));
    results.set("rss_idle_mib", rss_idle.iter().sum::<u64>() as f64 / 1024.0);
    results.set("audit_ok", ok);
    if !ok {
        bail!("inventory audit failed");
    }
    Ok(())
}

/// When each booking of an open loop is due: the n-th at `started + n /
/// rate`, handed to whichever client asks next, none after the run.
struct Schedule {
    started: Instant,
    interval: Duration,
    until: Duration,
    next: AtomicU64,
}

impl Schedule {
    fn new(started: Instant, rate: f64, until: Duration) -> Schedule {
        Schedule {
            started,
            interval: Duration::from_secs_f64(1.0 / rate),
            until,
            next: AtomicU64::new(0),
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let offset = self.interval.checked_mul(u32::try_from(n).ok()?)?;
        (offset < self.until).then(|| self.started + offset)
    }
}

/// Books one ticket at a time and watches each booking to the end.
async fn probe(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    movie: &str,
    stop: &AtomicBool,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, u64)> {
    let mut confirm = Histogram::<u64>::new(3)?;
    let mut mypage = Histogram::<u64>::new(3)?;
    let mut booked = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let id = book(http, base, token, movie).await?;
        booked += 1;
        loop {
            let r = get(http, base, &format!("/reservations/{id}"), Some(token)).await?;
            if r["status"] == "confirmed" {
                confirm.record(t.elapsed().as_micros() as u64)?;
                break;
            }
            anyhow::ensure!(
                r["status"] == "pending",
                "probe booking ended {}",
                r["status"]
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        loop {
            let rows = get(http, base, "/mypage/reservations", Some(token)).await?;
            let shown = rows.as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["reservationId"] == id.as_str() && r["status"] == "confirmed")
            });
            if shown {
                mypage.record(t.elapsed().as_micros() as u64)?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((confirm, mypage, booked))
}

/// Signs up `count` customers named `{prefix}{n}`; their tokens.
async fn customers(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let name = format!("{prefix}{n}");
        post(
            http,
            base,
            "/auth/signup",
            None,
            json!({"username": name, "password": "bench-password"}),
        )
        .await?;
        tokens.push(token(http, base, &name, "bench-password").await?);
    }
    Ok(tokens)
}

/// Registers a listing as the admin; its id.
async fn register(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    listing: Value,
) -> anyhow::Result<String> {
    let registered = post(http, base, "/listings", Some(admin), listing).await?;
    Ok(registered["id"].as_str().context("listing id")?.to_owned())
}

/// Customers who each bought `points` by card; their tokens.
async fn customers_with_points(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    count: usize,
    points: u64,
) -> anyhow::Result<Vec<String>> {
    let tokens = customers(http, base, prefix, count).await?;
    for token in &tokens {
        let purchase = json!({"amount": points});
        post(http, base, "/points/purchases", Some(token), purchase).await?;
    }
    Ok(tokens)
}

/// One booking's answer: when it was sent (since the start), how long it
/// took, its status and problem detail.
#[derive(Clone)]
struct Answered {
    sent: Duration,
    took: Duration,
    status: u16,
    detail: String,
    /// The reservation's id, when one was created.
    id: String,
}

async fn send_booking(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
    started: Instant,
) -> Answered {
    let sent = started.elapsed();
    let t = Instant::now();
    let response = http
        .post(format!("{base}/reservations"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await;
    let (status, detail, id) = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
            (status, text("detail"), text("id"))
        }
        Err(error) => (0, error.to_string(), String::new()),
    };
    Answered {
        sent,
        took: t.elapsed(),
        status,
        detail,
        id,
    }
}

fn histogram_of<'a>(answers: impl Iterator<Item = &'a Answered>) -> anyhow::Result<Histogram<u64>> {
    let mut histogram = Histogram::<u64>::new(3)?;
    for answer in answers {
        histogram.record(answer.took.as_micros() as u64)?;
    }
    Ok(histogram)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// What a rush is for: the seats of a showing, or the tickets of a quota.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rushed {
    Seats,
    Quota,
}

/// Seats in the rushed showing, tickets in the rushed quota.
const RUSH_SIZE: u64 = 100;

/// How many of `listing`'s seats or tickets are sold (or held, while its
/// bookings settle).
async fn sold_of(
    http: &reqwest::Client,
    base: &str,
    listing: &str,
    rushed: Rushed,
) -> anyhow::Result<u64> {
    Ok(match rushed {
        Rushed::Seats => {
            let seats = get(http, base, &format!("/listings/{listing}/seats"), None).await?;
            seats
                .as_array()
                .map(|seats| seats.iter().filter(|s| s["status"] == "sold").count())
                .unwrap_or(0) as u64
        }
        Rushed::Quota => {
            let listing = get(http, base, &format!("/listings/{listing}"), None).await?;
            let available = listing["capacity"]["available"]
                .as_u64()
                .context("available")?;
            RUSH_SIZE.saturating_sub(available)
        }
    })
}

/// 10,000 bookings from many customers for the 100 seats of one showing,
/// or for the 100 tickets of one quota: every request answered, exactly
/// 100 sold.
async fn rush(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &Deployment,
    rushed: Rushed,
    results: &mut Results,
) -> anyhow::Result<()> {
    const ROWS: u64 = 10;
    const PER_ROW: u64 = RUSH_SIZE / ROWS;
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let showing = match rushed {
        Rushed::Seats => {
            let screen = post(
                http,
                base,
                "/screens",
                Some(&admin),
                json!({"name": "Bench Hall", "rows": ROWS, "seatsPerRow": PER_ROW}),
            )
            .await?;
            let movie = json!({"kind": "movie", "title": "Seat Rush", "price": 10000,
                               "seating": {"screenId": screen["id"]}});
            register(http, base, &admin, movie).await?
        }
        Rushed::Quota => {
            let movie = json!({"kind": "movie", "title": "Quota Rush", "price": 10000,
                               "tickets": RUSH_SIZE});
            register(http, base, &admin, movie).await?
        }
    };
    let tokens = customers(http, base, "rush", args.clients).await?;
    let what = match rushed {
        Rushed::Seats => "seat",
        Rushed::Quota => "ticket",
    };
    println!(
        "boxoffice {what} rush: {} bookings from {} clients for {RUSH_SIZE} {what}s, {}",
        args.requests, args.clients, deployment.mode
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let sold_out = {
        let (http, base, showing) = (http.clone(), base.to_owned(), showing.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(sold) = sold_of(&http, &base, &showing, rushed).await {
                    if sold >= RUSH_SIZE {
                        return started.elapsed();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut clients = Vec::new();
    for token in tokens {
        let (http, base, showing, next) =
            (http.clone(), base.to_owned(), showing.clone(), next.clone());
        let requests = args.requests;
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return answers;
                }
                let body = match rushed {
                    Rushed::Seats => {
                        // Spread the demand over every seat, many clients per seat.
                        let seat = (i as u64).wrapping_mul(7919) % (ROWS * PER_ROW);
                        let label = format!(
                            "{}-{}",
                            char::from(b'A' + (seat / PER_ROW) as u8),
                            seat % PER_ROW + 1
                        );
                        json!({"listingId": showing, "seats": [label]})
                    }
                    Rushed::Quota => json!({"listingId": showing, "quantity": 1}),
                };
                answers.push(send_booking(&http, &base, &token, &body, started).await);
            }
        }));
    }
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await?);
    }
    let sent_in = started.elapsed();
    let sold_out = tokio::time::timeout(Duration::from_secs(120), sold_out)
        .await
        .context("the showing did not sell out within 120 s")??;
    let all = histogram_of(answers.iter())?;
    let rush = Rush {
        answers: &answers,
        all: &all,
        sent_in,
        sold_out,
        rushed,
    };
    rush_report(&rush, http, base, &admin, &showing, results).await
}

/// What a rush's clients saw.
struct Rush<'a> {
    answers: &'a [Answered],
    all: &'a Histogram<u64>,
    sent_in: Duration,
    sold_out: Duration,
    rushed: Rushed,
}

async fn rush_report(
    rush: &Rush<'_>,
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    showing: &str,
    results: &mut Results,
) -> anyhow::Result<()> {
    let Rush {
        answers,
        all,
        sent_in,
        sold_out,
        rushed,
    } = *rush;
    let count = |f: &dyn Fn(u16) -> bool| answers.iter().filter(|a| f(a.status)).count();
    let accepted = count(&|s| s == 202);
    // Wait for every accepted booking to leave `pending`.
    let settle_started = Instant::now();
    let (confirmed, rejected) = loop {
        let reservations = list_all(http, base, "/reservations", admin).await?;
        let of_showing: Vec<&Value> = reservations
            .iter()
            .filter(|r| r["listingId"] == showing)
            .collect();
        let with = |status: &str| of_showing.iter().filter(|r| r["status"] == status).count();
        if with("pending") == 0 || settle_started.elapsed() > Duration::from_secs(120) {
            break (with("confirmed"), with("rejected"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sold = sold_of(http, base, showing, rushed).await?;
    println!(
        "requests               {} sent in {:.1} s; 202: {accepted}, 4xx: {}, 5xx: {}, unanswered: {}",
        answers.len(),
        sent_in.as_secs_f64(),
        count(&|s| (400..500).contains(&s)),
        count(&|s| s >= 500),
        count(&|s| s == 0)
    );
    println!(
        "answer time            p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(all, 0.5),
        ms(all, 0.99),
        all.max() as f64 / 1000.0
    );
    println!("sold out after         {:.2} s", sold_out.as_secs_f64());
    let (what, refused) = match rushed {
        Rushed::Seats => ("seats", "seat taken"),
        Rushed::Quota => ("tickets", "sold out"),
    };
    println!("outcome                {confirmed} confirmed, {rejected} rejected ({refused})");
    let unanswered = count(&|s| s == 0 || s >= 500);
    let ok = sold == RUSH_SIZE
        && confirmed as u64 == RUSH_SIZE
        && confirmed + rejected == accepted
        && unanswered == 0;
    println!(
        "audit                  {sold} {what} sold, {confirmed} bookings confirmed, every request answered, every accepted booking settled: {}",
        if ok { "OK" } else { "MISMATCH" }
    );
    println!("against the targets:");
    results.against(
        "answer_p99_ms",
        "answer p99 (ms)",
        ms(all, 0.99),
        Target::AtMost(1000.0),
    );
    results.set("answer_p50_ms", ms(all, 0.5));
    results.set("sold_out_after_s", sold_out.as_secs_f64());
    results.set(
        "requests_per_second",
        answers.len() as f64 / sent_in.as_secs_f64(),
    );
    results.set("accepted", accepted);
    results.set("confirmed", confirmed);
    results.set("unanswered_or_5xx", unanswered);
    results.set("audit_ok", ok);
    if !ok {
        bail!("{what} audit failed");
    }
    Ok(())
}

/// Points each rider buys before renting (the most one purchase may be).
const RIDER_POINTS: u64 = 1_000_000;
/// What one rental costs.
const RENTAL_POINTS: u64 = 1_000;

/// What one rider did: rentals confirmed, refused, and how long each
/// rental took from request to its outcome.
#[derive(Default)]
struct Rides {
    answers: Vec<Answered>,
    confirmed: u64,
    refused: u64,
    outcome_times: Vec<Duration>,
}

/// Riders rent bikes with points and bring them back, for `--seconds`.
async fn points_rental(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &Deployment,
) -> anyhow::Result<()> {
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    // Four bikes a rider: mostly free, sometimes taken by another.
    let mut bikes = Vec::new();
    for n in 0..args.clients * 4 {
        let color = ["red", "green", "blue"][n % 3];
        bikes.push(register(http, base, &admin, json!({"kind": "bike", "color": color})).await?);
    }
    let riders = customers_with_points(http, base, "rider", args.clients, RIDER_POINTS).await?;
    println!(
        "boxoffice points rental: {} riders, {} bikes, {} s, {}",
        args.clients,
        bikes.len(),
        args.seconds,
        deployment.mode
    );
    let bikes = Arc::new(bikes);
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut clients = Vec::new();
    for (index, rider) in riders.iter().cloned().enumerate() {
        let (http, base, bikes) = (http.clone(), base.to_owned(), bikes.clone());
        clients.push(tokio::spawn(async move {
            ride(&http, &base, &rider, &bikes, index, started, until).await
        }));
    }
    let mut rides = Vec::new();
    for client in clients {
        rides.push(client.await??);
    }
    let elapsed = started.elapsed();
    let answers: Vec<Answered> = rides.iter().flat_map(|r| r.answers.clone()).collect();
    let confirmed: u64 = rides.iter().map(|r| r.confirmed).sum();
    let refused: u64 = rides.iter().map(|r| r.refused).sum();
    let mut outcomes = Histogram::<u64>::new(3)?;
    for took in rides.iter().flat_map(|r| &r.outcome_times) {
        outcomes.record(took.as_micros() as u64)?;
    }
    let all = histogram_of(answers.iter())?;
    println!(
        "rentals                {confirmed} confirmed and returned, {refused} refused (bike out), {:.0} rentals/s",
        confirmed as f64 / elapsed.as_secs_f64()
    );
    println!(
        "answer time            p50 {:.1} ms   p99 {:.1} ms   (202 Accepted)",
        ms(&all, 0.5),
        ms(&all, 0.99)
    );
    println!(
        "request to outcome     p50 {:.1} ms   p99 {:.1} ms   (points taken and bike held, or refused)",
        ms(&outcomes, 0.5),
        ms(&outcomes, 0.99)
    );
    // Every wallet: what was bought less 1,000 a rental had, once refusals
    // have been refunded; every bike free again.
    let settle_started = Instant::now();
    let wrong_wallets = loop {
        let mut wrong = 0;
        for (rider, rides) in riders.iter().zip(&rides) {
            let balance = get(http, base, "/points", Some(rider)).await?["balance"]
                .as_u64()
                .context("balance")?;
            wrong += usize::from(balance != RIDER_POINTS - RENTAL_POINTS * rides.confirmed);
        }
        if wrong == 0 || settle_started.elapsed() > Duration::from_secs(60) {
            break wrong;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let listings = get(http, base, "/listings?kind=bike&limit=1000", None).await?;
    let out = listings
        .as_array()
        .map(|bikes| {
            bikes
                .iter()
                .filter(|b| b["capacity"]["available"] != true)
                .count()
        })
        .unwrap_or(usize::MAX);
    let ok = wrong_wallets == 0 && out == 0;
    println!(
        "audit                  wallets off: {wrong_wallets}, bikes still out: {out}: {}",
        if ok { "OK" } else { "MISMATCH" }
    );
    if !ok {
        bail!("points rental audit failed");
    }
    Ok(())
}

/// Every seat of a musical held for a booking nobody pays (the wallet is
/// down), expired at the deadline under a background of card bookings.
async fn hold_expiry(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &mut Deployment,
) -> anyhow::Result<()> {
    const ROWS: u64 = 20;
    const PER_ROW: u64 = 25;
    const POINTS: u64 = 100_000;
    anyhow::ensure!(
        args.distributed,
        "hold-expiry stops the wallet process: run it with --distributed"
    );
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let musical = register(
        http,
        base,
        &admin,
        json!({"kind": "musical", "title": "Expiry", "price": 100,
               "seating": {"rows": ROWS, "seatsPerRow": PER_ROW}}),
    )
    .await?;
    let movie = register(
        http,
        base,
        &admin,
        json!({"kind": "movie", "title": "Background", "price": 100, "tickets": 1_000_000}),
    )
    .await?;
    let holders = customers_with_points(http, base, "holder", args.clients, POINTS).await?;
    let background = customers(http, base, "moviegoer", args.clients).await?;
    let wallet = deployment
        .processes
        .iter_mut()
        .find(|process| process.name == "wallet")
        .context("a wallet process")?;
    wallet.kill().await;
    println!(
        "boxoffice hold expiry: {} seats held for bookings paid with points while the wallet is down, {} clients, {}",
        ROWS * PER_ROW,
        args.clients,
        deployment.mode
    );

    // Book every seat, spread over the holders.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut clients = Vec::new();
    for holder in holders.clone() {
        let (http, base, musical, next) =
            (http.clone(), base.to_owned(), musical.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let seat = next.fetch_add(1, Ordering::Relaxed);
                if seat >= ROWS * PER_ROW {
                    return answers;
                }
                let label = format!(
                    "{}-{}",
                    char::from(b'A' + (seat / PER_ROW) as u8),
                    seat % PER_ROW + 1
                );
                let body =
                    json!({"listingId": musical, "seats": [label], "paymentMethod": "points"});
                answers.push(send_booking(&http, &base, &holder, &body, started).await);
            }
        }));
    }
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await?);
    }
    let accepted = answers.iter().filter(|a| a.status == 202).count();
    anyhow::ensure!(
        accepted as u64 == ROWS * PER_ROW,
        "every seat booking is accepted ({accepted})"
    );
    let seat_counts = |seats: &Value| {
        let of = |status: &str| {
            seats
                .as_array()
                .map(|seats| seats.iter().filter(|s| s["status"] == status).count())
                .unwrap_or(0)
        };
        (of("held"), of("available"))
    };
    // Held, all of them, waiting for points that do not come.
    let held_at = loop {
        let seats = get(http, base, &format!("/listings/{musical}/seats"), None).await?;
        if seat_counts(&seats).0 as u64 == ROWS * PER_ROW {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "seats never all held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Card bookings go on meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for goer in background {
        let (http, base, movie, stop) =
            (http.clone(), base.to_owned(), movie.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut booked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"listingId": movie, "quantity": 1});
                if send_booking(&http, &base, &goer, &body, started)
                    .await
                    .status
                    == 202
                {
                    booked += 1;
                }
            }
            booked
        }));
    }
    let deadline = started + Duration::from_secs(args.deadline_secs.unwrap_or(5));
    let (first_free, all_free) = {
        let mut first_free = None;
        loop {
            let seats = get(http, base, &format!("/listings/{musical}/seats"), None).await?;
            let (_, available) = seat_counts(&seats);
            if available > 0 && first_free.is_none() {
                first_free = Some(started.elapsed());
            }
            if available as u64 == ROWS * PER_ROW {
                break (first_free.unwrap_or_default(), started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "seats stuck: only {available} free after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    stop.store(true, Ordering::Relaxed);
    let mut background_bookings = 0;
    for client in load {
        background_bookings += client.await?;
    }
    let sweep = all_free
        .saturating_sub(first_free)
        .max(Duration::from_millis(1));
    println!(
        "holds                  {} held {:.1} s after the first booking; deadline {:.1} s after it",
        ROWS * PER_ROW,
        held_at.as_secs_f64(),
        deadline.duration_since(started).as_secs_f64()
    );
    println!(
        "expiry sweep           first seat free at {:.2} s, all {} free at {:.2} s: {:.0} holds expired/s",
        first_free.as_secs_f64(),
        ROWS * PER_ROW,
        all_free.as_secs_f64(),
        (ROWS * PER_ROW) as f64 / sweep.as_secs_f64()
    );
    println!("background             {background_bookings} card bookings accepted meanwhile");

    // The wallet comes back, spends for the expired bookings on replay and
    // refunds them: every wallet whole again.
    let wallet = deployment
        .processes
        .iter_mut()
        .find(|process| process.name == "wallet")
        .context("a wallet process")?;
    wallet.restart()?;
    let back = Instant::now();
    let whole = loop {
        let mut whole = 0;
        for holder in &holders {
            if let Ok(points) = get(http, base, "/points", Some(holder)).await {
                whole += usize::from(points["balance"] == POINTS);
            }
        }
        if whole == holders.len() || back.elapsed() > Duration::from_secs(120) {
            break whole;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let ok = whole == holders.len();
    println!(
        "audit                  all seats free again; wallets whole after the wallet's restart: {whole}/{} ({:.1} s): {}",
        holders.len(),
        back.elapsed().as_secs_f64(),
        if ok { "OK" } else { "MISMATCH" }
    );
    if !ok {
        bail!("hold expiry audit failed");
    }
    Ok(())
}

/// One rider's loop: rent a bike, wait for the outcome, return it if had.
async fn ride(
    http: &reqwest::Client,
    base: &str,
    rider: &str,
    bikes: &[String],
    index: usize,
    started: Instant,
    until: Instant,
) -> anyhow::Result<Rides> {
    let mut rides = Rides::default();
    let mut turn = 0usize;
    while Instant::now() < until {
        // Mostly the rider's own four bikes, now and then someone else's.
        let bike = &bikes[(index * 4 + turn.wrapping_mul(7919) % 5) % bikes.len()];
        turn += 1;
        let asked = Instant::now();
        let answer = send_booking(http, base, rider, &json!({"listingId": bike}), started).await;
        let id = answer.id.clone();
        let accepted = answer.status == 202;
        rides.answers.push(answer);
        if !accepted {
            continue;
        }
        let status = loop {
            let reservation = get(http, base, &format!("/reservations/{id}"), Some(rider)).await?;
            match reservation["status"].as_str() {
                Some("pending") | None => tokio::time::sleep(Duration::from_millis(5)).await,
                Some(status) => break status.to_owned(),
            }
        };
        rides.outcome_times.push(asked.elapsed());
        if status == "confirmed" {
            rides.confirmed += 1;
            post(
                http,
                base,
                &format!("/reservations/{id}/return"),
                Some(rider),
                Value::Null,
            )
            .await?;
        } else {
            rides.refused += 1;
        }
    }
    Ok(rides)
}

/// Clients book one ticket at a time while payment is made slow and then
/// healthy again: what the circuit breaker does for them.
async fn breaker(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &Deployment,
) -> anyhow::Result<()> {
    const HEALTHY: Duration = Duration::from_secs(5);
    const SLOW: Duration = Duration::from_secs(20);
    const AFTER: Duration = Duration::from_secs(10);
    const TIMEOUT: Duration = Duration::from_millis(610);
    const FALLBACK: &str = "payment is unavailable, try again later";
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let movie = register(
        http,
        base,
        &admin,
        json!({"kind": "movie", "title": "Breaker Night", "price": 10000, "tickets": CAPACITY}),
    )
    .await?;
    let tokens = customers(http, base, "patient", args.clients).await?;
    println!(
        "boxoffice breaker: {} clients; payment healthy {} s, then 2 s slow for {} s, then healthy; {}",
        args.clients,
        HEALTHY.as_secs(),
        SLOW.as_secs(),
        deployment.mode
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for token in tokens {
        let (http, base, movie, stop) =
            (http.clone(), base.to_owned(), movie.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let body = json!({"listingId": movie, "quantity": 1});
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = send_booking(&http, &base, &token, &body, started).await;
                // A refused client tries again a little later, as a person would.
                if answer.status != 202 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                answers.push(answer);
            }
            answers
        }));
    }
    let provider = |latency: u64| json!({"latencyMs": latency, "failureRate": 0.0, "down": false, "declineAbove": null});
    tokio::time::sleep(HEALTHY).await;
    let slow_from = started.elapsed();
    let steer = |settings| {
        call(
            http,
            reqwest::Method::PUT,
            base,
            "/admin/payment-provider",
            Some(&admin),
            Some(settings),
        )
    };
    steer(provider(2_000)).await?;
    tokio::time::sleep(SLOW).await;
    steer(provider(0)).await?;
    let healthy_from = started.elapsed();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await?);
    }
    answers.sort_by_key(|a| a.sent);
    let answered_at = |a: &Answered| a.sent + a.took;
    let opened_at = answers
        .iter()
        .filter(|a| a.sent >= slow_from && a.detail == FALLBACK)
        .map(answered_at)
        .min()
        .context("the breaker never opened")?;
    let while_open: Vec<&Answered> = answers
        .iter()
        .filter(|a| a.sent >= opened_at && a.sent < healthy_from)
        .collect();
    let held_past_timeout = while_open
        .iter()
        .filter(|a| a.took > TIMEOUT + Duration::from_millis(100))
        .count();
    let probes = while_open.iter().filter(|a| a.detail != FALLBACK).count();
    let fallbacks = histogram_of(while_open.iter().copied().filter(|a| a.detail == FALLBACK))?;
    let closed_at = answers
        .iter()
        .filter(|a| a.sent >= healthy_from && a.status == 202)
        .map(answered_at)
        .min()
        .context("the breaker never closed")?;
    let healthy = histogram_of(
        answers
            .iter()
            .filter(|a| a.sent < slow_from && a.status == 202),
    )?;
    println!(
        "before: accepted       {} bookings, p99 {:.1} ms",
        healthy.len(),
        ms(&healthy, 0.99)
    );
    println!(
        "breaker opened after   {:.2} s of slow payment",
        (opened_at - slow_from).as_secs_f64()
    );
    println!(
        "while open             {} requests: {} fallbacks (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms), {} let through to probe payment (each waits the {} ms timeout)",
        while_open.len(),
        fallbacks.len(),
        ms(&fallbacks, 0.5),
        ms(&fallbacks, 0.99),
        fallbacks.max() as f64 / 1000.0,
        probes,
        TIMEOUT.as_millis()
    );
    println!("held past the timeout  {held_past_timeout} (requests that waited longer than the payment timeout once the breaker was open)");
    println!(
        "closed after recovery  {:.2} s",
        (closed_at - healthy_from).as_secs_f64()
    );
    Ok(())
}

/// Every item of a paged list.
async fn list_all(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut items: Vec<Value> = Vec::new();
    loop {
        let cursor = items
            .last()
            .and_then(|last| last["id"].as_str())
            .map(|id| format!("&after={id}"))
            .unwrap_or_default();
        let page = get(
            http,
            base,
            &format!("{path}?limit=1000{cursor}"),
            Some(token),
        )
        .await?;
        let page = page.as_array().cloned().unwrap_or_default();
        let full = page.len() == 1000;
        items.extend(page);
        if !full {
            return Ok(items);
        }
    }
}

/// CPU time (user + system) the processes have used so far, in seconds.
fn cpu_secs(pids: &[(&'static str, u32)]) -> f64 {
    // Linux reports it in clock ticks, 100 per second on every common build.
    const TICKS_PER_SECOND: f64 = 100.0;
    pids.iter()
        .filter_map(|(_, pid)| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let after = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / TICKS_PER_SECOND)
        })
        .sum()
}

async fn book(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    movie: &str,
) -> anyhow::Result<String> {
    let answer = post(
        http,
        base,
        "/reservations",
        Some(token),
        json!({"listingId": movie, "quantity": 1}),
    )
    .await?;
    Ok(answer["id"].as_str().context("reservation id")?.to_owned())
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let answer = post(
        http,
        base,
        "/auth/token",
        None,
        json!({"username": username, "password": password}),
    )
    .await?;
    Ok(answer["accessToken"].as_str().context("token")?.to_owned())
}

/// One call of the public API; its JSON answer, or an error naming the
/// call and what it answered.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method.clone(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{method} {path}: {status} {body}");
    Ok(body)
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    call(http, reqwest::Method::POST, base, path, token, Some(body)).await
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    call(http, reqwest::Method::GET, base, path, token, None).await
}

/// A counter's value for one consumer group from a `/metrics` page (0 when
/// the group has not counted anything yet).
async fn consumer_counter(
    http: &reqwest::Client,
    metrics_url: &str,
    metric: &str,
    consumer: &str,
) -> anyhow::Result<f64> {
    let text = http.get(metrics_url).send().await?.text().await?;
    let label = format!("consumer=\"{consumer}\"");
    Ok(text
        .lines()
        .filter(|line| line.starts_with(metric) && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until no consumer group has handled an event for a second (at most
/// two minutes after `since`): the load has stopped, so a group still
/// handling events is still working off its backlog. Returns how long after
/// `since` the last of them went quiet, or `None` if they had not within the
/// two minutes.
async fn until_consumers_idle(
    http: &reqwest::Client,
    consumers: &[(&'static str, String)],
    since: Instant,
) -> Option<Duration> {
    let mut handled = None;
    let mut still_since = Instant::now();
    while since.elapsed() < Duration::from_secs(120) {
        let mut now = 0.0;
        let mut answered = true;
        for (group, url) in consumers {
            match consumer_counter(http, url, "boxoffice_events_handled_total", group).await {
                Ok(count) => now += count,
                Err(_) => answered = false,
            }
        }
        // A scrape that failed says nothing either way: asked again.
        if answered {
            if handled != Some(now) {
                handled = Some(now);
                still_since = Instant::now();
            } else if still_since.elapsed() >= Duration::from_secs(1) {
                return Some(still_since.duration_since(since));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// My page's process is down while `--clients` book for `--seconds`; then
/// it starts again and works off what it missed. The rate it does so at,
/// against the rate the events were produced at, says how fast a consumer
/// recovers from an outage (target: ten times the ingest rate).
async fn catch_up(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &mut Deployment,
    results: &mut Results,
) -> anyhow::Result<()> {
    const GROUP: &str = "mypage.projection";
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let movie = json!({"kind": "movie", "title": "Catch-up", "price": 100, "tickets": CAPACITY});
    let movie = register(http, base, &admin, movie).await?;
    let tokens = customers(http, base, "catchup", args.clients).await?;
    let metrics = deployment
        .consumers
        .iter()
        .find(|(group, _)| *group == GROUP)
        .map(|(_, url)| url.clone())
        .context("my page's metrics")?;
    // Distributed, my page's own process is down while the others work.
    // In one process my page cannot stop alone: the platform books with it
    // running, then stops, and my page is rebuilt from the log — emptied
    // and rewound, as `boxoffice rebuild mypage` does — so at the restart
    // it has every event of the load to work off, as if it had been down.
    let mypage_process = if args.distributed {
        process_named(deployment, "mypage")?.kill().await;
        println!(
            "boxoffice catch-up: my page down while {} clients book for {} s, {}",
            args.clients, args.seconds, deployment.mode
        );
        "mypage"
    } else {
        println!(
            "boxoffice catch-up: {} clients book for {} s, then my page is rebuilt from the log, {}",
            args.clients, args.seconds, deployment.mode
        );
        "boxoffice up"
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for token in tokens {
        let (http, base, movie, stop) =
            (http.clone(), base.to_owned(), movie.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut booked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if book(&http, &base, &token, &movie).await.is_ok() {
                    booked += 1;
                }
            }
            booked
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut booked = 0;
    for client in clients {
        booked += client.await?;
    }
    let down_for = started.elapsed();
    // Let the rest of the saga finish, so the backlog is complete.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mypage = process_named(deployment, mypage_process)?;
    if !args.distributed {
        mypage.stop().await;
        mypage.rebuild_mypage().await?;
    }
    mypage.restart()?;
    let back = Instant::now();
    // Done when the handled count has stood still for a second after it
    // began to move.
    let mut handled = 0.0;
    let mut first_handled = None;
    let mut still_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = consumer_counter(http, &metrics, "boxoffice_events_handled_total", GROUP)
            .await
            .unwrap_or(handled);
        if now > handled {
            first_handled.get_or_insert_with(|| back.elapsed());
            handled = now;
            still_since = Instant::now();
        } else if handled > 0.0 && still_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(600),
            "my page did not catch up within 10 minutes"
        );
    }
    let working = back.elapsed() - still_since.elapsed();
    let started_after = first_handled.unwrap_or_default();
    let ingest = handled / down_for.as_secs_f64();
    let catch_up = handled / (working - started_after).as_secs_f64().max(0.001);
    println!(
        "missed                 {handled:.0} events for my page while {} {:.1} s ({booked} bookings) = {ingest:.0} events/s",
        if args.distributed { "down" } else { "booking" },
        down_for.as_secs_f64()
    );
    println!(
        "caught up              in {:.1} s after its restart (first event handled after {:.1} s) = {catch_up:.0} events/s",
        working.as_secs_f64(),
        started_after.as_secs_f64()
    );
    println!("against the targets:");
    results.against(
        "catch_up_ratio",
        "catch-up rate / ingest rate",
        catch_up / ingest.max(f64::EPSILON),
        Target::AtLeast(10.0),
    );
    results.set("events_missed", handled);
    results.set("bookings", booked);
    results.set("ingest_events_per_second", ingest);
    results.set("catch_up_events_per_second", catch_up);
    results.set("caught_up_after_s", working.as_secs_f64());
    Ok(())
}

/// p50 and p99 of `boxoffice_event_lag_seconds` for one consumer, by linear
/// interpolation within the histogram's buckets (as PromQL's
/// `histogram_quantile` does), and how many events it counted.
async fn lag_quantiles(
    http: &reqwest::Client,
    metrics_url: &str,
    consumer: &str,
) -> anyhow::Result<(f64, f64, u64)> {
    let text = http.get(metrics_url).send().await?.text().await?;
    let label = format!("consumer=\"{consumer}\"");
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter(|line| {
            line.starts_with("boxoffice_event_lag_seconds_bucket") && line.contains(&label)
        })
        .filter_map(|line| {
            let le = line.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = line.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map(|b| b.1).unwrap_or(0);
    anyhow::ensure!(total > 0, "no lag samples for {consumer} at {metrics_url}");
    let quantile = |q: f64| {
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, count) in &buckets {
            if count as f64 >= rank {
                if bound.is_infinite() {
                    return lower.0;
                }
                let within = (rank - lower.1 as f64) / (count - lower.1).max(1) as f64;
                return lower.0 + (bound - lower.0) * within;
            }
            lower = (bound, count);
        }
        lower.0
    };
    Ok((quantile(0.5), quantile(0.99), total))
}

fn process_named<'d>(
    deployment: &'d mut Deployment,
    name: &str,
) -> anyhow::Result<&'d mut Process> {
    deployment
        .processes
        .iter_mut()
        .find(|process| process.name == name)
        .with_context(|| format!("a {name} process"))
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base}/health/ready")).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the platform did not become ready within 60 s")
}

/// A memory figure of a process from /proc (KiB), 0 where unavailable.
fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

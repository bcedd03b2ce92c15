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
//! In both modes it also reads the propagation lag of the my-page
//! projection (from the producer's commit to the projection's commit) from
//! the `boxoffice_event_lag_seconds` histogram the services export.
//!
//! ```sh
//! cargo build --release -p boxoffice -p bench
//! ./target/release/bench --clients 64 --seconds 20
//! ./target/release/bench --clients 64 --seconds 20 --distributed \
//!     --kafka 127.0.0.1:9092 --postgres postgres://postgres@127.0.0.1:5432
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Concurrent booking clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long the clients book.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The boxoffice binary to start.
    #[arg(long, default_value = "target/release/boxoffice")]
    binary: PathBuf,
    /// Port for the gateway (services take the four ports below it).
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
}

/// The processes under test, by name.
struct Deployment {
    processes: Vec<(&'static str, tokio::process::Child)>,
    /// PostgreSQL server and database prefix to drop afterwards (distributed).
    databases: Option<(String, String)>,
    /// Each consumer group and where its metrics are.
    consumers: Vec<(&'static str, String)>,
    mode: &'static str,
}

impl Deployment {
    fn start(args: &Args, data: &std::path::Path) -> anyhow::Result<Deployment> {
        let spawn = |name: &'static str, command_args: Vec<String>, env: &[(String, String)]| {
            tokio::process::Command::new(&args.binary)
                .args(command_args)
                .envs(env.iter().cloned())
                .env("BOXOFFICE_ADMIN_PASSWORD", ADMIN_PASSWORD)
                // Each client books far faster than a person: keep the
                // per-user limit (and its cost) on the path, but out of reach.
                .env("BOXOFFICE_RATE_LIMITS__WRITES_PER_SECOND", "1000000")
                .env("BOXOFFICE_RATE_LIMITS__WRITES_BURST", "1000000")
                .env("BOXOFFICE_DATA_DIR", data)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map(|child| (name, child))
                .with_context(|| {
                    format!(
                        "starting {} (build it with cargo build --release)",
                        args.binary.display()
                    )
                })
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
        let services = ["catalog", "reservation", "notification", "mypage"];
        let port_of = |i: usize| args.port - 4 + i as u16;
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
            .filter_map(|(name, child)| child.id().map(|pid| (*name, pid)))
            .collect()
    }

    async fn stop(mut self) {
        for (_, child) in &mut self.processes {
            child.kill().await.ok();
        }
        if let Some((server, namespace)) = &self.databases {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await
            {
                for name in [
                    "catalog",
                    "reservation",
                    "notification",
                    "mypage",
                    "identity",
                ] {
                    let drop =
                        format!("DROP DATABASE IF EXISTS \"{namespace}_{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                }
            }
        }
    }
}

const ADMIN_PASSWORD: &str = "bench-admin-password";
/// Every consumer group, in saga order, and the service it runs in.
const CONSUMERS: [(&str, &str); 4] = [
    ("catalog.inventory", "catalog"),
    ("reservation.saga", "reservation"),
    ("mypage.projection", "mypage"),
    ("notification.sender", "notification"),
];
const CAPACITY: u64 = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = std::env::temp_dir().join(format!("boxoffice-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let deployment = Deployment::start(&args, &data)?;
    let base = format!("http://127.0.0.1:{}", args.port);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .build()?;
    let result = run(&args, &http, &base, &deployment).await;
    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

async fn run(
    args: &Args,
    http: &reqwest::Client,
    base: &str,
    deployment: &Deployment,
) -> anyhow::Result<()> {
    let pids = deployment.pids();
    let total_rss =
        |field: &str| -> Vec<u64> { pids.iter().map(|(_, pid)| rss_kib(*pid, field)).collect() };
    wait_ready(http, base).await?;
    let admin = token(http, base, "admin", ADMIN_PASSWORD).await?;
    let movie = post(
        http,
        base,
        "/listings",
        Some(&admin),
        json!({
            "kind": "movie", "title": "Benchmark Night", "price": 10000, "tickets": CAPACITY
        }),
    )
    .await?;
    let movie = movie["id"].as_str().context("listing id")?.to_owned();
    let mut tokens = Vec::new();
    for n in 0..=args.clients {
        let name = format!("bench{n}");
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
    let probe_token = tokens.pop().expect("one token per client plus the probe");
    let rss_idle = total_rss("VmRSS");

    println!(
        "boxoffice booking benchmark: {} clients for {} s, {}, {} cores",
        args.clients,
        args.seconds,
        deployment.mode,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for token in tokens {
        let (http, base, movie, stop) =
            (http.clone(), base.to_owned(), movie.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut accept = Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match book(&http, &base, &token, &movie).await {
                    Ok(_) => accept.record(t.elapsed().as_micros() as u64).ok(),
                    Err(_) => {
                        errors += 1;
                        None
                    }
                };
            }
            (accept, errors)
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
    for client in clients {
        let (h, e) = client.await?;
        accept.add(h)?;
        errors += e;
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
    let sold = CAPACITY - available;
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
        "settled after load     {:.1} s",
        settle_started.elapsed().as_secs_f64()
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
    if !ok {
        bail!("inventory audit failed");
    }
    Ok(())
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

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(format!("{base}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
    Ok(body)
}

async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    let mut request = http.get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
    Ok(body)
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

//! How long one event takes through the broker alone — publish (as the
//! outbox relay does, waiting for the broker's acknowledgement) until a
//! consumer group's `next_batch` hands it over — without any database on
//! either side. A saga step in distributed mode is this hop plus the
//! producer's and the consumer's transactions.
//!
//! ```sh
//! cargo run --release -p bus-kafka --example hop_latency -- 127.0.0.1:9092 [fetch.wait.max.ms]
//! ```
//!
//! Publishes one event every 20 ms for 10 s (after a 3 s warm-up) and
//! prints the publish time and the hop time, p50 / p99 / max.

use std::time::{Duration, Instant};

use bus_kafka::{KafkaBus, KafkaSettings};
use kernel::bus::{EventBus, Outgoing};
use kernel::Envelope;

const TOPIC: &str = "boxoffice.hop";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let servers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let fetch_wait_max_ms = args.next().map(|ms| ms.parse()).transpose()?;
    let settings = KafkaSettings {
        bootstrap_servers: servers,
        namespace: Some(format!("hop{}", uuid::Uuid::new_v4().simple())),
        fetch_wait_max_ms: fetch_wait_max_ms.unwrap_or(KafkaSettings::default().fetch_wait_max_ms),
        ..KafkaSettings::default()
    };
    println!(
        "broker {}, fetch.wait.max.ms {}",
        settings.bootstrap_servers, settings.fetch_wait_max_ms
    );
    let bus = KafkaBus::connect(settings, &[TOPIC]).await?;
    let mut subscription = bus.subscribe("hop", &[TOPIC]).await?;

    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let mut published = Vec::new();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(13) {
            let event = Outgoing {
                topic: TOPIC.to_owned(),
                envelope: Envelope::new(
                    "/boxoffice/hop",
                    "boxoffice.hop.sent",
                    1,
                    n.to_string(),
                    n.to_string(),
                    serde_json::json!({ "sentMicros": started.elapsed().as_micros() as u64 }),
                ),
            };
            let before = Instant::now();
            bus.publish(&[event]).await?;
            published.push((started.elapsed() > Duration::from_secs(3), before.elapsed()));
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(published)
    });

    let mut hops = Vec::new();
    while started.elapsed() < Duration::from_secs(14) {
        let batch = subscription.next_batch(256).await?;
        let now = started.elapsed();
        for delivery in &batch.deliveries {
            let sent = delivery.envelope.data["sentMicros"]
                .as_u64()
                .unwrap_or_default();
            let sent = Duration::from_micros(sent);
            if sent > Duration::from_secs(3) {
                hops.push(now.saturating_sub(sent));
            }
        }
        subscription.commit(&batch).await?;
    }
    let publishes: Vec<Duration> = sender
        .await??
        .into_iter()
        .filter_map(|(counted, took)| counted.then_some(took))
        .collect();
    report("publish (acknowledged)", publishes);
    report("publish -> next_batch", hops);
    Ok(())
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    if times.is_empty() {
        println!("{what:24} nothing measured");
        return;
    }
    println!(
        "{what:24} p50 {:6.1} ms   p99 {:6.1} ms   max {:6.1} ms   ({} events)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
}

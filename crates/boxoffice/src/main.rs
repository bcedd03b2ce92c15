//! `boxoffice`: run the whole platform (`up`), one service (`serve`), the
//! migrations (`migrate`), or look after dead letters (`dead-letters`).

use std::path::PathBuf;

use boxoffice::dead_letters;
use boxoffice::platform::{self, ServiceName};
use boxoffice::telemetry::Telemetry;
use boxoffice::{Config, Platform};
use clap::{Parser, Subcommand};

/// mimalloc hands freed memory back to the OS; glibc's per-thread arenas
/// kept every Argon2 work buffer (19 MiB each) resident for good.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "A reservation platform: movie tickets, seats, bike rentals"
)]
struct Cli {
    /// Configuration file (TOML); `BOXOFFICE_*` environment variables override it.
    #[arg(long, global = true, env = "BOXOFFICE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: gateway, API and web UI on one port.
    Up {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// One service per process (distributed mode).
    Serve {
        service: ServiceName,
        #[arg(long)]
        port: Option<u16>,
    },
    /// Create or upgrade the databases (of one service, or all), then exit.
    Migrate { service: Option<ServiceName> },
    /// Rebuilds a read model from events: empties it and its inbox, and
    /// moves its consumer group to the start of its topics; the service
    /// replays them when it starts. Stop the service (or `up`) first.
    Rebuild { projection: platform::Projection },
    /// Events the services' consumers gave up on: list them, replay one.
    /// Signs in to the gateway as admin (password from the configuration
    /// or the data dir's `admin-password`).
    DeadLetters {
        /// The gateway; default `http://{host}:{port}` of the configuration.
        #[arg(long, global = true)]
        url: Option<String>,
        #[command(subcommand)]
        command: dead_letters::Command,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    let service_name = match &cli.command {
        Command::Serve { service, .. } => format!("boxoffice-{}", service.as_str()),
        _ => "boxoffice".to_owned(),
    };
    let telemetry = Telemetry::init(&config.telemetry, &config.log_format, &service_name)?;
    let outcome = run(cli.command, &mut config).await;
    telemetry.shutdown().await;
    outcome
}

async fn run(command: Command, config: &mut Config) -> anyhow::Result<()> {
    match command {
        Command::Up { port, data_dir } => {
            config.port = port.unwrap_or(config.port);
            if let Some(data_dir) = data_dir {
                config.data_dir = data_dir;
            }
            let started = std::time::Instant::now();
            let platform = Platform::start(config).await?;
            if let Some(password) = &platform.generated_admin_password {
                println!(
                    "admin password (shown once, kept in {}): {password}",
                    config.data_dir.join("admin-password").display()
                );
            }
            println!(
                "boxoffice is up on {} (ready in {} ms; data in {})",
                platform.url,
                started.elapsed().as_millis(),
                config.data_dir.display()
            );
            println!(
                "open {0} in a browser (sign in as admin to run the box office); API docs at {0}/docs",
                platform.url
            );
            if let Some(grpc) = &platform.grpc_url {
                println!("reservations over gRPC on {grpc}");
            }
            platform::wait_for_signal().await;
            println!("stopping…");
            platform.stop().await
        }
        Command::Serve { service, port } => {
            config.port = port.unwrap_or(config.port);
            platform::serve_one(config, service).await
        }
        Command::Migrate { service } => platform::migrate(config, service).await,
        Command::Rebuild { projection } => {
            let removed = platform::rebuild(config, projection).await?;
            println!(
                "{projection:?}: emptied ({removed} rows or keys) and rewound; start the service to replay its events",
            );
            Ok(())
        }
        Command::DeadLetters { url, command } => {
            if let Err(error) = dead_letters::run(config, url.as_deref(), command).await {
                eprintln!("{error:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

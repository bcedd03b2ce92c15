//! `boxoffice`: run the whole platform (`up`), one service (`serve`), or
//! the migrations (`migrate`).

use std::path::PathBuf;

use boxoffice::platform::{self, ServiceName};
use boxoffice::{Config, Platform};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    init_tracing(&config.log_format);
    match cli.command {
        Command::Up { port, data_dir } => {
            config.port = port.unwrap_or(config.port);
            config.data_dir = data_dir.unwrap_or(config.data_dir);
            let started = std::time::Instant::now();
            let platform = Platform::start(&config).await?;
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
            platform::wait_for_signal().await;
            println!("stopping…");
            platform.stop().await
        }
        Command::Serve { service, port } => {
            config.port = port.unwrap_or(config.port);
            platform::serve_one(&config, service).await
        }
        Command::Migrate { service } => platform::migrate(&config, service).await,
    }
}

fn init_tracing(format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

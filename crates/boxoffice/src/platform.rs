//! Running the platform: everything in one process (`up`), or one service
//! per process (`serve`).
//!
//! In `up` each service still listens on its own loopback port and the
//! gateway reaches it at that address, exactly as in distributed mode, so
//! there is one code path; only the adapters differ, and configuration
//! picks them: the embedded log or Kafka (`bus`), SQLite files or
//! PostgreSQL (`database_url`). A call to an address this process serves
//! goes through that service's router without a socket
//! ([`runtime::in_process`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus_embedded::EmbeddedBus;
use gateway::Route;
use kernel::bus::EventBus;
use kernel::shutdown::{self, ShutdownTrigger};
use runtime::App;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::{BusKind, Config, ServiceUrls};
use crate::secrets;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    Catalog,
    Reservation,
    Notification,
    Mypage,
    Payment,
    Wallet,
    Dashboard,
    Gateway,
}

impl ServiceName {
    pub const ALL: [ServiceName; 8] = [
        ServiceName::Catalog,
        ServiceName::Reservation,
        ServiceName::Notification,
        ServiceName::Mypage,
        ServiceName::Payment,
        ServiceName::Wallet,
        ServiceName::Dashboard,
        ServiceName::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Catalog => "catalog",
            ServiceName::Reservation => "reservation",
            ServiceName::Notification => "notification",
            ServiceName::Mypage => "mypage",
            ServiceName::Payment => "payment",
            ServiceName::Wallet => "wallet",
            ServiceName::Dashboard => "dashboard",
            ServiceName::Gateway => "gateway",
        }
    }

    /// The name its data goes by: the gateway keeps the identities.
    pub fn database_name(self) -> &'static str {
        match self {
            ServiceName::Gateway => "identity",
            other => other.as_str(),
        }
    }
}

/// The gateway's routes: the configured table (`[[gateway.routes]]`), each
/// service found by name in `urls`. Without the wallet (a deployment
/// without points) its routes (`/points`) are left out. Checked here, so a
/// wrong table stops the start before anything runs.
pub fn routes(config: &Config, urls: &ServiceUrls) -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::new();
    for route in &config.gateway.routes {
        let upstream = urls.of(&route.service).with_context(|| {
            format!(
                "gateway route {:?} names the service {:?}, which does not exist (services: {})",
                route.prefix,
                route.service,
                ServiceUrls::NAMES.join(", ")
            )
        })?;
        if route.service == "wallet" && !config.wallet.enabled {
            continue;
        }
        routes.push(Route {
            prefix: route.prefix.clone(),
            service: route.service.clone(),
            upstream: upstream.as_str().to_owned(),
            rewrite: route.rewrite.clone(),
        });
    }
    gateway::proxy::RouteTable::new(routes.clone())?;
    Ok(routes)
}

/// The services that keep dead letters, by name, for the gateway's
/// `/admin/dead-letters`.
pub fn services(urls: &ServiceUrls, wallet: bool) -> BTreeMap<String, String> {
    let points = wallet.then(|| ("wallet".to_owned(), urls.wallet.to_string()));
    [
        ("catalog", &urls.catalog),
        ("reservation", &urls.reservation),
        ("notification", &urls.notification),
        ("mypage", &urls.mypage),
        ("payment", &urls.payment),
        ("dashboard", &urls.dashboard),
    ]
    .into_iter()
    .map(|(name, url)| (name.to_owned(), url.to_string()))
    .chain(points)
    .collect()
}

/// Reservation's settings; points pay for bookings only where a wallet
/// takes them.
fn reservation_settings(config: &Config) -> reservation::Settings {
    reservation::Settings {
        points_accepted: config.wallet.enabled,
        ..config.reservation.clone()
    }
}

/// Where reservation finds the services it calls.
fn peers(urls: &ServiceUrls) -> reservation::Peers {
    reservation::Peers {
        catalog: urls.catalog.to_string(),
        payment: urls.payment.to_string(),
    }
}

/// Reservation's gRPC API, when `[reservation] grpc_port` asks for it:
/// bound on `host` beside the REST API, its tokens checked with the
/// gateway's signing secret.
async fn grpc_endpoint(
    config: &Config,
    jwt_secret: &str,
) -> anyhow::Result<Option<(reservation::GrpcEndpoint, SocketAddr)>> {
    let Some(port) = config.reservation.grpc_port else {
        return Ok(None);
    };
    anyhow::ensure!(
        jwt_secret.len() >= 32,
        "the token signing secret must be at least 32 bytes"
    );
    let listener = TcpListener::bind((config.host.as_str(), port))
        .await
        .with_context(|| format!("binding reservation's gRPC API on {}:{port}", config.host))?;
    let addr = listener.local_addr()?;
    let tokens = runtime::tokens::Tokens::new(
        jwt_secret.as_bytes(),
        Duration::from_secs(config.token_ttl_secs),
    );
    Ok(Some((
        reservation::GrpcEndpoint::new(listener, tokens),
        addr,
    )))
}

/// `http://host:port` for a bound address, naming loopback for "any".
fn url_for(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// A running platform.
pub struct Platform {
    /// Where the gateway answers, e.g. `http://127.0.0.1:8088`.
    pub url: String,
    /// Where reservation's gRPC API answers, when it is served.
    pub grpc_url: Option<String>,
    /// The admin password, when it was generated by this start.
    pub generated_admin_password: Option<String>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<anyhow::Result<()>>,
    embedded: Option<EmbeddedBus>,
}

/// The configured bus; the embedded log lives in the data dir.
async fn connect_bus(
    config: &Config,
    client: &str,
) -> anyhow::Result<(Arc<dyn EventBus>, Option<EmbeddedBus>)> {
    match config.bus {
        BusKind::Embedded => {
            let path = config.data_dir.join("bus.db");
            runtime::store::keep_private(&path)?;
            let bus = EmbeddedBus::open(&path).await?;
            Ok((Arc::new(bus.clone()), Some(bus)))
        }
        BusKind::Kafka => {
            let settings = bus_kafka::KafkaSettings {
                client_id: format!("boxoffice-{client}"),
                ..config.kafka.clone()
            };
            let bus = bus_kafka::KafkaBus::connect(settings, contracts::topics::ALL).await?;
            Ok((Arc::new(bus), None))
        }
    }
}

impl Platform {
    /// Starts every service in this process on `config.data_dir`; the
    /// gateway binds `config.host:config.port` (port 0 picks a free one).
    pub async fn start(config: &Config) -> anyhow::Result<Platform> {
        let dir = &config.data_dir;
        create_private_dir(dir)?;
        anyhow::ensure!(
            config.separates_databases(),
            "`up` runs every service: database_url needs a {{service}} placeholder so each gets its own database"
        );
        // The ports asked for are bound first: a free port picked by the
        // kernel for an internal service could otherwise be the very one the
        // caller chose (seen when a script picks a free port and passes it).
        let gateway_listener = TcpListener::bind((config.host.as_str(), config.port))
            .await
            .with_context(|| format!("binding {}:{}", config.host, config.port))?;
        let gateway_addr: SocketAddr = gateway_listener.local_addr()?;
        let admin = secrets::resolve(config.admin_password.as_deref(), dir, "admin-password")?;
        let jwt = secrets::resolve(config.jwt_secret.as_deref(), dir, "jwt-secret")?;
        let grpc = grpc_endpoint(config, &jwt.value).await?;
        let grpc_url = grpc.as_ref().map(|(_, addr)| url_for(*addr));

        // Every service gets a free loopback port; the gateway has the public one.
        let mut listeners = Vec::new();
        for _ in 0..7 {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let url_of = |listener: &TcpListener| -> anyhow::Result<String> {
            Ok(format!("http://{}", listener.local_addr()?))
        };
        let urls = ServiceUrls {
            catalog: url_of(&listeners[0])?.into(),
            reservation: url_of(&listeners[1])?.into(),
            notification: url_of(&listeners[2])?.into(),
            mypage: url_of(&listeners[3])?.into(),
            payment: url_of(&listeners[4])?.into(),
            dashboard: url_of(&listeners[5])?.into(),
            wallet: url_of(&listeners[6])?.into(),
        };
        let routes = routes(config, &urls)?;
        let (shared_bus, embedded) = connect_bus(config, "up").await?;
        let apps = vec![
            catalog::build(
                &config.database_for("catalog"),
                shared_bus.clone(),
                config.catalog.clone(),
            )
            .await?,
            reservation::build(
                &config.database_for("reservation"),
                &peers(&urls),
                shared_bus.clone(),
                reservation_settings(config),
                grpc.map(|(endpoint, _)| endpoint),
            )
            .await?,
            notification::build(
                &config.database_for("notification"),
                shared_bus.clone(),
                config.notification.clone(),
            )
            .await?,
            mypage::build(
                &config.database_for("mypage"),
                &config.mypage_store()?,
                shared_bus.clone(),
            )
            .await?,
            payment::build(
                &config.database_for("payment"),
                shared_bus.clone(),
                config.payment.clone(),
            )
            .await?,
            dashboard::build(&config.database_for("dashboard"), shared_bus.clone()).await?,
        ];
        let mut apps = apps;
        let wallet_listener = listeners.pop().expect("a wallet listener");
        if config.wallet.enabled {
            apps.push(
                wallet::build(
                    &config.database_for("wallet"),
                    urls.payment.as_str(),
                    shared_bus.clone(),
                    config.wallet.settings.clone(),
                )
                .await?,
            );
            listeners.push(wallet_listener);
        }
        apps.push(
            gateway::build(gateway_settings(
                config,
                jwt.value,
                routes,
                &urls,
                &admin.value,
            ))
            .await?,
        );
        listeners.push(gateway_listener);

        let (trigger, shutdown) = shutdown::channel();
        let mut tasks = JoinSet::new();
        let drain = Duration::from_millis(config.drain_ms);
        for (app, listener) in apps.into_iter().zip(listeners) {
            tasks.spawn(serve(app.draining_for(drain), listener, shutdown.clone()));
        }
        Ok(Platform {
            url: url_for(gateway_addr),
            grpc_url,
            generated_admin_password: admin.generated.then_some(admin.value),
            trigger,
            tasks,
            embedded,
        })
    }

    /// Stops every service gracefully: requests in flight finish, consumers
    /// finish their batch and commit, outboxes drain.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.trigger.fire();
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                first_error.get_or_insert(error);
            }
        }
        if let Some(bus) = &self.embedded {
            bus.close().await;
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: kernel::shutdown::Shutdown,
) -> anyhow::Result<()> {
    let name = app.name();
    let addr = listener.local_addr()?;
    tracing::info!(service = name, %addr, "serving");
    app.serve(listener, shutdown)
        .await
        .with_context(|| format!("{name} stopped with an error"))
}

fn gateway_settings(
    config: &Config,
    jwt_secret: String,
    routes: Vec<Route>,
    urls: &ServiceUrls,
    admin_password: &str,
) -> gateway::Settings {
    gateway::Settings {
        database_url: config.database_for("identity"),
        jwt_secret,
        token_ttl: Duration::from_secs(config.token_ttl_secs),
        admin_password: admin_password.to_owned(),
        routes,
        services: services(urls, config.wallet.enabled),
        rate_limits: config.rate_limits,
        api_document: gateway::api::ApiDocument::new(&crate::api::document()),
    }
}

/// Runs one service in this process (`boxoffice serve <service>`), with the
/// configured database and bus.
pub async fn serve_one(config: &Config, service: ServiceName) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    create_private_dir(dir)?;
    config.urls.check()?;
    let database_url = config.database_for(service.database_name());
    // The gateway publishes nothing and consumes nothing.
    let (bus, log) = match service {
        ServiceName::Gateway => (None, None),
        _ => {
            let (bus, log) = connect_bus(config, service.as_str()).await?;
            (Some(bus), log)
        }
    };
    let bus = || bus.clone().context("the gateway has no bus");
    let app = match service {
        ServiceName::Catalog => {
            catalog::build(&database_url, bus()?, config.catalog.clone()).await?
        }
        ServiceName::Reservation => {
            let grpc = match config.reservation.grpc_port {
                Some(_) => {
                    // A key made up here would refuse every token the
                    // gateway issues: take the gateway's, or none.
                    anyhow::ensure!(
                        config.jwt_secret.as_deref().is_some_and(|s| !s.is_empty())
                            || dir.join("jwt-secret").exists(),
                        "reservation's gRPC API checks the gateway's tokens: set the gateway's signing secret (jwt_secret, BOXOFFICE_JWT_SECRET) here too"
                    );
                    let jwt = secrets::resolve(config.jwt_secret.as_deref(), dir, "jwt-secret")?;
                    grpc_endpoint(config, &jwt.value).await?
                }
                None => None,
            };
            if let Some((_, addr)) = &grpc {
                println!("reservation's gRPC API is on {}", url_for(*addr));
            }
            reservation::build(
                &database_url,
                &peers(&config.urls),
                bus()?,
                reservation_settings(config),
                grpc.map(|(endpoint, _)| endpoint),
            )
            .await?
        }
        ServiceName::Payment => {
            payment::build(&database_url, bus()?, config.payment.clone()).await?
        }
        ServiceName::Wallet => {
            anyhow::ensure!(
                config.wallet.enabled,
                "the wallet is turned off in this configuration ([wallet] enabled = false)"
            );
            wallet::build(
                &database_url,
                config.urls.payment.as_str(),
                bus()?,
                config.wallet.settings.clone(),
            )
            .await?
        }
        ServiceName::Notification => {
            notification::build(&database_url, bus()?, config.notification.clone()).await?
        }
        ServiceName::Mypage => {
            mypage::build(&database_url, &config.mypage_store()?, bus()?).await?
        }
        ServiceName::Dashboard => dashboard::build(&database_url, bus()?).await?,
        ServiceName::Gateway => {
            let routes = routes(config, &config.urls)?;
            let admin = secrets::resolve(config.admin_password.as_deref(), dir, "admin-password")?;
            if admin.generated {
                println!(
                    "admin password (shown once, kept in {}): {}",
                    dir.join("admin-password").display(),
                    admin.value
                );
            }
            let jwt = secrets::resolve(config.jwt_secret.as_deref(), dir, "jwt-secret")?;
            gateway::build(gateway_settings(
                config,
                jwt.value,
                routes,
                &config.urls,
                &admin.value,
            ))
            .await?
        }
    };
    let app = app.draining_for(Duration::from_millis(config.drain_ms));
    let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.fire();
    });
    let served = serve(app, listener, shutdown).await;
    if let Some(log) = log {
        log.close().await;
    }
    served
}

/// Creates or upgrades the databases of `only` (or of every service), then exits.
pub async fn migrate(config: &Config, only: Option<ServiceName>) -> anyhow::Result<()> {
    create_private_dir(&config.data_dir)?;
    anyhow::ensure!(
        only.is_some() || config.separates_databases(),
        "database_url has no {{service}} placeholder: name the service to migrate (`boxoffice migrate <service>`)"
    );
    for service in ServiceName::ALL {
        if only.is_some_and(|only| only != service) {
            continue;
        }
        let migrations = match service {
            ServiceName::Catalog => catalog::MIGRATIONS,
            ServiceName::Reservation => reservation::MIGRATIONS,
            ServiceName::Notification => notification::MIGRATIONS,
            ServiceName::Mypage => mypage::MIGRATIONS,
            ServiceName::Payment => payment::MIGRATIONS,
            ServiceName::Wallet => wallet::MIGRATIONS,
            ServiceName::Dashboard => dashboard::MIGRATIONS,
            ServiceName::Gateway => gateway::MIGRATIONS,
        };
        let url = config.database_for(service.database_name());
        let store = runtime::Store::connect(&url, migrations).await?;
        store.close().await;
        println!(
            "{}: migrated ({})",
            service.as_str(),
            runtime::store::redact(&url)
        );
    }
    Ok(())
}

/// The read models `boxoffice rebuild` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Projection {
    Mypage,
    Dashboard,
}

/// Empties a read model and its inbox and moves its consumer group back
/// to the start of its topics: when its service starts next, it replays
/// every event the bus holds and serves the rebuilt view. The service must
/// be stopped meanwhile (under `up`: `up` is not running). Returns how
/// many rows or keys were removed.
pub async fn rebuild(config: &Config, projection: Projection) -> anyhow::Result<u64> {
    create_private_dir(&config.data_dir)?;
    let (bus, log) = connect_bus(config, "rebuild").await?;
    let (group, topics, removed) = match projection {
        Projection::Mypage => {
            let removed =
                mypage::clear(&config.database_for("mypage"), &config.mypage_store()?).await?;
            (mypage::GROUP, mypage::TOPICS, removed)
        }
        Projection::Dashboard => {
            let removed = dashboard::clear(&config.database_for("dashboard")).await?;
            (dashboard::GROUP, dashboard::TOPICS, removed)
        }
    };
    let rewound = bus.rewind(group, topics).await;
    if let Some(log) = log {
        log.close().await;
    }
    rewound?;
    Ok(removed)
}

/// The data dir holds password hashes, secrets and bookings: its owner
/// alone may enter it (0700), whether it is new or was made by an older
/// version with the default mode.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Kubernetes sends before killing a pod).
pub async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

//! Typed configuration. Layers, later wins: built-in defaults, then a TOML
//! file (`--config` or `BOXOFFICE_CONFIG`, `boxoffice.toml` if present),
//! then environment variables `BOXOFFICE_<FIELD>` (e.g. `BOXOFFICE_PORT`,
//! `BOXOFFICE_DATA_DIR`, `BOXOFFICE_ADMIN_PASSWORD`). Nested fields use a
//! double underscore: `BOXOFFICE_URLS__CATALOG`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use bus_kafka::KafkaSettings;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use gateway::RateLimits;
use runtime::store::sqlite_url;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the gateway (or a served service) binds.
    pub host: String,
    /// Port of the gateway in `up`, of the service in `serve`.
    pub port: u16,
    /// Where SQLite files, the event log and generated secrets live.
    pub data_dir: PathBuf,
    /// The admin's password; generated on first start when absent.
    pub admin_password: Option<String>,
    /// Key that signs access tokens; generated and kept in the data dir when absent.
    pub jwt_secret: Option<String>,
    /// How long an access token is valid.
    pub token_ttl_secs: u64,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// On SIGTERM, how long a process keeps taking requests while
    /// `/health/ready` already answers 503 "draining", before it closes
    /// its listener and finishes what is in flight. 0 (the default) closes
    /// at once: right where the orchestrator stops routing before it
    /// signals (Kubernetes' `preStop` pause) and callers move to another
    /// replica on a refused connection (the gateway does).
    pub drain_ms: u64,
    /// Where services keep their data. Absent: a SQLite file per service in
    /// the data dir. A `postgres://` url containing `{service}` gives every
    /// service its own database (`…/boxoffice_{service}`); without the
    /// placeholder the url serves one process (`serve`) only.
    pub database_url: Option<String>,
    /// The event bus: `embedded` (a log in the data dir, one machine) or
    /// `kafka` (any Kafka-protocol broker, see `[kafka]`).
    pub bus: BusKind,
    /// The Kafka bus (`BOXOFFICE_KAFKA__BOOTSTRAP_SERVERS` and so on).
    pub kafka: KafkaSettings,
    /// Where the other services answer, for `serve` (the gateway's routes,
    /// reservation's catalog lookups).
    pub urls: ServiceUrls,
    /// The gateway (`[gateway]`): its route table, `[[gateway.routes]]`.
    pub gateway: GatewayConfig,
    /// The gateway's rate limits (`[rate_limits]`, e.g.
    /// `BOXOFFICE_RATE_LIMITS__AUTH_PER_SECOND`); a rate of 0 turns one off.
    pub rate_limits: RateLimits,
    /// Catalog's settings (`[catalog]`): the screens registered on first
    /// start, `screens = [{ name, rows, seats_per_row, blocked }]`.
    pub catalog: catalog::Settings,
    /// Bookings: the deadline, the gRPC API's port (`grpc_port`, absent:
    /// not served) and the call to payment (`[reservation]`,
    /// `[reservation.payment]`: `timeout_ms`, `failures_to_open`, `open_for_ms`).
    pub reservation: reservation::Settings,
    /// Payments: the built-in provider's behaviour at start
    /// (`[payment.provider]`: `latency_ms`, `failure_rate`, `down`, `decline_above`).
    pub payment: payment::Settings,
    /// Loyalty points (`[wallet]`: `enabled`, `earn_rate_percent`; the call
    /// to payment that charges purchases, `[wallet.payment]`: `timeout_ms`,
    /// `failures_to_open`, `open_for_ms`). A
    /// deployment without points (S4) turns the wallet off: bookings and
    /// payments work the same, nothing earns points, `/points` is not served.
    pub wallet: WalletConfig,
    /// Where customers are told what happened (`[notification]`:
    /// `webhook_url`, `webhook_secret`); the log always.
    pub notification: notification::Settings,
    /// Traces (`[telemetry]`: `otlp_endpoint`, `service_name`); off unless
    /// an endpoint is set here or in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub telemetry: crate::telemetry::TelemetrySettings,
    /// Where my page keeps its read model (`[mypage] store`): `sql` (the
    /// service's database), `redb` (a file in the data dir), `redb://<file>`
    /// or `redis://host:port[/db]`. Absent: SQL (see `docs/architecture.md`,
    /// "Storage per service").
    pub mypage: ReadModelConfig,
}

/// A read model's store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadModelConfig {
    pub store: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WalletConfig {
    pub enabled: bool,
    #[serde(flatten)]
    pub settings: wallet::Settings,
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            enabled: true,
            settings: wallet::Settings::default(),
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Which service answers which path prefix. A table in a file replaces
    /// this one whole; the default is [`RouteConfig::defaults`].
    pub routes: Vec<RouteConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            routes: RouteConfig::defaults(),
        }
    }
}

/// One route of the gateway: requests whose path starts with `prefix` go to
/// `service` (a name: `catalog`, `reservation`, … found in `[urls]`, or
/// the in-process address under `up`), to the same path, or to `rewrite`
/// when there is one: `{rest}` in it stands for what follows the prefix,
/// and a query in it is added to the client's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
}

impl RouteConfig {
    fn new(prefix: &str, service: &str, rewrite: Option<&str>) -> RouteConfig {
        RouteConfig {
            prefix: prefix.to_owned(),
            service: service.to_owned(),
            rewrite: rewrite.map(str::to_owned),
        }
    }

    /// The public API: each service's own prefixes, and the aliases
    /// `/items` (musicals), `/items/{id}`, `/seats/{listingId}` and
    /// `/myPages` of the catalog's and my page's paths.
    pub fn defaults() -> Vec<RouteConfig> {
        vec![
            RouteConfig::new("/listings", "catalog", None),
            RouteConfig::new("/screens", "catalog", None),
            RouteConfig::new("/reservations", "reservation", None),
            RouteConfig::new("/notifications", "notification", None),
            RouteConfig::new("/mypage", "mypage", None),
            RouteConfig::new("/payments", "payment", None),
            RouteConfig::new("/admin/payment-provider", "payment", None),
            RouteConfig::new("/points", "wallet", None),
            RouteConfig::new("/dashboard", "dashboard", None),
            RouteConfig::new("/items", "catalog", Some("/listings?kind=musical")),
            RouteConfig::new("/items/", "catalog", Some("/listings/{rest}")),
            RouteConfig::new("/seats/", "catalog", Some("/listings/{rest}/seats")),
            RouteConfig::new("/myPages", "mypage", Some("/mypage/reservations{rest}")),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    Embedded,
    Kafka,
}

/// Where one service answers: a base URL, or its replicas' base URLs,
/// comma-separated in one string (`"http://c1:8080,http://c2:8080"`, as an
/// environment variable gives it) or as a TOML list. Kept as the
/// comma-separated string every caller splits ([`runtime::replicas`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Urls(String);

impl Urls {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base URLs, or why they cannot be used.
    pub fn check(&self) -> Result<Vec<String>, String> {
        runtime::replicas::check(&self.0)
    }
}

impl From<&str> for Urls {
    fn from(urls: &str) -> Urls {
        Urls(urls.to_owned())
    }
}

impl From<String> for Urls {
    fn from(urls: String) -> Urls {
        Urls(urls)
    }
}

impl PartialEq<&str> for Urls {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for Urls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Urls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Urls, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Urls(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(urls) => urls,
            OneOrMany::Many(urls) => urls.join(","),
        }))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceUrls {
    pub catalog: Urls,
    pub reservation: Urls,
    pub notification: Urls,
    pub mypage: Urls,
    pub payment: Urls,
    pub wallet: Urls,
    pub dashboard: Urls,
}

impl ServiceUrls {
    /// Every service a route may name.
    pub const NAMES: [&'static str; 7] = [
        "catalog",
        "reservation",
        "notification",
        "mypage",
        "payment",
        "wallet",
        "dashboard",
    ];

    /// The url(s) of the service called `name`, if there is one.
    pub fn of(&self, name: &str) -> Option<&Urls> {
        Some(match name {
            "catalog" => &self.catalog,
            "reservation" => &self.reservation,
            "notification" => &self.notification,
            "mypage" => &self.mypage,
            "payment" => &self.payment,
            "wallet" => &self.wallet,
            "dashboard" => &self.dashboard,
            _ => return None,
        })
    }

    /// Refuses a setting that is not a list of distinct http(s) URLs,
    /// naming it, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        for name in ServiceUrls::NAMES {
            let urls = self.of(name).expect("every name has a setting");
            if let Err(why) = urls.check() {
                anyhow::bail!("urls.{name} ({urls:?}): {why}");
            }
        }
        Ok(())
    }
}

impl Default for ServiceUrls {
    fn default() -> Self {
        ServiceUrls {
            catalog: "http://127.0.0.1:8081".into(),
            reservation: "http://127.0.0.1:8082".into(),
            notification: "http://127.0.0.1:8083".into(),
            mypage: "http://127.0.0.1:8084".into(),
            payment: "http://127.0.0.1:8085".into(),
            wallet: "http://127.0.0.1:8086".into(),
            dashboard: "http://127.0.0.1:8087".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8088,
            data_dir: PathBuf::from("./data"),
            admin_password: None,
            jwt_secret: None,
            token_ttl_secs: 3600,
            log_format: "text".into(),
            drain_ms: 0,
            database_url: None,
            bus: BusKind::Embedded,
            kafka: KafkaSettings::default(),
            urls: ServiceUrls::default(),
            gateway: GatewayConfig::default(),
            rate_limits: RateLimits::default(),
            catalog: catalog::Settings::default(),
            reservation: reservation::Settings::default(),
            payment: payment::Settings::default(),
            wallet: WalletConfig::default(),
            notification: notification::Settings::default(),
            telemetry: crate::telemetry::TelemetrySettings::default(),
            mypage: ReadModelConfig::default(),
        }
    }
}

impl Config {
    /// Loads the layers; `file` overrides the default file name.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("BOXOFFICE_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("boxoffice.toml")).filter(|p| p.exists()));
        if let Some(file) = &file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("BOXOFFICE_").split("__").ignore(&["config"]));
        figment.extract().context("reading configuration")
    }

    /// The database of the service that keeps its data under `name`
    /// (`catalog`, …, `identity` for the gateway).
    pub fn database_for(&self, name: &str) -> String {
        match &self.database_url {
            Some(url) => url.replace("{service}", name),
            None => sqlite_url(&self.data_dir, name),
        }
    }

    /// Where my page keeps its view: the service's SQL database unless
    /// configured otherwise. The key-value stores were measured behind the
    /// whole platform and lost there (`docs/benchmarks.md`), so they are a
    /// choice, not the default.
    pub fn mypage_store(&self) -> anyhow::Result<mypage::Keep> {
        let redb = || {
            mypage::Keep::KeyValue(format!(
                "redb://{}",
                self.data_dir.join("mypage.redb").display()
            ))
        };
        match self.mypage.store.as_deref() {
            None | Some("sql") => Ok(mypage::Keep::Sql),
            Some("redb") => Ok(redb()),
            Some(url)
                if url.starts_with("redb://")
                    || url.starts_with("redis://")
                    || url.starts_with("rediss://") =>
            {
                Ok(mypage::Keep::KeyValue(url.to_owned()))
            }
            Some(other) => anyhow::bail!(
                "[mypage] store = {:?} is not a store: expected sql, redb, redb://<file> or redis://host:port",
                runtime::store::redact(other)
            ),
        }
    }

    /// Whether one configuration can hold every service's data: each needs
    /// its own database, since their tables share names.
    pub fn separates_databases(&self) -> bool {
        self.database_url
            .as_deref()
            .is_none_or(|url| url.contains("{service}"))
    }
}

#[cfg(test)]
// figment's test jail fixes the closure's error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_the_gateway_on_8088_with_data_in_dot_data() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.port, 8088);
            assert_eq!(config.data_dir, PathBuf::from("./data"));
            Ok(())
        });
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "boxoffice.toml",
                "port = 9000\ntoken_ttl_secs = 60\n[urls]\ncatalog = \"http://c:1\"",
            )?;
            jail.set_env("BOXOFFICE_PORT", "9100");
            jail.set_env("BOXOFFICE_URLS__MYPAGE", "http://m:4");
            let config = Config::load(None).unwrap();
            assert_eq!(config.port, 9100);
            assert_eq!(config.token_ttl_secs, 60);
            assert_eq!(config.urls.catalog, "http://c:1");
            assert_eq!(config.urls.mypage, "http://m:4");
            Ok(())
        });
    }

    #[test]
    fn the_environment_selects_kafka_and_a_database_per_service() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BOXOFFICE_BUS", "kafka");
            jail.set_env("BOXOFFICE_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092");
            jail.set_env("BOXOFFICE_KAFKA__PARTITIONS", "8");
            jail.set_env(
                "BOXOFFICE_DATABASE_URL",
                "postgres://app@db:5432/boxoffice_{service}",
            );
            let config = Config::load(None).unwrap();
            assert_eq!(config.bus, BusKind::Kafka);
            assert_eq!(config.kafka.bootstrap_servers, "k1:9092,k2:9092");
            assert_eq!(config.kafka.partitions, 8);
            assert_eq!(config.kafka.session_timeout_ms, 6000);
            assert_eq!(
                config.database_for("catalog"),
                "postgres://app@db:5432/boxoffice_catalog"
            );
            assert!(config.separates_databases());
            Ok(())
        });
    }

    #[test]
    fn traces_are_off_by_default_and_an_endpoint_turns_them_on() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).unwrap().telemetry.otlp_endpoint, None);
            jail.create_file("boxoffice.toml", "[telemetry]\nservice_name = \"box\"")?;
            jail.set_env(
                "BOXOFFICE_TELEMETRY__OTLP_ENDPOINT",
                "http://collector:4318",
            );
            let config = Config::load(None).unwrap();
            assert_eq!(
                config.telemetry.otlp_endpoint.as_deref(),
                Some("http://collector:4318")
            );
            assert_eq!(config.telemetry.service_name.as_deref(), Some("box"));
            Ok(())
        });
    }

    #[test]
    fn one_database_url_without_the_placeholder_serves_one_process() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BOXOFFICE_DATABASE_URL", "postgres://db/catalog");
            let config = Config::load(None).unwrap();
            assert_eq!(config.database_for("catalog"), "postgres://db/catalog");
            assert!(!config.separates_databases());
            Ok(())
        });
    }

    #[test]
    fn the_grpc_api_is_off_unless_a_port_is_given() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(Config::load(None).unwrap().reservation.grpc_port, None);
            jail.create_file("boxoffice.toml", "[reservation]\ngrpc_port = 8089")?;
            assert_eq!(
                Config::load(None).unwrap().reservation.grpc_port,
                Some(8089)
            );
            jail.set_env("BOXOFFICE_RESERVATION__GRPC_PORT", "9089");
            let config = Config::load(None).unwrap();
            assert_eq!(config.reservation.grpc_port, Some(9089));
            // The rest of the section keeps its defaults.
            assert_eq!(config.reservation.deadline_secs, 120);
            Ok(())
        });
    }

    #[test]
    fn rate_limits_come_from_their_section_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "boxoffice.toml",
                "[rate_limits]\nauth_per_second = 5\nauth_burst = 10",
            )?;
            jail.set_env("BOXOFFICE_RATE_LIMITS__WRITES_PER_SECOND", "0");
            let limits = Config::load(None).unwrap().rate_limits;
            assert_eq!((limits.auth_per_second, limits.auth_burst), (5, 10));
            assert_eq!(limits.writes_per_second, 0);
            assert_eq!(limits.writes_burst, RateLimits::default().writes_burst);
            Ok(())
        });
    }

    #[test]
    fn the_payment_call_and_the_fake_provider_are_configurable() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "boxoffice.toml",
                "[reservation]\ndeadline_secs = 30\n[reservation.payment]\ntimeout_ms = 250\n\
                 [payment.provider]\ndecline_above = 50000",
            )?;
            jail.set_env("BOXOFFICE_PAYMENT__PROVIDER__LATENCY_MS", "40");
            let config = Config::load(None).unwrap();
            assert_eq!(config.reservation.deadline_secs, 30);
            assert_eq!(config.reservation.payment.timeout_ms, 250);
            assert_eq!(config.reservation.payment.failures_to_open, 5);
            assert_eq!(config.payment.provider.decline_above, Some(50_000));
            assert_eq!(config.payment.provider.latency_ms, 40);
            Ok(())
        });
    }

    #[test]
    fn the_payment_call_defaults_to_a_610_ms_timeout_and_two_minute_deadlines() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.reservation.payment.timeout_ms, 610);
            assert_eq!(config.reservation.deadline_secs, 120);
            Ok(())
        });
    }

    #[test]
    fn the_wallet_can_be_turned_off_and_its_rate_changed() {
        figment::Jail::expect_with(|jail| {
            assert!(Config::load(None).unwrap().wallet.enabled);
            jail.create_file("boxoffice.toml", "[wallet]\nearn_rate_percent = 5")?;
            let config = Config::load(None).unwrap();
            assert_eq!(config.wallet.settings.earn_rate_percent, 5);
            jail.set_env("BOXOFFICE_WALLET__ENABLED", "false");
            assert!(!Config::load(None).unwrap().wallet.enabled);
            Ok(())
        });
    }

    #[test]
    fn the_wallets_call_to_payment_is_configurable() {
        figment::Jail::expect_with(|jail| {
            let defaults = Config::load(None).unwrap().wallet.settings.payment;
            assert_eq!(defaults.timeout_ms, 1_220);
            jail.create_file("boxoffice.toml", "[wallet.payment]\ntimeout_ms = 900")?;
            jail.set_env("BOXOFFICE_WALLET__PAYMENT__OPEN_FOR_MS", "500");
            let payment = Config::load(None).unwrap().wallet.settings.payment;
            assert_eq!(payment.timeout_ms, 900);
            assert_eq!(payment.open_for_ms, 500);
            assert_eq!(payment.failures_to_open, 5);
            Ok(())
        });
    }

    #[test]
    fn my_page_is_kept_in_sql_unless_a_key_value_store_is_configured() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.mypage_store().unwrap(), mypage::Keep::Sql);
            jail.set_env("BOXOFFICE_MYPAGE__STORE", "redb");
            assert_eq!(
                Config::load(None).unwrap().mypage_store().unwrap(),
                mypage::Keep::KeyValue("redb://./data/mypage.redb".into())
            );
            jail.set_env("BOXOFFICE_MYPAGE__STORE", "redis://cache:6379/2");
            let config = Config::load(None).unwrap();
            assert_eq!(
                config.mypage_store().unwrap(),
                mypage::Keep::KeyValue("redis://cache:6379/2".into())
            );
            jail.set_env("BOXOFFICE_MYPAGE__STORE", "sql");
            assert_eq!(
                Config::load(None).unwrap().mypage_store().unwrap(),
                mypage::Keep::Sql
            );
            jail.set_env("BOXOFFICE_MYPAGE__STORE", "mongodb://x");
            let error = Config::load(None).unwrap().mypage_store().unwrap_err();
            assert!(error.to_string().contains("[mypage] store"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_bus_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BOXOFFICE_BUS", "carrier-pigeon");
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn catalog_screens_come_from_their_section_and_default_to_three_halls() {
        figment::Jail::expect_with(|jail| {
            let names: Vec<String> = Config::load(None)
                .unwrap()
                .catalog
                .screens
                .into_iter()
                .map(|screen| screen.name)
                .collect();
            assert_eq!(names, ["Hall 1", "Hall 2", "Hall 3"]);
            jail.create_file(
                "boxoffice.toml",
                "[catalog]\nscreens = [{ name = \"Studio\", rows = 4, seats_per_row = 6, blocked = [\"A-1\"] }]",
            )?;
            let screens = Config::load(None).unwrap().catalog.screens;
            assert_eq!(
                screens,
                [catalog::ScreenSpec {
                    name: "Studio".into(),
                    rows: 4,
                    seats_per_row: 6,
                    blocked: vec!["A-1".into()],
                }]
            );
            Ok(())
        });
    }

    #[test]
    fn the_route_table_is_built_in_and_a_file_replaces_it_whole() {
        figment::Jail::expect_with(|jail| {
            let routes = Config::load(None).unwrap().gateway.routes;
            assert_eq!(routes, RouteConfig::defaults());
            assert!(routes
                .iter()
                .any(|r| r.prefix == "/dashboard" && r.service == "dashboard"));
            jail.create_file(
                "boxoffice.toml",
                "[[gateway.routes]]\nprefix = \"/films\"\nservice = \"catalog\"\nrewrite = \"/listings?kind=movie\"\n\
                 [[gateway.routes]]\nprefix = \"/listings\"\nservice = \"catalog\"\n",
            )?;
            let routes = Config::load(None).unwrap().gateway.routes;
            assert_eq!(
                routes,
                [
                    RouteConfig::new("/films", "catalog", Some("/listings?kind=movie")),
                    RouteConfig::new("/listings", "catalog", None),
                ]
            );
            jail.set_env("BOXOFFICE_URLS__DASHBOARD", "http://d:7");
            assert_eq!(
                Config::load(None).unwrap().urls.of("dashboard"),
                Some(&Urls::from("http://d:7"))
            );
            Ok(())
        });
    }

    #[test]
    fn a_service_may_have_replicas_as_a_list_or_a_comma_separated_string() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "boxoffice.toml",
                "[urls]\ncatalog = [\"http://c1:8080\", \"http://c2:8080\"]\npayment = \"http://p:1\"",
            )?;
            jail.set_env("BOXOFFICE_URLS__MYPAGE", "http://m1:8080, http://m2:8080");
            let urls = Config::load(None).unwrap().urls;
            assert_eq!(
                urls.catalog.check().unwrap(),
                ["http://c1:8080", "http://c2:8080"]
            );
            assert_eq!(
                urls.mypage.check().unwrap(),
                ["http://m1:8080", "http://m2:8080"]
            );
            assert_eq!(urls.payment, "http://p:1");
            assert!(urls.check().is_ok());
            // The environment replaces the file's list whole.
            jail.set_env("BOXOFFICE_URLS__CATALOG", "http://c3:8080");
            let urls = Config::load(None).unwrap().urls;
            assert_eq!(urls.catalog.check().unwrap(), ["http://c3:8080"]);
            Ok(())
        });
    }

    #[test]
    fn a_replica_that_is_not_an_http_url_is_refused_naming_the_service() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("BOXOFFICE_URLS__WALLET", "http://w1,w2:8080");
            let error = Config::load(None).unwrap().urls.check().unwrap_err();
            assert!(error.to_string().contains("urls.wallet"), "{error}");
            assert!(error.to_string().contains("\"w2:8080\""), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_route_with_a_misspelt_field_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "boxoffice.toml",
                "[[gateway.routes]]\nprefix = \"/x\"\nservise = \"catalog\"\n",
            )?;
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }
}

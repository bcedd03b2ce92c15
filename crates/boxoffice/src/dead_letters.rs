//! `boxoffice dead-letters list [<service>]` and
//! `boxoffice dead-letters replay <service> <id>`: the operator's view of
//! the events consumers gave up on, through the gateway as `admin`.

use std::fmt::Write;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Config;

/// One dead letter as the gateway lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    #[serde(default)]
    pub service: Option<String>,
    pub id: String,
    pub consumer: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    pub error: String,
    pub attempts: i64,
    pub at: String,
    pub status: String,
}

/// Where the gateway answers: `--url`, else `http://{host}:{port}` of the
/// configuration (loopback when it binds every address).
pub fn gateway_url(config: &Config, url: Option<&str>) -> String {
    match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let host = match config.host.as_str() {
                "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
                host => host,
            };
            format!("http://{host}:{}", config.port)
        }
    }
}

/// The admin password: configured, else the one `up` keeps in the data dir.
pub fn admin_password(config: &Config) -> anyhow::Result<String> {
    if let Some(password) = config.admin_password.as_deref().filter(|p| !p.is_empty()) {
        return Ok(password.to_owned());
    }
    let path = config.data_dir.join("admin-password");
    let password = std::fs::read_to_string(&path)
        .with_context(|| {
            format!(
                "no admin password: set BOXOFFICE_ADMIN_PASSWORD or keep it in {}",
                path.display()
            )
        })?
        .trim()
        .to_owned();
    anyhow::ensure!(!password.is_empty(), "{} is empty", path.display());
    Ok(password)
}

/// The gateway, signed in as `admin`.
#[derive(Debug)]
pub struct AdminClient {
    url: String,
    http: reqwest::Client,
    token: String,
}

/// The problem's detail (or the body) of a refused call.
async fn refusal(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
        .unwrap_or(text);
    anyhow::anyhow!("{status}: {detail}")
}

impl AdminClient {
    pub async fn sign_in(url: &str, password: &str) -> anyhow::Result<AdminClient> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let response = http
            .post(format!("{url}/auth/token"))
            .json(&json!({"username": "admin", "password": password}))
            .send()
            .await
            .with_context(|| format!("reaching the gateway at {url}"))?;
        if !response.status().is_success() {
            return Err(refusal(response).await.context("signing in as admin"));
        }
        let answer: Value = response.json().await?;
        let token = answer["accessToken"]
            .as_str()
            .context("the gateway answered no token")?
            .to_owned();
        Ok(AdminClient {
            url: url.to_owned(),
            http,
            token,
        })
    }

    /// Every service's dead letters (or one service's), oldest first.
    pub async fn list(&self, service: Option<&str>) -> anyhow::Result<Vec<DeadLetter>> {
        let mut request = self
            .http
            .get(format!("{}/admin/dead-letters", self.url))
            .bearer_auth(&self.token);
        if let Some(service) = service {
            request = request.query(&[("service", service)]);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(refusal(response).await.context("listing dead letters"));
        }
        Ok(response.json().await?)
    }

    /// Hands a dead letter back to its consumer.
    pub async fn replay(&self, service: &str, id: &str) -> anyhow::Result<DeadLetter> {
        let response = self
            .http
            .post(format!(
                "{}/admin/dead-letters/{service}/{id}/replay",
                self.url
            ))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(refusal(response)
                .await
                .context(format!("replaying dead letter {id} of {service}")));
        }
        let mut letter: DeadLetter = response.json().await?;
        letter.service.get_or_insert_with(|| service.to_owned());
        Ok(letter)
    }
}

/// The list as a table, one dead letter a line.
pub fn table(letters: &[DeadLetter]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let headings = [
        "SERVICE", "ID", "STATUS", "ATTEMPTS", "AT", "CONSUMER", "EVENT", "ERROR",
    ];
    let rows: Vec<[String; 8]> = letters
        .iter()
        .map(|l| {
            [
                l.service.clone().unwrap_or_default(),
                l.id.clone(),
                l.status.clone(),
                l.attempts.to_string(),
                l.at.clone(),
                l.consumer.clone(),
                l.event_type
                    .clone()
                    .unwrap_or_else(|| "(undecodable)".to_owned()),
                one_line(&l.error, 60),
            ]
        })
        .collect();
    let mut widths = headings.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headings);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// `text` on one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// What `replay` printed.
pub fn replayed(letter: &DeadLetter) -> String {
    format!(
        "replayed dead letter {} of {} ({}): status {}\n",
        letter.id,
        letter.service.as_deref().unwrap_or("?"),
        letter.event_type.as_deref().unwrap_or("undecodable event"),
        letter.status
    )
}

/// Runs `list` or `replay` against the gateway.
pub async fn run(config: &Config, url: Option<&str>, command: Command) -> anyhow::Result<()> {
    let url = gateway_url(config, url);
    let client = AdminClient::sign_in(&url, &admin_password(config)?).await?;
    match command {
        Command::List { service } => print!("{}", table(&client.list(service.as_deref()).await?)),
        Command::Replay { service, id } => {
            let letter = client.replay(&service, &id).await?;
            if letter.status != "replayed" {
                bail!("the service answered status {:?}", letter.status);
            }
            print!("{}", replayed(&letter));
        }
    }
    Ok(())
}

/// The `dead-letters` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every service's dead letters, oldest first (or one service's).
    List { service: Option<String> },
    /// Hand a dead letter back to its consumer (once its cause is fixed).
    Replay { service: String, id: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(service: &str, id: &str, event_type: Option<&str>, error: &str) -> DeadLetter {
        DeadLetter {
            service: Some(service.to_owned()),
            id: id.to_owned(),
            consumer: "catalog.inventory".to_owned(),
            event_id: None,
            event_type: event_type.map(str::to_owned),
            topic: Some("boxoffice.reservation".to_owned()),
            error: error.to_owned(),
            attempts: 5,
            at: "2026-03-01T10:00:00Z".to_owned(),
            status: "dead".to_owned(),
        }
    }

    #[test]
    fn the_list_reads_as_an_aligned_table() {
        let text = table(&[
            letter(
                "catalog",
                "1",
                Some("boxoffice.reservation.placed"),
                "no\nsuch listing",
            ),
            letter("mypage", "12345", None, &"x".repeat(100)),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SERVICE  ID     STATUS  ATTEMPTS  AT"));
        assert!(lines[1].starts_with("catalog  1      dead    5         2026-03-01T10:00:00Z"));
        assert!(lines[1].ends_with("boxoffice.reservation.placed  no such listing"));
        assert!(lines[2].contains("(undecodable)"));
        assert!(lines[2].ends_with('…'));
        assert_eq!(table(&[]), "no dead letters\n");
    }

    #[test]
    fn the_gateway_is_found_from_the_configuration_unless_given() {
        let config = Config {
            host: "0.0.0.0".into(),
            port: 9000,
            ..Config::default()
        };
        assert_eq!(gateway_url(&config, None), "http://127.0.0.1:9000");
        assert_eq!(
            gateway_url(&config, Some("https://box.example/")),
            "https://box.example"
        );
    }

    #[test]
    fn the_admin_password_comes_from_configuration_or_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert!(admin_password(&config).is_err());
        std::fs::write(dir.path().join("admin-password"), "kept\n").unwrap();
        assert_eq!(admin_password(&config).unwrap(), "kept");
        config.admin_password = Some("configured".into());
        assert_eq!(admin_password(&config).unwrap(), "configured");
    }
}

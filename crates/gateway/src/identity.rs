//! Users, their password hashes (Argon2id) and access tokens (HS256 JWTs).

use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use kernel::ids::UserId;
use runtime::http::{timestamp, ApiError, Body, Caller, Role};
use runtime::store::MigrationScript;
use runtime::Store;
use serde::{Deserialize, Serialize};
use sqlx::Row;

const SCHEMA: &str = "
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);";

pub const MIGRATIONS: &[MigrationScript] = &[MigrationScript {
    version: 100,
    description: "identity: users",
    sqlite: SCHEMA,
    postgres: SCHEMA,
}];

pub const ADMIN_USERNAME: &str = "admin";
const ISSUER: &str = "boxoffice";

/// A username: 3 to 32 of `a-z 0-9 . _ -`, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, String> {
        let name = raw.trim().to_ascii_lowercase();
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !(3..=32).contains(&name.len()) || !valid_chars {
            return Err(
                "username must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-'".to_owned(),
            );
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as chosen at signup: 8 to 128 characters.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if !(8..=128).contains(&chars) {
        return Err("password must be 8 to 128 characters".to_owned());
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    password_hash: String,
}

#[derive(Clone, Debug)]
pub struct Users {
    store: Store,
}

impl Users {
    pub fn new(store: Store) -> Users {
        Users { store }
    }

    /// Creates the `admin` user, or sets its password if it changed.
    pub async fn ensure_admin(&self, password: &str) -> anyhow::Result<()> {
        match self.find(ADMIN_USERNAME).await? {
            Some(admin) if verify(password.to_owned(), admin.password_hash.clone()).await => Ok(()),
            Some(_) => {
                let hash = hash(password.to_owned()).await?;
                sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                    .bind(hash)
                    .bind(ADMIN_USERNAME)
                    .execute(&mut *self.store.begin().await?)
                    .await?;
                Ok(())
            }
            None => {
                self.create(&Username(ADMIN_USERNAME.to_owned()), password, Role::Admin)
                    .await?;
                Ok(())
            }
        }
    }

    /// `Ok(None)` when the username is taken.
    pub async fn create(
        &self,
        username: &Username,
        password: &str,
        role: Role,
    ) -> anyhow::Result<Option<User>> {
        let user = User {
            id: UserId::new(),
            username: username.as_str().to_owned(),
            role,
            password_hash: hash(password.to_owned()).await?,
        };
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(role.as_str())
        .bind(timestamp(kernel::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((inserted.rows_affected() == 1).then_some(user))
    }

    pub async fn find(&self, username: &str) -> anyhow::Result<Option<User>> {
        let row =
            sqlx::query("SELECT id, username, password_hash, role FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(self.store.reader())
                .await?;
        row.map(|row| {
            let id: String = row.try_get("id")?;
            let role: String = row.try_get("role")?;
            Ok(User {
                id: id.parse()?,
                username: row.try_get("username")?,
                role: Role::parse(&role).with_context(|| format!("unknown role {role:?}"))?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    /// The user if the password is theirs.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Option<User>> {
        let Ok(username) = Username::parse(username) else {
            return Ok(None);
        };
        let Some(user) = self.find(username.as_str()).await? else {
            return Ok(None);
        };
        let ok = verify(password.to_owned(), user.password_hash.clone()).await;
        Ok(ok.then_some(user))
    }
}

/// Argon2id is deliberately slow: keep it off the async workers.
async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    name: String,
    role: Role,
    iss: String,
    iat: u64,
    exp: u64,
}

/// Issues and checks access tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Tokens {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    pub fn issue(&self, user: &User) -> anyhow::Result<String> {
        let now = kernel::now().unix_timestamp() as u64;
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            role: user.role,
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &self.encoding,
        )?)
    }

    /// The caller a token stands for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the token has expired; sign in again".to_owned()
                }
                _ => "the token is invalid".to_owned(),
            })?;
        let user_id = data
            .claims
            .sub
            .parse()
            .map_err(|_| "the token is invalid".to_owned())?;
        Ok(Caller {
            user_id,
            username: data.claims.name,
            role: data.claims.role,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[derive(Clone, Debug)]
pub struct AuthState {
    pub users: Users,
    pub tokens: Tokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct UserView {
    id: String,
    username: String,
    role: Role,
}

pub async fn signup(
    State(auth): State<AuthState>,
    Body(credentials): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let username = Username::parse(&credentials.username).map_err(ApiError::Unprocessable)?;
    check_new_password(&credentials.password).map_err(ApiError::Unprocessable)?;
    let user = auth
        .users
        .create(&username, &credentials.password, Role::Customer)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("username {:?} is taken", username.as_str())))?;
    Ok((
        StatusCode::CREATED,
        Json(UserView {
            id: user.id.to_string(),
            username: user.username,
            role: user.role,
        }),
    ))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenView {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub async fn token(
    State(auth): State<AuthState>,
    Body(credentials): Body<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let user = auth
        .users
        .authenticate(&credentials.username, &credentials.password)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("invalid username or password".to_owned()))?;
    Ok(Json(TokenView {
        access_token: auth.tokens.issue(&user)?,
        token_type: "Bearer",
        expires_in: auth.tokens.ttl().as_secs(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_bounded() {
        assert_eq!(Username::parse(" Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("a b c").is_err());
        assert!(Username::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
    }

    fn user(role: Role) -> User {
        User {
            id: UserId::new(),
            username: "alice".into(),
            role,
            password_hash: String::new(),
        }
    }

    #[test]
    fn an_issued_token_verifies_as_its_user() {
        let tokens = Tokens::new(&[7; 32], Duration::from_secs(60));
        let alice = user(Role::Customer);
        let caller = tokens.verify(&tokens.issue(&alice).unwrap()).unwrap();
        assert_eq!(caller.user_id, alice.id);
        assert_eq!(caller.role, Role::Customer);
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let ours = Tokens::new(&[7; 32], Duration::from_secs(60));
        let theirs = Tokens::new(&[8; 32], Duration::from_secs(60));
        let forged = theirs.issue(&user(Role::Admin)).unwrap();
        assert_eq!(ours.verify(&forged).unwrap_err(), "the token is invalid");
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let tokens = Tokens::new(&[7; 32], Duration::from_secs(60));
        let token = tokens.issue(&user(Role::Customer)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(tokens.verify(&parts.join(".")).is_err());
    }
}

//! Users: usernames, roles and password hashes in the identity database.

use anyhow::Context;
use kernel::ids::UserId;
use runtime::http::{timestamp, Caller, Role};
use runtime::Store;
use sqlx::Row;

use crate::passwords::Passwords;

pub const ADMIN_USERNAME: &str = "admin";

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
}

impl User {
    pub fn new(id: UserId, username: String, role: Role) -> User {
        User { id, username, role }
    }

    /// Who this user is when calling: what a token issued to them says.
    pub fn caller(&self) -> Caller {
        Caller {
            user_id: self.id,
            username: self.username.clone(),
            role: self.role,
        }
    }
}

/// The identity database's users. Hashing errors (a busy hasher among
/// them, [`crate::passwords::PasswordError::Busy`]) come back inside the
/// `anyhow::Error`.
#[derive(Clone, Debug)]
pub struct Users {
    store: Store,
    passwords: Passwords,
}

impl Users {
    pub fn new(store: Store, passwords: Passwords) -> Users {
        Users { store, passwords }
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Creates the `admin` user, or sets its password if it changed.
    pub async fn ensure_admin(&self, password: &str) -> anyhow::Result<()> {
        match self.find(ADMIN_USERNAME).await? {
            Some((_, stored)) if self.passwords.verify(password, Some(&stored)).await? => Ok(()),
            Some(_) => {
                let hash = self.passwords.hash(password).await?;
                let mut tx = self.store.begin().await?;
                sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                    .bind(hash)
                    .bind(ADMIN_USERNAME)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                tracing::info!("the admin password was changed");
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
        let user = User::new(UserId::new(), username.as_str().to_owned(), role);
        let hash = self.passwords.hash(password).await?;
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&hash)
        .bind(role.as_str())
        .bind(timestamp(kernel::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((inserted.rows_affected() == 1).then_some(user))
    }

    /// The user and their password hash.
    async fn find(&self, username: &str) -> anyhow::Result<Option<(User, String)>> {
        let row =
            sqlx::query("SELECT id, username, password_hash, role FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(self.store.reader())
                .await?;
        row.map(|row| {
            let id: String = row.try_get("id")?;
            let role: String = row.try_get("role")?;
            let user = User::new(
                id.parse()?,
                row.try_get("username")?,
                Role::parse(&role).with_context(|| format!("unknown role {role:?}"))?,
            );
            Ok((user, row.try_get("password_hash")?))
        })
        .transpose()
    }

    /// The user if the password is theirs. Whether the user exists or not,
    /// exactly one password verification is performed, so the time taken
    /// does not tell which usernames exist.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Option<User>> {
        let found = match Username::parse(username) {
            Ok(username) => self.find(username.as_str()).await?,
            Err(_) => None,
        };
        let (user, stored) = found.unzip();
        let matches = self.passwords.verify(password, stored.as_deref()).await?;
        Ok(user.filter(|_| matches))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    async fn users(dir: &std::path::Path) -> Users {
        let store = Store::connect(
            &runtime::store::sqlite_url(dir, "identity"),
            super::super::MIGRATIONS,
        )
        .await
        .unwrap();
        let passwords = Passwords::new(2, Duration::from_secs(30)).await.unwrap();
        Users::new(store, passwords)
    }

    #[tokio::test]
    async fn an_unknown_user_still_costs_one_verification() {
        let dir = tempfile::tempdir().unwrap();
        let users = users(dir.path()).await;
        users
            .create(
                &Username::parse("alice").unwrap(),
                "correct horse",
                Role::Customer,
            )
            .await
            .unwrap()
            .unwrap();
        let before = users.passwords().stats().verifications;

        assert!(users
            .authenticate("nobody", "correct horse")
            .await
            .unwrap()
            .is_none());
        assert_eq!(users.passwords().stats().verifications, before + 1);
        assert!(users
            .authenticate("alice", "wrong horse")
            .await
            .unwrap()
            .is_none());
        assert_eq!(users.passwords().stats().verifications, before + 2);
        assert!(users
            .authenticate("x", "malformed name")
            .await
            .unwrap()
            .is_none());
        assert_eq!(users.passwords().stats().verifications, before + 3);
        let alice = users.authenticate("Alice", "correct horse").await.unwrap();
        assert_eq!(alice.unwrap().username, "alice");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn thirty_two_concurrent_logins_never_run_more_hashes_at_once_than_the_permits() {
        let dir = tempfile::tempdir().unwrap();
        let users = users(dir.path()).await;
        users
            .create(
                &Username::parse("alice").unwrap(),
                "correct horse",
                Role::Customer,
            )
            .await
            .unwrap()
            .unwrap();
        let mut logins = tokio::task::JoinSet::new();
        for n in 0..32 {
            let users = users.clone();
            logins.spawn(async move {
                // Right, wrong and unknown: each costs one verification.
                let (name, password) = match n % 3 {
                    0 => ("alice", "correct horse"),
                    1 => ("alice", "wrong horse"),
                    _ => ("nobody", "correct horse"),
                };
                users.authenticate(name, password).await.unwrap().is_some()
            });
        }
        let mut signed_in = 0;
        while let Some(login) = logins.join_next().await {
            signed_in += usize::from(login.unwrap());
        }
        assert_eq!(signed_in, 11);
        let stats = users.passwords().stats();
        assert_eq!(stats.verifications, 32);
        assert!(stats.peak_concurrent <= stats.permits, "{stats:?}");
        assert_eq!(stats.permits, 2);
    }

    #[tokio::test]
    async fn a_changed_admin_password_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let users = users(dir.path()).await;
        users.ensure_admin("first password").await.unwrap();
        users.ensure_admin("second password").await.unwrap();
        assert!(users
            .authenticate("admin", "second password")
            .await
            .unwrap()
            .is_some());
        assert!(users
            .authenticate("admin", "first password")
            .await
            .unwrap()
            .is_none());
    }
}

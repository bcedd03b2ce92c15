//! Identity: users with Argon2id password hashes (its own database), the
//! access tokens they sign in for (HS256 JWTs), and the `/auth/*` handlers.
//!
//! - [`users`]: usernames, users and their records.
//! - tokens: issuing and checking access tokens, [`runtime::tokens`]
//!   (reservation's gRPC adapter checks them too).
//! - [`http`]: `POST /auth/signup` and `POST /auth/token`.
//!
//! Hashing itself is [`crate::passwords`], bounded to one per core.

pub mod http;
pub mod users;

use runtime::store::MigrationScript;

pub use http::{signup, token, AuthState};
pub use runtime::tokens::Tokens;
pub use users::{check_new_password, User, Username, Users, ADMIN_USERNAME};

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

//! Access tokens: HS256 JWTs with issuer and expiry.

use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use runtime::http::{Caller, Role};
use serde::{Deserialize, Serialize};

use super::User;

const ISSUER: &str = "boxoffice";

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
        // Only HS256 is accepted: the header's `alg` cannot pick another.
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

#[cfg(test)]
mod tests {
    use kernel::ids::UserId;

    use super::*;

    fn user(role: Role) -> User {
        User::new(UserId::new(), "alice".into(), role)
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

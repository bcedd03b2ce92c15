//! Access tokens: HS256 JWTs with issuer and expiry. The gateway issues
//! them and checks them on every request; a service with an inbound
//! adapter of its own that bypasses the gateway (reservation's gRPC) checks
//! them here too, with the same key, so a token means the same everywhere.

use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::http::{Caller, Role};

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

    /// A token that stands for `user` until the time to live has passed.
    pub fn issue(&self, user: &Caller) -> anyhow::Result<String> {
        let now = kernel::now().unix_timestamp() as u64;
        let claims = Claims {
            sub: user.user_id.to_string(),
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

/// The token in an `Authorization` value, `Bearer <token>` (the scheme in
/// any case, as RFC 9110 has it), or why there is none.
pub fn bearer(value: &str) -> Result<&str, String> {
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| "the authorization must be 'Bearer <token>'".to_owned())
}

#[cfg(test)]
mod tests {
    use kernel::ids::UserId;

    use super::*;

    fn user(role: Role) -> Caller {
        Caller {
            user_id: UserId::new(),
            username: "alice".into(),
            role,
        }
    }

    #[test]
    fn an_issued_token_verifies_as_its_user() {
        let tokens = Tokens::new(&[7; 32], Duration::from_secs(60));
        let alice = user(Role::Customer);
        let caller = tokens.verify(&tokens.issue(&alice).unwrap()).unwrap();
        assert_eq!(caller.user_id, alice.user_id);
        assert_eq!(caller.username, "alice");
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

    #[test]
    fn an_expired_token_is_refused_with_a_reason() {
        let tokens = Tokens::new(&[7; 32], Duration::from_secs(60));
        let now = kernel::now().unix_timestamp() as u64;
        // Expired a minute ago: past the leeway.
        let claims = Claims {
            sub: UserId::new().to_string(),
            name: "alice".into(),
            role: Role::Customer,
            iss: ISSUER.to_owned(),
            iat: now - 120,
            exp: now - 60,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &tokens.encoding).unwrap();
        assert_eq!(
            tokens.verify(&token).unwrap_err(),
            "the token has expired; sign in again"
        );
    }

    #[test]
    fn only_a_bearer_authorization_carries_a_token() {
        assert_eq!(bearer("Bearer abc").unwrap(), "abc");
        assert_eq!(bearer("bearer  abc ").unwrap(), "abc");
        assert_eq!(bearer("BEARER abc").unwrap(), "abc");
        for refused in ["Basic abc", "Bearer", "Bearer ", "abc", ""] {
            assert!(bearer(refused).is_err(), "{refused:?}");
        }
    }
}

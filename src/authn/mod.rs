//! Authentication: who is calling. Runs as an HTTP layer before any MCP parsing, so an
//! unauthenticated request never reaches the MCP service. Three ways in, configured in
//! `[auth]`: JWTs from trusted issuers (keys from JWKS), static bearer tokens (stored as
//! SHA-256, compared in constant time), or anonymous (loopback binds only).
//!
//! Failures carry a detail for the log and nothing for the client but 401.

mod cache;
mod claims;
mod jwks;
mod jwt;
pub mod principal;

pub use claims::principal as principal_from_claims;
pub use jwks::KeySet;

use std::{collections::BTreeMap, sync::Arc};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

pub use principal::{AttrValue, Principal, PrincipalKind};

use crate::config::{AttrKind, AuthSettings, KeySource, TokenSettings};

/// Why a request was not authenticated. Only the variant reaches the client (as 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Who is calling, from a request's headers: the built-in [`Authenticator`] (bearer tokens
/// and JWTs, as `[auth]` says), or an embedding application's own (library mode:
/// `ProxyBuilder::authenticate_with`). Whatever it returns is what policies decide on and
/// the audit log records; an error is a 401 (only its variant reaches the client).
pub trait Authenticate: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> futures::future::BoxFuture<'a, Result<Principal, AuthError>>;

    /// The authorization servers the protected-resource metadata names.
    fn issuer_names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Authenticate for Authenticator {
    fn authenticate<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
    ) -> futures::future::BoxFuture<'a, Result<Principal, AuthError>> {
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Box::pin(Authenticator::authenticate(self, authorization))
    }

    fn issuer_names(&self) -> Vec<String> {
        Authenticator::issuer_names(self)
    }
}

pub struct Authenticator {
    anonymous: bool,
    attributes: BTreeMap<String, AttrKind>,
    tokens: Vec<TokenSettings>,
    issuers: Vec<jwt::Issuer>,
    cache: cache::TokenCache,
}

/// SHA-256 of a token, as `[[auth.tokens]]` stores it.
pub fn token_hash(token: &str) -> [u8; 32] {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

/// Hex SHA-256 of a token, for the configuration.
pub fn token_hash_hex(token: &str) -> String {
    token_hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> u64 {
    crate::ids::unix_seconds()
}

impl Authenticator {
    /// Builds the authenticator and loads every issuer's keys once. A key source that
    /// cannot be read is logged, not fatal: its tokens fail until a refresh succeeds.
    pub async fn new(settings: &AuthSettings) -> Arc<Self> {
        let issuers: Vec<_> = settings
            .issuers
            .iter()
            .cloned()
            .map(jwt::Issuer::new)
            .collect();
        for issuer in &issuers {
            match issuer.jwks.refresh().await {
                Ok(n) => {
                    tracing::info!(issuer = %issuer.settings.issuer, keys = n, "signing keys loaded")
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer.settings.issuer, error = %e, "signing keys not loaded yet")
                }
            }
        }
        Arc::new(Authenticator {
            anonymous: settings.anonymous,
            attributes: settings.attributes.clone(),
            tokens: settings.tokens.clone(),
            issuers,
            cache: cache::TokenCache::default(),
        })
    }

    /// Refreshes every URL key set in the background until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: CancellationToken) {
        for (i, issuer) in self.issuers.iter().enumerate() {
            if !matches!(issuer.settings.keys, KeySource::Url(_)) {
                continue;
            }
            let (this, stop, every) = (Arc::downgrade(self), stop.clone(), issuer.settings.refresh);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.cancelled() => return,
                    }
                    let Some(this) = this.upgrade() else { return };
                    if let Err(e) = this.issuers[i].jwks.refresh().await {
                        tracing::warn!(issuer = %this.issuers[i].settings.issuer, error = %e, "JWKS refresh failed; keeping the previous keys");
                    }
                }
            });
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    pub fn issuer_names(&self) -> Vec<String> {
        self.issuers
            .iter()
            .map(|i| i.settings.issuer.clone())
            .collect()
    }

    /// Authenticates the value of an `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        if self.anonymous {
            return Ok(Principal::anonymous());
        }
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let hash = token_hash(token);
        if let Some(principal) = self.static_token(&hash) {
            return Ok(principal);
        }
        let now = now();
        let key_held = |issuer: usize, key: &[u8; 32]| {
            self.issuers
                .get(issuer)
                .is_some_and(|i| i.jwks.keys().holds(key))
        };
        if let Some(principal) = self.cache.get(&hash, now, key_held) {
            return Ok(principal);
        }
        let (index, issuer) = self.issuer_of(token)?;
        let verified = issuer
            .verify(token, &self.attributes, now)
            .await
            .map_err(AuthError::Invalid)?;
        self.cache.insert(
            hash,
            verified.principal.clone(),
            (verified.expires, index, verified.key),
            now,
        );
        Ok(verified.principal)
    }

    /// Compares against every configured hash, in constant time each, without stopping at
    /// a match: the time taken says nothing about which token (or how much of it) matched.
    fn static_token(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.sha256.ct_eq(hash)) {
                found = Some(token.principal.clone());
            }
        }
        found
    }

    /// The issuer a token claims (read before verification only to choose whose keys to
    /// verify it with; the verification then checks `iss` again).
    fn issuer_of(&self, token: &str) -> Result<(usize, &jwt::Issuer), AuthError> {
        let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Invalid("not a JWT".to_owned()))?;
        let iss = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        self.issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.settings.issuer == iss)
            .ok_or_else(|| AuthError::Invalid(format!("untrusted issuer `{iss}`")))
    }
}

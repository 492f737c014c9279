//! Signing keys of one issuer: a JWKS from a file or a URL. The algorithm of every key is
//! pinned by the key itself (its `alg`, else its type and curve), never taken from a token:
//! symmetric (`oct`) keys are refused, so HS/RS confusion and `none` cannot happen.
//!
//! A URL is fetched at start, refreshed in the background, and refreshed on an unknown `kid`
//! at most once per `min_refresh` (single flight): an attacker who invents `kid`s cannot
//! make the proxy fetch more often than that. Callers with known keys never wait.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm},
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::config::KeySource;
use crate::sync::{Locked, RwLocked};

pub struct Key {
    pub kid: Option<String>,
    /// SHA-256 of the key's JWK as published: what a cached verification remembers, so
    /// it is honoured only while the same key is still in the set.
    pub fingerprint: [u8; 32],
    pub key: DecodingKey,
    pub algorithms: Vec<Algorithm>,
}

#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document; keys that cannot verify signatures safely are skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match key(jwk) {
                Ok(key) => Some(key),
                Err(why) => {
                    tracing::warn!(kid = ?jwk.common.key_id, %why, "JWKS key skipped");
                    None
                }
            })
            .collect();
        Ok(KeySet { keys })
    }

    /// Whether the set still holds the key with this fingerprint.
    pub fn holds(&self, fingerprint: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.fingerprint == fingerprint)
    }

    /// The key a token names; a token without `kid` may use the only key of a set.
    pub fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
    }
}

fn key(jwk: &Jwk) -> Result<Key, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported curve".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never accepted".to_owned());
        }
        _ => return Err("unsupported key type".to_owned()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => {
            let alg = match alg {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::RS384 => Algorithm::RS384,
                KeyAlgorithm::RS512 => Algorithm::RS512,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::PS384 => Algorithm::PS384,
                KeyAlgorithm::PS512 => Algorithm::PS512,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                other => return Err(format!("algorithm {other:?} is not accepted")),
            };
            if !by_type.contains(&alg) {
                return Err(format!("algorithm {alg:?} does not match the key type"));
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    let published = serde_json::to_vec(jwk).map_err(|e| format!("unusable key: {e}"))?;
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(&Sha256::digest(&published));
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        fingerprint,
        key,
        algorithms,
    })
}

pub struct Jwks {
    source: KeySource,
    min_refresh: Duration,
    current: RwLock<Arc<KeySet>>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Jwks {
    pub fn new(source: KeySource, min_refresh: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Jwks {
            source,
            min_refresh,
            current: RwLock::default(),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            http,
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.current.read_locked().clone()
    }

    /// Loads the keys now (start and background refresh).
    pub async fn refresh(&self) -> Result<usize, String> {
        let _single = self.fetching.lock().await;
        self.fetch().await
    }

    async fn fetch(&self) -> Result<usize, String> {
        *self.last_fetch.locked() = Some(Instant::now());
        let text = match &self.source {
            KeySource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
            KeySource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("cannot fetch JWKS: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("JWKS fetch answered {}", response.status()));
                }
                response
                    .text()
                    .await
                    .map_err(|e| format!("cannot read JWKS: {e}"))?
            }
        };
        let set = KeySet::parse(&text)?;
        let count = set.keys.len();
        *self.current.write_locked() = Arc::new(set);
        Ok(count)
    }

    /// A token named a `kid` this set does not hold: refresh, unless a refresh happened
    /// less than `min_refresh` ago. Concurrent callers share one fetch.
    pub async fn refresh_for_unknown_kid(&self, kid: &str) -> Arc<KeySet> {
        let _single = self.fetching.lock().await;
        if self.keys().find(Some(kid)).is_some() {
            return self.keys();
        }
        let recent = self
            .last_fetch
            .locked()
            .is_some_and(|at| at.elapsed() < self.min_refresh);
        if !recent && let Err(e) = self.fetch().await {
            tracing::warn!(error = %e, "JWKS refresh for an unknown key failed");
        }
        self.keys()
    }
}

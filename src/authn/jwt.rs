//! One trusted issuer: verify a JWT against its keys and turn its claims into a principal.
//! `iss`, `aud`, `exp` and `nbf` are always checked (with the configured leeway); the
//! algorithm must be one the key allows.

use std::{collections::BTreeMap, sync::Arc};

use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use super::{claims, jwks::Jwks, principal::Principal};
use crate::config::{AttrKind, IssuerSettings};

pub struct Issuer {
    pub settings: IssuerSettings,
    pub jwks: Arc<Jwks>,
}

/// A verified token: who, and until when (epoch seconds).
pub struct Verified {
    pub principal: Principal,
    pub expires: u64,
}

impl Issuer {
    pub fn new(settings: IssuerSettings) -> Self {
        let jwks = Arc::new(Jwks::new(settings.keys.clone(), settings.min_refresh));
        Issuer { settings, jwks }
    }

    pub async fn verify(
        &self,
        token: &str,
        declared: &BTreeMap<String, AttrKind>,
    ) -> Result<Verified, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token header: {e}"))?;
        let mut keys = self.jwks.keys();
        if keys.find(header.kid.as_deref()).is_none()
            && let Some(kid) = header.kid.as_deref()
        {
            keys = self.jwks.refresh_for_unknown_kid(kid).await;
        }
        let key = keys
            .find(header.kid.as_deref())
            .ok_or("unknown signing key")?;
        if !key.algorithms.contains(&header.alg) {
            return Err(format!(
                "algorithm {:?} is not allowed for this key",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            decode::<Value>(token, &key.key, &validation).map_err(|e| format!("rejected: {e}"))?;
        let expires = data
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or("`exp` must be a number")?;
        let principal = claims::principal(&data.claims, &self.settings, declared)?;
        Ok(Verified { principal, expires })
    }
}

//! One trusted issuer: verify a JWT against its keys and turn its claims into a principal.
//! `iss`, `aud`, `exp` and `nbf` are always checked (with the configured leeway); the
//! algorithm must be one the key allows; a token may not live longer than the issuer's
//! `max_lifetime`; a header naming critical extensions (`crit`, RFC 7515 §4.1.11) is
//! refused, since this verifier understands none of them.

use std::{collections::BTreeMap, sync::Arc};

use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use super::{claims, jwks::Jwks, principal::Principal};
use crate::config::{AttrKind, IssuerSettings};

pub struct Issuer {
    pub settings: IssuerSettings,
    pub jwks: Arc<Jwks>,
}

/// A verified token: who, until when (epoch seconds), and with which key.
pub struct Verified {
    pub principal: Principal,
    pub expires: u64,
    /// The fingerprint of the key that verified it ([`super::jwks::Key::fingerprint`]).
    pub key: [u8; 32],
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
        now: u64,
    ) -> Result<Verified, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token header: {e}"))?;
        if let Some(crit) = &header.crit {
            // RFC 7515 §4.1.11: a recipient must refuse a JWS whose `crit` lists an
            // extension it does not understand; this verifier understands none.
            return Err(format!(
                "critical header extensions {crit:?} are not understood"
            ));
        }
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
        lifetime(&data.claims, expires, now, &self.settings)?;
        let principal = claims::principal(&data.claims, &self.settings, declared)?;
        Ok(Verified {
            principal,
            expires,
            key: key.fingerprint,
        })
    }
}

/// A token may live at most `max_lifetime`: counted from `iat` when it has one (which may
/// not lie in the future), and in any case from now. Without this, a token with `exp` in
/// the year 9999 would be a credential forever.
fn lifetime(
    claims: &Value,
    expires: u64,
    now: u64,
    settings: &IssuerSettings,
) -> Result<(), String> {
    let (max, leeway) = (settings.max_lifetime.as_secs(), settings.leeway.as_secs());
    if expires.saturating_sub(now) > max.saturating_add(leeway) {
        return Err(format!("token lifetime exceeds the maximum of {max} s"));
    }
    match claims.get("iat") {
        None => Ok(()),
        Some(iat) => {
            let iat = iat.as_u64().ok_or("`iat` must be a number")?;
            if iat > now.saturating_add(leeway) {
                Err("`iat` lies in the future".to_owned())
            } else if expires.saturating_sub(iat) > max.saturating_add(leeway) {
                Err(format!("token lifetime exceeds the maximum of {max} s"))
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::IssuerSettings;

    fn settings() -> IssuerSettings {
        IssuerSettings::for_tests("https://idp.test")
    }

    #[test]
    fn a_token_may_not_outlive_the_maximum_lifetime() {
        let s = settings();
        let now = 1_000_000;
        assert!(lifetime(&json!({}), now + 3_600, now, &s).is_ok());
        assert!(lifetime(&json!({"iat": now}), now + 86_400, now, &s).is_ok());
        // exp in the year 9999
        assert!(lifetime(&json!({}), 253_402_300_799, now, &s).is_err());
        assert!(lifetime(&json!({"iat": now}), 253_402_300_799, now, &s).is_err());
        // issued long ago for a long time, even if little of it is left
        assert!(lifetime(&json!({"iat": now - 200_000}), now + 60, now, &s).is_err());
        assert!(lifetime(&json!({"iat": now + 3_600}), now + 7_200, now, &s).is_err());
        assert!(lifetime(&json!({"iat": "yesterday"}), now + 60, now, &s).is_err());
    }
}

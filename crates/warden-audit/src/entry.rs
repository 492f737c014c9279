//! What a writer puts in an [`Entry`](super::Entry) beyond plain data: principal ids
//! pseudonymised by a keyed hash where configured, and the arguments as commitments plus
//! the paths the operator chose to record in clear.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::commit::{Committed, commit, lookup};
use super::record::{ArgumentsField, hex};
use super::{AuditError, AuditSettings};

/// Salts and values of one record's argument commitments (kept beside the log): the
/// salts by path, and the arguments' canonical bytes (RFC 8785), as the commitments hashed
/// them.
pub type Openings = (BTreeMap<String, [u8; 32]>, Vec<u8>);

/// Reads a pseudonym key file (at least 16 bytes, used as they are).
pub fn read_pseudonym_key(path: &std::path::Path) -> Result<Vec<u8>, AuditError> {
    let key =
        std::fs::read(path).map_err(|e| AuditError::Open(format!("{}: {e}", path.display())))?;
    if key.len() < 16 {
        return Err(AuditError::Open(format!(
            "{}: a pseudonym key needs at least 16 bytes",
            path.display()
        )));
    }
    Ok(key)
}

/// The pseudonym recorded for principal `id` under `key`: `hmac-sha256:<hex>` (the same
/// caller keeps the same pseudonym, so its records still link up; only the key holder can
/// tell who it is).
pub fn pseudonym(key: &[u8], id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    let tag: [u8; 32] = mac.finalize().into_bytes().into();
    format!("{}{}", super::show::PSEUDONYM_PREFIX, hex(&tag))
}

/// Principal ids as the log shows them (pseudonymised when the audit log pseudonymises):
/// what the proxy's own logs print, so they never say more than the audit log does.
#[derive(Clone, Default)]
pub struct Pseudonyms {
    key: Option<std::sync::Arc<Vec<u8>>>,
}

impl Pseudonyms {
    /// The principal id `id`, or its pseudonym.
    pub fn id<'a>(&self, id: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.key {
            Some(key) => pseudonym(key, id).into(),
            None => id.into(),
        }
    }
}

/// Builds entry fields according to the log's settings.
pub struct EntryBuilder {
    pseudonym_key: Option<Vec<u8>>,
    disclose: BTreeMap<String, Vec<String>>,
}

impl EntryBuilder {
    pub(crate) fn new(settings: &AuditSettings) -> Result<EntryBuilder, AuditError> {
        let pseudonym_key = settings
            .pseudonym_key
            .as_deref()
            .map(read_pseudonym_key)
            .transpose()?;
        Ok(EntryBuilder {
            pseudonym_key,
            disclose: settings.disclose.clone(),
        })
    }

    /// How the proxy's logs name principals (as this log does).
    pub fn pseudonyms(&self) -> Pseudonyms {
        Pseudonyms {
            key: self.pseudonym_key.clone().map(std::sync::Arc::new),
        }
    }

    /// A principal id as recorded: replaced by `hmac-sha256:<hex>` when pseudonyms are on
    /// (the same caller keeps the same pseudonym, so its records still link up).
    pub fn principal_id(&self, id: &str) -> String {
        match &self.pseudonym_key {
            Some(key) => pseudonym(key, id),
            None => id.to_owned(),
        }
    }

    /// Commitments to a call's arguments, the configured paths in clear, and the openings.
    pub fn arguments(
        &self,
        tool: &str,
        arguments: &Map<String, Value>,
    ) -> (ArgumentsField, Openings) {
        let whole = Value::Object(arguments.clone());
        let Committed {
            commitments,
            salts,
            canonical,
        } = commit(&whole);
        let mut disclosed = BTreeMap::new();
        for paths in [self.disclose.get("*"), self.disclose.get(tool)]
            .into_iter()
            .flatten()
        {
            for path in paths {
                if let Some(v) = lookup(&whole, path) {
                    disclosed.insert(path.clone(), v.clone());
                }
            }
        }
        (
            ArgumentsField {
                commitments,
                disclosed,
            },
            (salts, canonical),
        )
    }
}

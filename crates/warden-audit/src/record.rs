//! One audit record (audit/FORMAT.md §2): what the proxy fills in per request ([`Entry`]),
//! what the sequencer adds (origin, index, time, replica, previous hash), and the canonical
//! bytes both the Merkle tree and the hash chain are computed over.

mod canonical;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jcs;
use super::merkle::{Hash, leaf_hash};

/// The format version written in every record.
pub const VERSION: u64 = 1;

/// What kind of event a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Request,
    AuthFailure,
    Start,
    Stop,
    Policy,
    Config,
}

/// The caller, as recorded (the id may be pseudonymised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalField {
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// A satisfied shadow policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowField {
    pub policy: String,
    pub effect: String,
    pub would_change: bool,
}

/// The authorization decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionField {
    pub effect: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub shadow: Vec<ShadowField>,
    pub reason: String,
}

/// Argument commitments and disclosed values, by RFC 6901 path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArgumentsField {
    pub commitments: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disclosed: BTreeMap<String, Value>,
}

/// How the request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeField {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<String>,
}

/// What the proxy knows about an event; the sequencer turns it into a [`Record`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<ArgumentsField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeField>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

impl Entry {
    /// An entry of `kind` with nothing else known yet.
    pub fn new(kind: Kind) -> Entry {
        Entry {
            kind,
            request_id: None,
            session: None,
            principal: None,
            action: None,
            resource: None,
            decision: None,
            policy_hash: None,
            schema_hash: None,
            arguments: None,
            outcome: None,
            detail: BTreeMap::new(),
        }
    }
}

pub use canonical::{Place, Template};

/// A sequenced record: the entry plus its place in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u64,
    pub origin: String,
    pub index: u64,
    pub time_us: u64,
    pub replica: String,
    pub prev: String,
    #[serde(flatten)]
    pub entry: Entry,
}

impl Record {
    /// The canonical bytes (RFC 8785) the leaf hash and the segment line are made of.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.place().write(&mut out, &self.entry);
        out
    }

    /// The members the sequencer adds, borrowed.
    pub fn place(&self) -> Place<'_> {
        Place {
            v: self.v,
            origin: &self.origin,
            index: self.index,
            time_us: self.time_us,
            replica: &self.replica,
            prev: &self.prev,
        }
    }

    /// Parses one segment line, requiring it to be exactly canonical.
    pub fn parse_canonical(line: &[u8]) -> Result<(Value, Record), String> {
        let value: Value =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON record: {e}"))?;
        if jcs::to_vec(&value) != line {
            return Err("the record is not in canonical form".to_owned());
        }
        let record: Record = serde_json::from_value(value.clone())
            .map_err(|e| format!("not a version {VERSION} record: {e}"))?;
        if record.v != VERSION {
            return Err(format!("unknown record version {}", record.v));
        }
        Ok((value, record))
    }
}

/// The chain link written in the first record.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `hex(leaf_hash(bytes))`, the value of the next record's `prev`.
pub fn link(bytes: &[u8]) -> (Hash, String) {
    let hash = leaf_hash(bytes);
    (hash, hex(&hash))
}

/// Lowercase hexadecimal of a hash, without allocating (the verifier's chain check).
pub fn hex_hash(hash: &Hash) -> [u8; 64] {
    let mut out = [0u8; 64];
    hex::encode_to_slice(hash, &mut out).expect("64 digits for 32 bytes");
    out
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut entry = Entry::new(Kind::Request);
        entry.action = Some("tools/call".to_owned());
        entry.resource = Some("trading__quote".to_owned());
        Record {
            v: VERSION,
            origin: "test/log".to_owned(),
            index: 7,
            time_us: 1_795_000_000_000_000,
            replica: "r1".to_owned(),
            prev: GENESIS_PREV.to_owned(),
            entry,
        }
    }

    #[test]
    fn canonical_bytes_round_trip() {
        let r = record();
        let bytes = r.canonical();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"action":"tools/call","index":7,"kind":"request","#),
            "{text}"
        );
        let (_, parsed) = Record::parse_canonical(&bytes).unwrap();
        assert_eq!(parsed, r);
    }

    #[test]
    fn non_canonical_lines_are_refused() {
        let bytes = record().canonical();
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&bytes);
        assert!(Record::parse_canonical(&spaced).is_err());
        let reordered = String::from_utf8(bytes).unwrap().replacen(
            r#"{"action":"tools/call","index":7"#,
            r#"{"index":7,"action":"tools/call""#,
            1,
        );
        assert!(Record::parse_canonical(reordered.as_bytes()).is_err());
    }
}

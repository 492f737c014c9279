//! Witnesses: independent parties that cosign a log's checkpoints, each only after checking
//! that it extends the last one it cosigned (C2SP tlog-witness and tlog-cosignature,
//! `cosignature/v1`). A log operator who showed one history to some and another to others
//! would need every witness to cosign both, and a witness never cosigns a checkpoint that
//! does not extend what it saw: it refuses, and says it saw a fork.
//!
//! Here: the witness's keys and cosignatures, its decision on one `add-checkpoint` request
//! ([`Witness`], no I/O: the server around it persists [`WitnessState`] before answering),
//! the request and reply as the protocol writes them, and counting a note's cosignatures.
//!
//! A cosignature is a signature line on the checkpoint note, `— <witness> <base64(key ID ||
//! timestamp || signature)>`, over `cosignature/v1\ntime <timestamp>\n<checkpoint text>`;
//! witness keys are Ed25519 keys of signature type 0x04.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::merkle::{Hash, verify_consistency};
use super::note::{
    self, Checkpoint, NoteError, NoteVerifier, SIG_PREFIX, check_characters, is_valid_name,
    key_hash_for, parse_key_parts_for,
};

/// Signature type byte of witness (cosignature/v1) keys.
const ALG_COSIGNATURE: u8 = 0x04;
/// The most proof lines an `add-checkpoint` request may carry (a tree of 2^63 needs 63).
const MAX_PROOF: usize = 64;

fn message(body: &str, time_s: u64) -> String {
    format!("cosignature/v1\ntime {time_s}\n{body}")
}

/// A witness's signing key.
pub struct WitnessSigner {
    name: String,
    hash: u32,
    key: SigningKey,
}

impl WitnessSigner {
    /// A new key named `name`: the signer, its secret key text and its public key text.
    pub fn generate(name: &str) -> Result<(WitnessSigner, String, String), NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName(name.to_owned()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        let signer = WitnessSigner {
            name: name.to_owned(),
            hash: key_hash_for(name, ALG_COSIGNATURE, &key.verifying_key()),
            key,
        };
        let mut raw = vec![ALG_COSIGNATURE];
        raw.extend_from_slice(signer.key.as_bytes());
        let skey = format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            signer.name,
            signer.hash,
            B64.encode(raw)
        );
        let vkey = signer.vkey();
        Ok((signer, skey, vkey))
    }

    /// Loads a signer from `PRIVATE+KEY+<name>+<key ID>+<base64(0x04 || seed)>`.
    pub fn from_skey(skey: &str) -> Result<WitnessSigner, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let (name, hash, seed) = parse_key_parts_for(rest, ALG_COSIGNATURE)?;
        let key = SigningKey::from_bytes(&seed);
        if key_hash_for(name, ALG_COSIGNATURE, &key.verifying_key()) != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        Ok(WitnessSigner {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key text, `<name>+<key ID>+<base64(0x04 || public key)>`.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ALG_COSIGNATURE];
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{:08x}+{}", self.name, self.hash, B64.encode(raw))
    }

    /// The cosignature line (with its newline) over checkpoint text `body` at `time_s`.
    pub fn cosign(&self, body: &str, time_s: u64) -> String {
        let signature = self.key.sign(message(body, time_s).as_bytes());
        let mut raw = Vec::with_capacity(76);
        raw.extend_from_slice(&self.hash.to_be_bytes());
        raw.extend_from_slice(&time_s.to_be_bytes());
        raw.extend_from_slice(&signature.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// Checks one witness's cosignatures.
#[derive(Clone, Debug)]
pub struct WitnessVerifier {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl WitnessVerifier {
    /// Loads `<name>+<key ID>+<base64(0x04 || public key)>`.
    pub fn from_vkey(vkey: &str) -> Result<WitnessVerifier, NoteError> {
        let (name, hash, bytes) = parse_key_parts_for(vkey.trim(), ALG_COSIGNATURE)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::MalformedKey("not a valid Ed25519 public key"))?;
        if key.is_weak() {
            return Err(NoteError::MalformedKey("weak Ed25519 public key"));
        }
        if key_hash_for(name, ALG_COSIGNATURE, &key) != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        Ok(WitnessVerifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time of this witness's valid cosignature on `note`, if it carries one.
    pub fn cosigned(&self, note: &str) -> Option<u64> {
        let split = note.rfind("\n\n")?;
        let (body, sigs) = (&note[..=split], &note[split + 2..]);
        for line in sigs.lines() {
            let Some((name, b64)) = line
                .strip_prefix(SIG_PREFIX)
                .and_then(|rest| rest.split_once(' '))
            else {
                continue;
            };
            let Ok(raw) = B64.decode(b64) else { continue };
            if name != self.name || raw.len() != 76 || raw[..4] != self.hash.to_be_bytes() {
                continue;
            }
            let time_s = u64::from_be_bytes(raw[4..12].try_into().expect("8 bytes"));
            let signature = Signature::from_bytes(&raw[12..].try_into().expect("64 bytes"));
            if self
                .key
                .verify_strict(message(body, time_s).as_bytes(), &signature)
                .is_ok()
            {
                return Some(time_s);
            }
        }
        None
    }
}

/// What a witness last cosigned, per log origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessState {
    pub logs: BTreeMap<String, Seen>,
}

/// One log's newest cosigned checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub size: u64,
    #[serde(with = "crate::verify::base64_hash")]
    pub root: Hash,
}

/// Why a witness did not cosign (each with the HTTP status the protocol gives it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: not an `add-checkpoint` request.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 403: no configured log signed it.
    #[error("not a checkpoint of a log this witness follows: {0}")]
    UnknownLog(String),
    /// 409: the request's `old` is not the size this witness last cosigned.
    #[error("this witness last cosigned {0} records of that log")]
    Conflict(u64),
    /// 422: the checkpoint does not extend what the witness cosigned.
    #[error("FORK: {0}")]
    Fork(String),
}

impl Refusal {
    /// The HTTP status the protocol answers with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::UnknownLog(_) => 403,
            Refusal::Conflict(_) => 409,
            Refusal::Fork(_) => 422,
        }
    }
}

/// The body of an `add-checkpoint` request: `old <size>`, the consistency proof's hashes in
/// base64 one per line, a blank line, the signed checkpoint note.
pub fn add_checkpoint_request(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&B64.encode(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

fn parse_request(body: &str) -> Result<(u64, Vec<Hash>, &str), Refusal> {
    let bad = |why: &str| Refusal::BadRequest(why.to_owned());
    let (head, note) = body
        .split_once("\n\n")
        .ok_or_else(|| bad("no blank line before the checkpoint"))?;
    let mut lines = head.lines();
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("the first line must be `old <size>`"))?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == MAX_PROOF {
            return Err(bad("too many proof lines"));
        }
        let hash = B64
            .decode(line)
            .ok()
            .and_then(|raw| <Hash>::try_from(raw).ok())
            .ok_or_else(|| bad("a proof line is not the base64 of 32 bytes"))?;
        proof.push(hash);
    }
    Ok((old, proof, note))
}

/// A witness's decisions: which logs it follows, what it cosigned, its key.
pub struct Witness {
    pub signer: WitnessSigner,
    pub logs: Vec<NoteVerifier>,
    pub state: WitnessState,
}

impl Witness {
    /// Decides one `add-checkpoint` request at `now_s`: the cosignature line to answer
    /// with (the state then holds the new checkpoint and must be saved before answering),
    /// or the refusal.
    pub fn add_checkpoint(&mut self, request: &str, now_s: u64) -> Result<String, Refusal> {
        check_characters(request).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let (old, proof, text) = parse_request(request)?;
        let body = self
            .logs
            .iter()
            .find_map(|log| note::open(text, log).ok())
            .ok_or_else(|| Refusal::UnknownLog("no followed log's key signed it".into()))?;
        let checkpoint =
            Checkpoint::parse(&body).map_err(|e| Refusal::BadRequest(e.to_string()))?;
        if old > checkpoint.size {
            return Err(Refusal::BadRequest(format!(
                "`old` {old} is larger than the checkpoint's {}",
                checkpoint.size
            )));
        }
        let seen = self.state.logs.get(&checkpoint.origin);
        let (seen_size, seen_root) = match seen {
            Some(s) => (s.size, s.root),
            None => (0, super::merkle::empty_root()),
        };
        if old != seen_size {
            return Err(Refusal::Conflict(seen_size));
        }
        verify_consistency(seen_size, checkpoint.size, &seen_root, &checkpoint.root, &proof)
            .map_err(|e| {
                Refusal::Fork(format!(
                    "the checkpoint of {} records of {} does not extend the {seen_size} this witness cosigned ({e})",
                    checkpoint.size, checkpoint.origin
                ))
            })?;
        self.state.logs.insert(
            checkpoint.origin.clone(),
            Seen {
                size: checkpoint.size,
                root: checkpoint.root,
            },
        );
        Ok(self.signer.cosign(&body, now_s))
    }
}

/// The witnesses among `verifiers` whose valid cosignature `note` carries.
pub fn cosigners<'v>(note: &str, verifiers: &'v [WitnessVerifier]) -> Vec<&'v str> {
    verifiers
        .iter()
        .filter(|v| v.cosigned(note).is_some())
        .map(WitnessVerifier::name)
        .collect()
}

#[cfg(test)]
mod tests;

/// The newest checkpoint in `store` that at least `needed` of `witnesses` cosigned: the
/// log's own signature checks, and its text is that of the log's checkpoint of the same
/// key (which `verify` holds to the records). `None` when there is none.
pub async fn witnessed(
    store: &super::store::Store,
    log: &NoteVerifier,
    witnesses: &[WitnessVerifier],
    needed: usize,
) -> Result<Option<(u64, Vec<String>)>, object_store::Error> {
    use super::verify::listing;
    let found = listing::list(store).await?;
    for object in found.witnessed.iter().rev() {
        let data = listing::read(store, &object.key).await?;
        let Ok(text) = std::str::from_utf8(data.as_ref()) else {
            continue;
        };
        let Ok(body) = note::open(text, log) else {
            continue;
        };
        let names = cosigners(text, witnesses);
        if names.len() < needed {
            continue;
        }
        let key = super::store::checkpoint_key(&store.prefix, object.size, object.time_us);
        let Ok(checkpoint) = listing::read(store, &key).await else {
            continue;
        };
        let same = std::str::from_utf8(checkpoint.as_ref())
            .ok()
            .and_then(|t| note::open(t, log).ok())
            .is_some_and(|b| b == body);
        if same {
            return Ok(Some((
                object.size,
                names.into_iter().map(str::to_owned).collect(),
            )));
        }
    }
    Ok(None)
}

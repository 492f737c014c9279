//! Signed notes and transparency-log checkpoints with Ed25519 keys, following the
//! C2SP specifications c2sp.org/signed-note and c2sp.org/tlog-checkpoint (the
//! format of Go's golang.org/x/mod/sumdb/note).
//!
//! A log publishes its current state as a *checkpoint*: a short text naming the
//! log (its origin), the number of entries and the Merkle root hash. Signing that
//! text as a *note* lets anyone holding the log's public key check that the
//! checkpoint really came from the log, with tools that already speak the format.
//!
//! A note is the text (ending in a newline), a blank line, then one or more
//! signature lines `— <key name> <base64(key ID || signature)>`. Keys are written
//! as text too: the verifier key `<name>+<key ID in hex>+<base64(0x01 || public
//! key)>` can be published; the signer key `PRIVATE+KEY+<name>+<key ID in
//! hex>+<base64(0x01 || seed)>` must be kept secret. The key ID is the first four
//! bytes of SHA-256(name || "\n" || 0x01 || public key), read big-endian.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 keys and key IDs.
const ALG_ED25519: u8 = 0x01;
/// Prefix of every signature line: em dash (U+2014) and a space.
pub(crate) const SIG_PREFIX: &str = "\u{2014} ";
/// At most this many signature lines are read from one note.
const MAX_SIGNATURES: usize = 100;

/// Errors from keys, notes and checkpoints.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key name is empty or contains a space or '+'.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidName(String),
    /// A signer or verifier key is not in the expected text form.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key's stated key ID does not match its name and public key.
    #[error("key ID does not match the key name and public key")]
    KeyHashMismatch,
    /// A note (or a text to sign) is not well formed.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// The note carries no signature by the verifier's key.
    #[error("the note has no signature by the expected key")]
    UnknownKey,
    /// A signature line names the verifier's key but does not verify.
    #[error("a signature by the expected key does not verify")]
    BadSignature,
    /// A checkpoint text is not well formed.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    /// The operating system could not supply randomness for a new key.
    #[error("could not generate a key: {0}")]
    Randomness(String),
}

/// Key names must be non-empty, without Unicode spaces and without '+'.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace) && !name.contains('+')
}

/// The key ID: the first four bytes, big-endian, of
/// SHA-256(name || 0x0A || 0x01 || 32-byte public key).
fn key_hash(name: &str, public: &VerifyingKey) -> u32 {
    key_hash_for(name, ALG_ED25519, public)
}

/// The key ID of a key of signature type `alg`.
pub(crate) fn key_hash_for(name: &str, alg: u8, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg]);
    h.update(public.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Parses the `<name>+<8 lowercase hex>+<base64(0x01 || 32 bytes)>` part shared
/// by both key forms.
fn parse_key_parts(s: &str) -> Result<(&str, u32, [u8; 32]), NoteError> {
    parse_key_parts_for(s, ALG_ED25519)
}

/// [`parse_key_parts`] for keys of signature type `alg`.
pub(crate) fn parse_key_parts_for(s: &str, alg: u8) -> Result<(&str, u32, [u8; 32]), NoteError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("expected <name>+<key ID>+<key>"));
    };
    if !is_valid_name(name) {
        return Err(NoteError::MalformedKey("invalid key name"));
    }
    let lower_hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    if hex.len() != 8 || !hex.bytes().all(lower_hex) {
        return Err(NoteError::MalformedKey(
            "key ID must be 8 lowercase hex digits",
        ));
    }
    let hash = u32::from_str_radix(hex, 16).expect("8 hex digits fit in a u32");
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::MalformedKey("key is not valid base64"))?;
    match raw.split_first() {
        Some((&found, key)) if found == alg => {
            let key = key
                .try_into()
                .map_err(|_| NoteError::MalformedKey("key must be 32 bytes"))?;
            Ok((name, hash, key))
        }
        Some(_) => Err(NoteError::MalformedKey(
            "unsupported key type (only Ed25519: 0x01 for logs, 0x04 for witnesses)",
        )),
        None => Err(NoteError::MalformedKey("empty key")),
    }
}

/// Rejects ASCII control characters other than newline, as the format requires.
pub(crate) fn check_characters(s: &str) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(NoteError::MalformedNote(
            "control character other than newline",
        ));
    }
    Ok(())
}

/// Signs note texts with an Ed25519 key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    hash: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_hash", &format_args!("{:08x}", self.hash))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// Generates a new key named `name` and returns the signer together with its
    /// signer key text (secret) and verifier key text (public).
    pub fn generate(name: &str) -> Result<(NoteSigner, String, String), NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName(name.to_owned()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| NoteError::Randomness(e.to_string()))?;
        let key = SigningKey::from_bytes(&seed);
        let signer = NoteSigner {
            name: name.to_owned(),
            hash: key_hash(name, &key.verifying_key()),
            key,
        };
        let skey = signer.skey();
        let vkey = signer.vkey();
        Ok((signer, skey, vkey))
    }

    /// Loads a signer from its key text `PRIVATE+KEY+<name>+<key ID>+<key>`
    /// (surrounding whitespace is ignored). The key ID must match the key.
    pub fn from_skey(skey: &str) -> Result<NoteSigner, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey(
                "signer key must start with PRIVATE+KEY+",
            ))?;
        let (name, hash, seed) = parse_key_parts(rest)?;
        let key = SigningKey::from_bytes(&seed);
        if key_hash(name, &key.verifying_key()) != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        Ok(NoteSigner {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }

    /// The verifier key text for this signer, safe to publish.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{:08x}+{}", self.name, self.hash, B64.encode(raw))
    }

    fn skey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.hash,
            B64.encode(raw)
        )
    }

    /// Signs `text` and returns the complete note: the text, a blank line and
    /// one signature line. The text must end in a newline and must not contain
    /// control characters other than newlines.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::MalformedNote("text must end in a newline"));
        }
        check_characters(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.hash.to_be_bytes());
        raw.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(raw)
        ))
    }
}

/// Verifies notes signed by one Ed25519 key.
#[derive(Clone, Debug)]
pub struct NoteVerifier {
    name: String,
    hash: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Loads a verifier from its key text `<name>+<key ID>+<key>` (surrounding
    /// whitespace is ignored). The key ID must match the name and key.
    pub fn from_vkey(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let (name, hash, bytes) = parse_key_parts(vkey.trim())?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::MalformedKey("not a valid Ed25519 public key"))?;
        if key.is_weak() {
            return Err(NoteError::MalformedKey("weak Ed25519 public key"));
        }
        if key_hash(name, &key) != hash {
            return Err(NoteError::KeyHashMismatch);
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            hash,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_hash(&self) -> u32 {
        self.hash
    }
}

/// Opens a signed note and returns its text once a signature by `verifier`
/// has been checked.
///
/// Signature lines from other keys (a different name or key ID) are ignored,
/// as the format requires. Every line that claims the verifier's name and key
/// ID must verify, or the whole note is rejected with [`NoteError::BadSignature`];
/// with no such line the result is [`NoteError::UnknownKey`].
pub fn open(note: &str, verifier: &NoteVerifier) -> Result<String, NoteError> {
    check_characters(note)?;
    // The text ends at the last blank line; the signature block follows it.
    let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let (text, sigs) = (&note[..=split], &note[split + 2..]);
    let Some(sigs) = sigs.strip_suffix('\n') else {
        return Err(NoteError::MalformedNote(
            "signature block must end in a newline",
        ));
    };

    let mut verified = false;
    for (n, line) in sigs.split('\n').enumerate() {
        if n == MAX_SIGNATURES {
            return Err(NoteError::MalformedNote("too many signatures"));
        }
        let (name, b64) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(NoteError::MalformedNote("bad signature line"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::MalformedNote("bad signature encoding"))?;
        if !is_valid_name(name) || raw.len() < 5 {
            return Err(NoteError::MalformedNote("bad signature line"));
        }
        let hash = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        if name != verifier.name || hash != verifier.hash {
            continue;
        }
        let signature = <[u8; 64]>::try_from(&raw[4..]).map_err(|_| NoteError::BadSignature)?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| NoteError::BadSignature)?;
        verified = true;
    }
    if verified {
        Ok(text.to_owned())
    } else {
        Err(NoteError::UnknownKey)
    }
}

/// The text of a transparency-log checkpoint (c2sp.org/tlog-checkpoint): the
/// log's origin, its tree size and its Merkle root hash, plus optional
/// extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: one line each for origin, decimal size, base64 root hash
    /// and every extension, each ending in a newline. The fields must already
    /// be valid (non-empty lines without newlines) for [`Checkpoint::parse`]
    /// to read the text back.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint text strictly: a non-empty origin, a decimal size
    /// without sign or leading zeros, a base64 root hash of exactly 32 bytes,
    /// non-empty extension lines, and a final newline.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: &str| NoteError::MalformedCheckpoint(why.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("text must end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(bad("expected origin, size and root hash lines"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let digits_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| digits_ok)
            .ok_or_else(|| bad(&format!("invalid tree size {size:?}")))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or_else(|| bad("root hash must be base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests;

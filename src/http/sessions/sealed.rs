//! Session ids that carry their session (`[sessions] key_file`): the state a replica needs
//! to serve a session it never saw, encrypted and authenticated (AES-256-GCM) with the key
//! file's first key, opened with whichever key of the file sealed it.
//!
//! An id reads `s1.<key id>.<nonce, ciphertext and tag, base64url>`: the key id (the first
//! four bytes of the key's SHA-256, hex) picks the key, so opening costs one decryption and
//! nothing is derived per request. Nonces are random (96 bits); a key seals one id per
//! session, far below the 2^32 messages AES-GCM allows a key with random nonces.
//!
//! Rotation with an overlap window: put a new key first on every replica (the file is read
//! again when it changes), keep the old one below it until every id it sealed is past
//! `max_age_s`, then remove it. A file that no longer parses keeps the keys in force, said
//! in the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::config::SessionKeys;

const PREFIX: &str = "s1";
const TAG_LEN: usize = 16;
/// How often the key file is checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

struct Key {
    id: String,
    key: LessSafeKey,
}

struct Ring {
    /// The sealing key first.
    keys: Vec<Key>,
    /// The file's keys as read, to tell a change.
    source: SessionKeys,
}

impl Ring {
    fn of(source: SessionKeys) -> Ring {
        // Every key is 32 bytes (`SessionKeys::parse`): none is refused by AES-256.
        let keys = source
            .0
            .iter()
            .filter_map(|bytes| {
                Some(Key {
                    id: hex::encode(&sha2::Sha256::digest(bytes)[..4]),
                    key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).ok()?),
                })
            })
            .collect();
        Ring { keys, source }
    }
}

/// The keys of `[sessions] key_file`, as they are now.
pub struct Sealer {
    ring: ArcSwap<Ring>,
    file: PathBuf,
}

/// Binds each ciphertext to this use of the key.
fn aad() -> Aad<&'static [u8]> {
    Aad::from(b"mcp-warden session id v1".as_slice())
}

impl Sealer {
    pub fn new(file: PathBuf, keys: SessionKeys) -> Sealer {
        Sealer {
            ring: ArcSwap::from_pointee(Ring::of(keys)),
            file,
        }
    }

    /// `plain` sealed with the first key, as a session id; `None` when it cannot be (no
    /// randomness for the nonce).
    pub fn seal(&self, plain: &[u8]) -> Option<String> {
        let ring = self.ring.load();
        let key = ring.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plain);
        let tag = key
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                aad(),
                &mut sealed[NONCE_LEN..],
            )
            .ok()?;
        sealed.extend_from_slice(tag.as_ref());
        Some(format!(
            "{PREFIX}.{}.{}",
            key.id,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// How long the id sealing `plain_len` bytes is.
    pub fn sealed_len(plain_len: usize) -> usize {
        // `s1.` + an 8-digit key id + `.` + unpadded base64 of nonce, text and tag.
        PREFIX.len() + 10 + (4 * (NONCE_LEN + plain_len + TAG_LEN)).div_ceil(3)
    }

    /// What `id` carries, if one of the keys sealed it and nothing changed it since.
    pub fn open(&self, id: &str) -> Option<Vec<u8>> {
        let mut parts = id.splitn(3, '.');
        let (prefix, key_id, body) = (parts.next()?, parts.next()?, parts.next()?);
        if prefix != PREFIX {
            return None;
        }
        let ring = self.ring.load();
        let key = ring.keys.iter().find(|k| k.id == key_id)?;
        let mut sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().ok()?;
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                aad(),
                &mut sealed[NONCE_LEN..],
            )
            .ok()?;
        Some(plain.to_vec())
    }

    /// Reads the key file again if it changed; a file that does not parse keeps the keys in
    /// force. True when the keys changed.
    pub fn reload(&self) -> bool {
        let read = std::fs::read_to_string(&self.file)
            .map_err(|e| e.to_string())
            .and_then(|text| SessionKeys::parse(&text));
        match read {
            Ok(keys) if keys != self.ring.load().source => {
                tracing::info!(file = %self.file.display(), keys = keys.0.len(), "session keys read again");
                self.ring.store(Arc::new(Ring::of(keys)));
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(file = %self.file.display(), error = %e, "the session key file cannot be used; the keys in force stay");
                false
            }
        }
    }

    /// Checks the key file every few seconds until `stop`.
    pub fn spawn_reload(self: &Arc<Self>, stop: CancellationToken) {
        let sealer = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RELOAD_CHECK) => {}
                }
                let Some(sealer) = sealer.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || sealer.reload()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(lines: &[&str]) -> SessionKeys {
        SessionKeys::parse(&lines.join("\n")).unwrap()
    }

    #[test]
    fn an_id_opens_with_the_key_that_sealed_it_and_nothing_else() {
        let (a, b) = (SessionKeys::generate_line(), SessionKeys::generate_line());
        let one = Sealer::new("none".into(), keys(&[&a]));
        let id = one.seal(b"{\"state\":1}").unwrap();
        assert!(id.starts_with("s1."), "{id}");
        assert!(
            id.bytes().all(|c| (0x21..=0x7e).contains(&c)),
            "visible ASCII: {id}"
        );
        assert_eq!(one.open(&id).unwrap(), b"{\"state\":1}");
        // Two seals of the same state differ (random nonces).
        assert_ne!(one.seal(b"x").unwrap(), one.seal(b"x").unwrap());
        // Another key does not open it.
        let other = Sealer::new("none".into(), keys(&[&b]));
        assert_eq!(other.open(&id), None);
        // After rotation (new key first, old below) the old id still opens, new ids use
        // the new key; once the old key is removed its ids are gone.
        let rotated = Sealer::new("none".into(), keys(&[&b, &a]));
        assert_eq!(rotated.open(&id).unwrap(), b"{\"state\":1}");
        let newer = rotated.seal(b"y").unwrap();
        assert_eq!(other.open(&newer).unwrap(), b"y");
        assert_eq!(one.open(&newer), None);
    }

    #[test]
    fn a_changed_or_malformed_id_does_not_open() {
        let sealer = Sealer::new("none".into(), keys(&[&SessionKeys::generate_line()]));
        let id = sealer.seal(b"{\"owner\":\"ann\"}").unwrap();
        let mut bytes = id.clone().into_bytes();
        // Every single-character change anywhere in the body is refused.
        let body_at = id.rfind('.').unwrap() + 1;
        for i in body_at..bytes.len() {
            let original = bytes[i];
            bytes[i] = if original == b'A' { b'B' } else { b'A' };
            assert_eq!(
                sealer.open(std::str::from_utf8(&bytes).unwrap()),
                None,
                "{i}"
            );
            bytes[i] = original;
        }
        for bad in [
            "",
            "s1",
            "s1..",
            "s2.abcd.xyz",
            &id[..id.len() - 4],
            &format!("{id}A"),
            "s1.00000000.AAAA",
            "fe0c3a5b-6f2e-4a0b-9d3c-1e2f3a4b5c6d",
            "s1.é.ü",
        ] {
            assert_eq!(sealer.open(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_key_file_is_read_again_and_a_broken_one_keeps_the_keys() {
        let dir = std::env::temp_dir().join(format!("warden-sealed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sessions.key");
        let (a, b) = (SessionKeys::generate_line(), SessionKeys::generate_line());
        std::fs::write(&file, format!("{a}\n")).unwrap();
        let sealer = Sealer::new(file.clone(), keys(&[&a]));
        let old = sealer.seal(b"old").unwrap();
        assert!(!sealer.reload(), "unchanged");
        std::fs::write(&file, format!("{b}\n{a}\n")).unwrap();
        assert!(sealer.reload());
        assert_eq!(sealer.open(&old).unwrap(), b"old");
        let new = sealer.seal(b"new").unwrap();
        std::fs::write(&file, "garbage\n").unwrap();
        assert!(!sealer.reload());
        assert_eq!(sealer.open(&new).unwrap(), b"new");
        std::fs::write(&file, format!("{b}\n")).unwrap();
        assert!(sealer.reload());
        assert_eq!(sealer.open(&old), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

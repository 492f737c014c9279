//! `[sessions]`: sessions that any replica can serve. By default a session lives in the
//! memory of the process that opened it. With `key_file`, the session id carries what a
//! replica needs to serve it, sealed with a key every replica reads from that file; with
//! `redis`, that state is kept in Redis under the session id. The loader reads the key
//! file; validation (no I/O) parses it.

use std::{path::Path, time::Duration};

use serde::Deserialize;

use super::{ConfigError, file::PolicyFile, validate::Issues};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSection {
    /// Keys that seal session ids (`mcp-warden sessions keygen` writes one), one per line,
    /// relative to the config file; the first seals, every one opens. Replicas that read
    /// the same file serve each other's sessions.
    pub key_file: Option<String>,
    /// `redis://host:port/db`: session state kept in Redis instead, for every replica.
    pub redis: Option<String>,
    /// A session id older than this is not restored by a replica that never saw it, in
    /// seconds; default 86 400 (`key_file` only: Redis forgets idle sessions itself).
    pub max_age_s: Option<u64>,
}

/// How sessions travel between replicas.
#[derive(Debug, Clone, Default)]
pub enum SessionSharing {
    /// Each process keeps its own (the default).
    #[default]
    Local,
    /// Sealed into the session id.
    Sealed {
        file: std::path::PathBuf,
        keys: SessionKeys,
        max_age: Duration,
    },
    /// Kept in Redis.
    Redis { url: String },
}

/// 256-bit keys, the sealing one first. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys(pub Vec<[u8; 32]>);

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKeys({} keys)", self.0.len())
    }
}

impl SessionKeys {
    /// Parses a key file: one key per line (32 bytes, standard base64), `#` comments and
    /// blank lines ignored; at least one key, no key twice.
    pub fn parse(text: &str) -> Result<SessionKeys, String> {
        use base64::Engine;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| format!("line {}: not base64", n + 1))?;
            let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                format!("line {}: a key is 32 bytes, this one is {}", n + 1, b.len())
            })?;
            if keys.contains(&key) {
                return Err(format!("line {}: the same key twice", n + 1));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no key in the file (`mcp-warden sessions keygen` makes one)".to_owned());
        }
        Ok(SessionKeys(keys))
    }

    /// A new random key as a line of a key file.
    pub fn generate_line() -> String {
        use base64::Engine;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system's random number generator");
        base64::engine::general_purpose::STANDARD.encode(key)
    }
}

/// Reads the key file, relative to the config file's directory.
pub(super) fn load(
    section: &SessionsSection,
    base: &Path,
    keys: &mut Option<PolicyFile>,
) -> Result<(), ConfigError> {
    if let Some(name) = &section.key_file {
        let path = base.join(name);
        *keys = Some(PolicyFile {
            file: path.display().to_string(),
            text: super::read(&path, "sessions.key_file")?,
        });
    }
    Ok(())
}

pub(super) fn validate(
    section: Option<&SessionsSection>,
    keys: Option<&PolicyFile>,
    issues: &mut Issues,
) -> SessionSharing {
    let Some(s) = section else {
        return SessionSharing::Local;
    };
    let max_age = match s.max_age_s {
        Some(0) => {
            issues.push("sessions.max_age_s", "must be greater than 0");
            Duration::from_secs(86_400)
        }
        Some(secs) => Duration::from_secs(secs),
        None => Duration::from_secs(86_400),
    };
    match (&s.key_file, &s.redis) {
        (Some(_), Some(_)) => {
            issues.push(
                "sessions",
                "`key_file` or `redis`, not both: sessions are sealed into their ids or kept in Redis",
            );
            SessionSharing::Local
        }
        (Some(_), None) => {
            let Some(file) = keys else {
                return SessionSharing::Local;
            };
            match SessionKeys::parse(&file.text) {
                Ok(keys) => SessionSharing::Sealed {
                    file: file.file.clone().into(),
                    keys,
                    max_age,
                },
                Err(e) => {
                    issues.push("sessions.key_file", format!("{}: {e}", file.file));
                    SessionSharing::Local
                }
            }
        }
        (None, Some(url)) => {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                issues.push("sessions.redis", format!("`{url}` is not a redis:// URL"));
            }
            if s.max_age_s.is_some() {
                issues.push(
                    "sessions.max_age_s",
                    "applies to `key_file` only: Redis forgets a session after `server.session_idle_timeout_s` without use",
                );
            }
            SessionSharing::Redis { url: url.clone() }
        }
        (None, None) => SessionSharing::Local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_holds_keys_one_per_line() {
        let (a, b) = (SessionKeys::generate_line(), SessionKeys::generate_line());
        let keys = SessionKeys::parse(&format!("# new\n{a}\n\n# old\n{b}\n")).unwrap();
        assert_eq!(keys.0.len(), 2);
        assert_ne!(keys.0[0], keys.0[1]);
        assert!(!format!("{keys:?}").contains(&a[..8]));
        for (text, error) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("not base64!\n", "line 1: not base64"),
            ("AAAA\n", "32 bytes, this one is 3"),
            (&format!("{a}\n{a}\n"), "line 2: the same key twice"),
        ] {
            let e = SessionKeys::parse(text).unwrap_err();
            assert!(e.contains(error), "{text:?}: {e}");
        }
    }
}

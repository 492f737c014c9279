//! `[audit]`: where the tamper-evident log goes and how durable a record must be before its
//! response leaves. Without the section there is no audit log (and startup says so).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, validate::Issues};
use crate::audit::{AuditSettings, Durability, ObjectLock};

/// The section as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The log's name in every record and checkpoint, e.g. `warden.example.com/audit`.
    pub origin: Option<String>,
    /// `file:///path`, `s3://bucket/prefix` or `memory://`.
    pub store: Option<String>,
    /// S3 options (`endpoint`, `region`, `allow_http`, ...).
    #[serde(default)]
    pub store_options: BTreeMap<String, String>,
    /// WAL, tree state, openings and the generated signing key; relative to the config file.
    pub state_dir: Option<String>,
    /// A C2SP signer key file (`mcp-warden audit keygen`); default: generated in state_dir.
    pub signing_key: Option<String>,
    /// This proxy's name in its records; default `r0`.
    pub replica: Option<String>,
    /// `before-response` (default) or `async`.
    pub durability: Option<String>,
    /// `async` only: microseconds a record may wait for others before their one fsync
    /// (default 1,000; at most 2,000). `before-response` never waits: the fsync in progress
    /// is its window.
    pub group_commit_us: Option<u64>,
    /// Records per segment (default 10,000): a segment is sealed once it holds that many;
    /// the batch that reaches the count is not split, so a segment may hold a batch more.
    pub segment_records: Option<u64>,
    /// Milliseconds before an open segment is sealed (default 1,000; at most 60,000).
    pub seal_interval_ms: Option<u64>,
    /// Seconds between checkpoints of an idle log (default 60).
    pub heartbeat_secs: Option<u64>,
    /// A key file: principal ids are recorded as HMAC-SHA256 pseudonyms.
    pub pseudonym_key: Option<String>,
    /// S3 only: `require` refuses to start unless the bucket has Object Lock on with a
    /// default retention in compliance mode; `check` (the default) warns; `off` skips it.
    pub object_lock: Option<String>,
    /// Argument paths (RFC 6901) recorded in clear, by exposed tool name; `*` for all.
    #[serde(default)]
    pub disclose: BTreeMap<String, Vec<String>>,
    /// Witnesses that cosign each checkpoint (C2SP tlog-witness).
    #[serde(default)]
    pub witnesses: Vec<WitnessSection>,
}

/// `[[audit.witnesses]]`: one witness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessSection {
    /// Its base URL (`<url>/add-checkpoint` is asked).
    pub url: String,
    /// Its public key, `<name>+<key ID>+<base64>` (`mcp-warden witness keygen` writes it).
    pub key: String,
}

pub(super) fn audit(section: Option<&AuditSection>, issues: &mut Issues) -> Option<AuditSettings> {
    let s = section?;
    let origin = s.origin.clone().unwrap_or_else(|| "mcp-warden".to_owned());
    if origin.is_empty()
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        issues.push("audit.origin", "must be non-empty, without spaces or `+`");
    }
    let Some(store) = s.store.clone() else {
        issues.push(
            "audit.store",
            "required: file:///dir, s3://bucket/prefix or memory://",
        );
        return None;
    };
    match url::Url::parse(&store) {
        Ok(u) if matches!(u.scheme(), "file" | "s3" | "memory") => {}
        Ok(u) => issues.push(
            "audit.store",
            format!(
                "unsupported scheme `{}` (use file://, s3:// or memory://)",
                u.scheme()
            ),
        ),
        Err(e) => issues.push("audit.store", format!("not a URL: {e}")),
    }
    let durability = match s.durability.as_deref() {
        None | Some("before-response") => Durability::BeforeResponse,
        Some("async") => Durability::Async,
        Some(other) => {
            issues.push(
                "audit.durability",
                format!("`{other}`: use `before-response` or `async`"),
            );
            Durability::BeforeResponse
        }
    };
    let object_lock = match s.object_lock.as_deref() {
        None | Some("check") => ObjectLock::Check,
        Some("require") => ObjectLock::Require,
        Some("off") => ObjectLock::Off,
        Some(other) => {
            issues.push(
                "audit.object_lock",
                format!("`{other}`: use `require`, `check` or `off`"),
            );
            ObjectLock::Check
        }
    };
    if object_lock == ObjectLock::Require && !store.starts_with("s3://") {
        issues.push(
            "audit.object_lock",
            "`require` applies to s3:// stores only",
        );
    }
    let seal_ms = s.seal_interval_ms.unwrap_or(1_000);
    if !(10..=60_000).contains(&seal_ms) {
        issues.push("audit.seal_interval_ms", "must be between 10 and 60000");
    }
    let group_commit_us = s.group_commit_us.unwrap_or(1_000);
    if group_commit_us > 2_000 {
        issues.push("audit.group_commit_us", "must be at most 2000");
    }
    if s.group_commit_us.is_some() && durability != Durability::Async {
        issues.push(
            "audit.group_commit_us",
            "applies to `durability = \"async\"` only: a before-response record is committed at once",
        );
    }
    let heartbeat = s.heartbeat_secs.unwrap_or(60);
    if !(1..=86_400).contains(&heartbeat) {
        issues.push("audit.heartbeat_secs", "must be between 1 and 86400");
    }
    let segment_records = s.segment_records.unwrap_or(10_000);
    if !(1..=1_000_000).contains(&segment_records) {
        issues.push("audit.segment_records", "must be between 1 and 1000000");
    }
    for (tool, paths) in &s.disclose {
        for p in paths {
            if !p.starts_with('/') {
                issues.push(
                    format!("audit.disclose.{tool}"),
                    format!("`{p}` is not a JSON pointer (it must start with `/`)"),
                );
            }
        }
    }
    let mut witnesses = Vec::new();
    for (i, w) in s.witnesses.iter().enumerate() {
        let at = format!("audit.witnesses[{i}]");
        match url::Url::parse(&w.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => issues.push(
                format!("{at}.url"),
                format!("`{}` is not an http(s) URL", w.url),
            ),
        }
        match crate::audit::witness::WitnessVerifier::from_vkey(&w.key) {
            Ok(key) => witnesses.push(crate::audit::cosign::WitnessSettings {
                url: w.url.clone(),
                key,
            }),
            Err(e) => issues.push(format!("{at}.key"), format!("not a witness key: {e}")),
        }
    }
    Some(AuditSettings {
        witnesses,
        origin,
        store,
        store_options: s.store_options.clone(),
        state_dir: PathBuf::from(
            s.state_dir
                .clone()
                .unwrap_or_else(|| ".mcp-warden/audit".to_owned()),
        ),
        signing_key: s.signing_key.clone().map(PathBuf::from),
        replica: s.replica.clone().unwrap_or_else(|| "r0".to_owned()),
        durability,
        group_commit: Duration::from_micros(group_commit_us),
        segment_records,
        seal_interval: Duration::from_millis(seal_ms),
        heartbeat: Duration::from_secs(heartbeat),
        pseudonym_key: s.pseudonym_key.clone().map(PathBuf::from),
        disclose: s.disclose.clone(),
        object_lock,
    })
}

/// Expands `${VAR}` and `${VAR:-default}` from the environment in the fields that name one
/// replica's log (`origin`, `replica`, `store`, `state_dir`, `signing_key`), so that the
/// replicas of a deployment share one file and each writes a chain of its own (e.g.
/// `origin = "warden.example.com/${POD_NAME}"`).
pub(super) fn expand_env(
    section: &mut AuditSection,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (name, field) in [
        ("audit.origin", &mut section.origin),
        ("audit.replica", &mut section.replica),
        ("audit.store", &mut section.store),
        ("audit.state_dir", &mut section.state_dir),
        ("audit.signing_key", &mut section.signing_key),
    ] {
        if let Some(value) = field.as_mut() {
            *value = super::mcp_json::expand(value, var).map_err(|e| ConfigError::one(name, e))?;
        }
    }
    Ok(())
}

/// Makes the section's relative paths relative to the config file's directory.
pub(super) fn resolve(settings: &mut AuditSettings, base: &Path) {
    let join = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    join(&mut settings.state_dir);
    if let Some(p) = settings.signing_key.as_mut() {
        join(p);
    }
    if let Some(p) = settings.pseudonym_key.as_mut() {
        join(p);
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn each_replica_names_its_own_log_from_the_environment() {
        let mut section = AuditSection {
            origin: Some("warden.example.com/${POD_NAME}".to_owned()),
            replica: Some("${POD_NAME}".to_owned()),
            store: Some("s3://audit/${POD_NAME:-local}".to_owned()),
            state_dir: Some("/var/lib/mcp-warden".to_owned()),
            ..Default::default()
        };
        let env = |name: &str| (name == "POD_NAME").then(|| "mcp-warden-2".to_owned());
        expand_env(&mut section, &env).unwrap();
        assert_eq!(
            section.origin.as_deref(),
            Some("warden.example.com/mcp-warden-2")
        );
        assert_eq!(section.replica.as_deref(), Some("mcp-warden-2"));
        assert_eq!(section.store.as_deref(), Some("s3://audit/mcp-warden-2"));
        let mut unset = AuditSection {
            origin: Some("x/${NOT_SET}".to_owned()),
            ..Default::default()
        };
        let e = expand_env(&mut unset, &env).unwrap_err().to_string();
        assert!(e.contains("audit.origin") && e.contains("NOT_SET"), "{e}");
    }
}

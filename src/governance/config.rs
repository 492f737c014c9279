//! `[limits]`: traffic governance as the operator writes it, and its validation (no I/O,
//! every problem with its path).

use std::num::NonZeroU32;
use std::time::Duration;

use globset::{Glob, GlobSetBuilder};
use serde::Deserialize;

use super::breaker::BreakerSettings;
use super::rate::{KeyPart, RateRule};

/// The section as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Token-bucket rate limits; a call must pass every rule that applies to it.
    #[serde(default)]
    pub rate: Vec<RateSection>,
    /// Calls in flight per backend (default 64); a backend's `limits` overrides it.
    pub concurrency: Option<usize>,
    /// Calls waiting for a slot per backend before "busy" (default 256).
    pub queue: Option<usize>,
    /// Calls in flight per principal, across backends (default: no limit).
    pub principal_concurrency: Option<usize>,
    /// Calls a principal may have waiting before "busy" (default 16).
    pub principal_queue: Option<usize>,
    /// Circuit breakers of every backend (a backend's `limits.breaker` overrides it).
    pub breaker: Option<BreakerSettings>,
    /// Size bound of the response cache, in bytes (default 64 MiB).
    pub cache_max_bytes: Option<u64>,
    /// `redis://host:port/db`: rate-limit buckets shared by every replica.
    pub redis: Option<String>,
    /// With `redis`: a replica that has not read the shared kill switch for this long
    /// refuses every call to a backend until it reads it again (it fails closed: an
    /// operator may have switched something off meanwhile); default 30, 0 never.
    pub kill_switch_stale_s: Option<u64>,
}

/// A backend's `limits`: overrides of the global ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendLimitsSection {
    pub concurrency: Option<usize>,
    pub queue: Option<usize>,
    pub breaker: Option<BreakerSettings>,
    /// Never cache this backend's results, whatever its tools say.
    pub no_cache: Option<bool>,
}

/// A backend's `tools.<name>` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSection {
    /// The longest a call of this tool may take; the backend is told to cancel it then.
    pub timeout_ms: Option<u64>,
    /// Cache successful results this long (opt-in; per caller, never across principals).
    pub cache_ttl_secs: Option<u64>,
    /// Let identical concurrent calls share one backend call (default: on for cacheable
    /// tools, off otherwise — two identical writes are two intended actions).
    pub coalesce: Option<bool>,
    /// The operator vouches that repeating a call is harmless: failed calls (timeouts,
    /// lost connections) may be retried. Never assumed from the backend's own hints.
    pub idempotent: Option<bool>,
    /// Retries of an idempotent call (default 2; 0 turns retries off).
    pub retries: Option<u32>,
}

/// Problems in a backend's `limits` (paths relative to it).
pub fn check_backend_limits(l: &BackendLimitsSection) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if l.concurrency == Some(0) {
        out.push(("concurrency".to_owned(), "must be at least 1".to_owned()));
    }
    if let Some(b) = &l.breaker {
        out.extend(
            check_breaker(b)
                .into_iter()
                .map(|(p, m)| (format!("breaker.{p}"), m)),
        );
    }
    out
}

fn check_breaker(b: &BreakerSettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
        out.push(("failure_ratio".to_owned(), "must be in (0, 1]".to_owned()));
    }
    if b.window == 0 {
        out.push(("window".to_owned(), "must be at least 1".to_owned()));
    }
    if b.open_ms == 0 {
        out.push(("open_ms".to_owned(), "must be at least 1".to_owned()));
    }
    for (name, tier) in &b.tiers {
        for (path, message) in check_breaker(&b.for_tier(tier)) {
            out.push((format!("tiers.{name}.{path}"), message));
        }
    }
    out
}

/// One `[[limits.rate]]` rule.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSection {
    /// Names the rule in errors, logs and audit records.
    pub id: Option<String>,
    /// What the buckets are keyed by: any of `principal`, `role`, `tenant`, `backend`,
    /// `tool` (e.g. `["tenant", "tool"]` for per-tenant per-tool quotas). Empty: one
    /// bucket for every call the rule applies to.
    #[serde(default)]
    pub by: Vec<KeyPart>,
    pub per_second: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    /// Calls allowed at once before the rate applies (default: the rate's count).
    pub burst: Option<u32>,
    /// Exposed tool globs the rule applies to (default: every call).
    pub tools: Option<Vec<String>>,
    /// Backends the rule applies to.
    pub backends: Option<Vec<String>>,
    /// Roles the rule applies to (and, with `by = ["role"]`, the roles it keys by).
    pub roles: Option<Vec<String>>,
}

/// Validated governance settings.
#[derive(Debug, Clone, Default)]
pub struct LimitsSettings {
    pub rate: Vec<RateRule>,
    pub concurrency: usize,
    pub queue: usize,
    pub principal_concurrency: Option<usize>,
    pub principal_queue: usize,
    pub breaker: BreakerSettings,
    pub cache_max_bytes: u64,
    pub redis: Option<String>,
    /// Unread this long, the shared kill switch fails closed (`None`: never).
    pub kill_switch_stale: Option<std::time::Duration>,
}

/// Validates the section; problems are `(path, message)`.
pub fn validate(section: Option<&LimitsSection>) -> (LimitsSettings, Vec<(String, String)>) {
    let mut issues = Vec::new();
    let mut rate = Vec::new();
    let defaults = LimitsSettings {
        rate: Vec::new(),
        concurrency: 64,
        queue: 256,
        principal_concurrency: None,
        principal_queue: 16,
        breaker: BreakerSettings::default(),
        cache_max_bytes: 64 << 20,
        redis: None,
        kill_switch_stale: None,
    };
    let Some(section) = section else {
        return (defaults, issues);
    };
    if section.concurrency == Some(0) {
        issues.push((
            "limits.concurrency".to_owned(),
            "must be at least 1".to_owned(),
        ));
    }
    if section.principal_concurrency == Some(0) {
        issues.push((
            "limits.principal_concurrency".to_owned(),
            "must be at least 1".to_owned(),
        ));
    }
    if let Some(url) = &section.redis
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        issues.push((
            "limits.redis".to_owned(),
            format!("`{url}` is not a redis:// URL"),
        ));
    }
    if let Some(b) = &section.breaker {
        issues.extend(
            check_breaker(b)
                .into_iter()
                .map(|(p, m)| (format!("limits.breaker.{p}"), m)),
        );
    }
    let mut ids = std::collections::HashSet::new();
    for (i, r) in section.rate.iter().enumerate() {
        let path = format!("limits.rate[{i}]");
        let id = r.id.clone().unwrap_or_else(|| format!("rate-{i}"));
        if !ids.insert(id.clone()) {
            issues.push((
                format!("{path}.id"),
                format!("`{id}` is used by another rule"),
            ));
        }
        let counts = [
            (r.per_second, Duration::from_secs(1)),
            (r.per_minute, Duration::from_secs(60)),
            (r.per_hour, Duration::from_secs(3_600)),
        ];
        let given: Vec<(u32, Duration)> = counts
            .iter()
            .filter_map(|(n, unit)| n.map(|n| (n, *unit)))
            .collect();
        let (count, unit) = match given.as_slice() {
            [(n, unit)] if *n > 0 => (*n, *unit),
            [_] => {
                issues.push((path.clone(), "the rate must be at least 1".to_owned()));
                continue;
            }
            _ => {
                issues.push((
                    path.clone(),
                    "set exactly one of per_second, per_minute, per_hour".to_owned(),
                ));
                continue;
            }
        };
        let burst = match NonZeroU32::new(r.burst.unwrap_or(count)) {
            Some(b) => b,
            None => {
                issues.push((format!("{path}.burst"), "must be at least 1".to_owned()));
                continue;
            }
        };
        let tools = match &r.tools {
            Some(globs) => {
                let mut set = GlobSetBuilder::new();
                for g in globs {
                    match Glob::new(g) {
                        Ok(g) => {
                            set.add(g);
                        }
                        Err(e) => issues.push((format!("{path}.tools"), e.to_string())),
                    }
                }
                set.build().ok()
            }
            None => None,
        };
        rate.push(RateRule {
            id,
            by: r.by.clone(),
            period: unit / count,
            burst,
            tools,
            backends: r.backends.clone(),
            roles: r.roles.clone(),
        });
    }
    (
        LimitsSettings {
            rate,
            concurrency: section.concurrency.unwrap_or(defaults.concurrency),
            queue: section.queue.unwrap_or(defaults.queue),
            principal_concurrency: section.principal_concurrency,
            principal_queue: section.principal_queue.unwrap_or(defaults.principal_queue),
            breaker: section.breaker.clone().unwrap_or_default(),
            cache_max_bytes: section.cache_max_bytes.unwrap_or(defaults.cache_max_bytes),
            redis: section.redis.clone(),
            kill_switch_stale: match section.kill_switch_stale_s.unwrap_or(30) {
                0 => None,
                s => Some(std::time::Duration::from_secs(s)),
            },
        },
        issues,
    )
}

/// `[guards]`: the global guard settings, with per-tool ones under `tools."<tool>"`.
#[derive(Debug, Default, Clone)]
pub struct GuardsSection {
    pub global: super::guards::GuardConfig,
    pub tools: std::collections::BTreeMap<String, super::guards::GuardConfig>,
}

impl<'de> Deserialize<'de> for GuardsSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // `tools` is split off first: the settings themselves refuse unknown keys.
        let mut table = toml::Table::deserialize(d)?;
        let tools = match table.remove("tools") {
            Some(t) => t.try_into().map_err(D::Error::custom)?,
            None => Default::default(),
        };
        let global = toml::Value::Table(table)
            .try_into()
            .map_err(D::Error::custom)?;
        Ok(GuardsSection { global, tools })
    }
}

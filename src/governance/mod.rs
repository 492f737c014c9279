//! Traffic governance: the shared state of the governance layers of the call stack (rate
//! limits, concurrency limits, circuit breakers, timeouts). One [`Governance`] per proxy,
//! owned by the hub and handed to each layer as an `Arc`: every session's clone of the
//! stack draws from the same buckets, slots and breakers.

pub mod breaker;
pub mod cache;
pub mod coalesce;
pub mod concurrency;
pub mod config;
pub mod guards;
pub mod rate;
pub mod retry;
pub mod shared;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use breaker::Breakers;
use concurrency::{Gate, Gates};
use rate::{Limited, Limiter, Subject};

pub use config::{LimitsSection, LimitsSettings};

use crate::config::Config;

/// Governance of one backend.
pub struct BackendGovernance {
    pub name: String,
    pub gate: Gate,
    pub breakers: Breakers,
    /// Per tool (the backend's own name).
    pub tool_timeouts: BTreeMap<String, Duration>,
    /// Cacheable tools and their TTL (empty for a `no_cache` backend).
    pub cache_ttl: BTreeMap<String, Duration>,
    /// Tools whose identical concurrent calls share one backend call.
    pub coalesce: BTreeSet<String>,
    /// Idempotent tools and how many retries their calls may get.
    pub retries: BTreeMap<String, u32>,
    pub retry_budget: retry::RetryBudget,
}

impl BackendGovernance {
    /// The governance of backend `b` under the proxy's `[limits]`: its own state (breakers,
    /// slots, retry budget), which lives as long as the backend does.
    pub fn new(l: &LimitsSettings, b: &crate::config::BackendSettings) -> BackendGovernance {
        let o = b.limits.clone().unwrap_or_default();
        let no_cache = o.no_cache.unwrap_or(false);
        let cache_ttl: BTreeMap<String, Duration> = b
            .tools
            .iter()
            .filter(|_| !no_cache)
            .filter_map(|(t, s)| Some((t.clone(), Duration::from_secs(s.cache_ttl_secs?))))
            .collect();
        let coalesce = b
            .tools
            .iter()
            .filter(|(t, s)| s.coalesce.unwrap_or(cache_ttl.contains_key(*t)))
            .map(|(t, _)| t.clone())
            .collect();
        BackendGovernance {
            name: b.name.clone(),
            gate: Gate::new(
                o.concurrency.unwrap_or(l.concurrency),
                o.queue.unwrap_or(l.queue),
            ),
            breakers: Breakers::new(o.breaker.unwrap_or_else(|| l.breaker.clone())),
            tool_timeouts: b
                .tools
                .iter()
                .filter_map(|(t, s)| Some((t.clone(), Duration::from_millis(s.timeout_ms?))))
                .collect(),
            cache_ttl,
            coalesce,
            retries: b
                .tools
                .iter()
                .filter(|(_, s)| s.idempotent == Some(true))
                .map(|(t, s)| (t.clone(), s.retries.unwrap_or(2)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            // Retries may add a fifth to the calls made, plus a reserve of three.
            retry_budget: retry::RetryBudget::new(0.2, 3),
        }
    }
}

/// The governance state of one proxy.
pub struct Governance {
    limiters: Vec<Limiter>,
    /// In-flight limits per principal, when configured.
    pub principals: Option<Gates>,
    pub cache: cache::ResponseCache,
    pub coalescer: coalesce::Coalescer,
    /// Rate-limit buckets shared through Redis, when configured.
    shared: Option<shared::SharedCounters>,
    pub guards: guards::Guards,
}

impl Governance {
    pub fn new(config: &Config) -> Governance {
        let l = &config.limits;
        Governance {
            limiters: l.rate.iter().cloned().map(Limiter::new).collect(),
            principals: l
                .principal_concurrency
                .map(|n| Gates::new(n, l.principal_queue)),
            cache: cache::ResponseCache::new(l.cache_max_bytes),
            coalescer: coalesce::Coalescer::default(),
            // The URL was checked at validation; a client that still cannot be built is
            // reported and the limits hold per process.
            // Validation compiled them already; the empty set is only a fallback.
            guards: guards::Guards::build(&config.guards.global, &config.guards.tools)
                .unwrap_or_else(|_| {
                    guards::Guards::build(&Default::default(), &Default::default())
                        .expect("the built-in guards compile")
                }),
            shared: l.redis.as_deref().and_then(|url| {
                shared::SharedCounters::new(url)
                    .map_err(|e| tracing::error!(error = %e, "Redis client for shared rate limits"))
                    .ok()
            }),
        }
    }

    /// Checks every rate rule that applies to the call; the first that refuses wins.
    pub async fn check_rate(&self, subject: &Subject<'_>) -> Result<(), Limited> {
        for limiter in &self.limiters {
            match &self.shared {
                Some(shared) => limiter.check_shared(shared, subject).await?,
                None => limiter.check(subject)?,
            }
        }
        Ok(())
    }

    /// Whether any rate rule is configured (the layer skips its work otherwise).
    pub fn has_rate_limits(&self) -> bool {
        !self.limiters.is_empty()
    }
}

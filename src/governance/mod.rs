//! Traffic governance: the shared state of the governance layers of the call stack (rate
//! limits, concurrency limits, circuit breakers, timeouts). One [`Governance`] per proxy,
//! owned by the hub and handed to each layer as an `Arc`: every session's clone of the
//! stack draws from the same buckets, slots and breakers.

pub mod breaker;
pub mod concurrency;
pub mod config;
pub mod rate;

use std::collections::BTreeMap;
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
}

/// The governance state of one proxy.
pub struct Governance {
    limiters: Vec<Limiter>,
    /// By backend index.
    pub backends: Vec<BackendGovernance>,
    /// In-flight limits per principal, when configured.
    pub principals: Option<Gates>,
}

impl Governance {
    pub fn new(config: &Config) -> Governance {
        let l = &config.limits;
        let backends = config
            .backends
            .iter()
            .map(|b| {
                let o = b.limits.clone().unwrap_or_default();
                BackendGovernance {
                    name: b.name.clone(),
                    gate: Gate::new(
                        o.concurrency.unwrap_or(l.concurrency),
                        o.queue.unwrap_or(l.queue),
                    ),
                    breakers: Breakers::new(o.breaker.unwrap_or_else(|| l.breaker.clone())),
                    tool_timeouts: b.tool_timeouts.clone(),
                }
            })
            .collect();
        Governance {
            limiters: l.rate.iter().cloned().map(Limiter::new).collect(),
            backends,
            principals: l
                .principal_concurrency
                .map(|n| Gates::new(n, l.principal_queue)),
        }
    }

    /// Checks every rate rule that applies to the call; the first that refuses wins.
    pub fn check_rate(&self, subject: &Subject<'_>) -> Result<(), Limited> {
        for limiter in &self.limiters {
            limiter.check(subject)?;
        }
        Ok(())
    }
}

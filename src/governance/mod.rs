//! Traffic governance: the shared state of the limits, guards and (later) cache layers of
//! the call stack. One [`Governance`] per proxy, owned by the hub, handed to each layer as
//! an `Arc`: every session's clone of the stack draws from the same buckets.

pub mod config;
pub mod rate;

use rate::{Limited, Limiter, Subject};

pub use config::{LimitsSection, LimitsSettings};

/// The governance state of one proxy.
pub struct Governance {
    limiters: Vec<Limiter>,
}

impl Governance {
    pub fn new(settings: &LimitsSettings) -> Governance {
        Governance {
            limiters: settings.rate.iter().cloned().map(Limiter::new).collect(),
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

//! Authentication failures per client address (`auth.failures_per_minute`): how many are
//! recorded, and one record per minute saying a client went over that. The rest are only
//! counted, so a flood of bad tokens cannot write unbounded records.

use std::{
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use governor::{
    Quota, RateLimiter, clock::Clock, middleware::NoOpMiddleware, state::keyed::DashMapStateStore,
};

use super::client::{ClientAddr, limit_key};
use crate::governance::rate::TokioClock;

/// Checks of the failure limiter between sweeps of its idle buckets.
const SWEEP_EVERY: u32 = 1_024;

type Limiter = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, TokioClock, NoOpMiddleware<Duration>>;

/// Authentication failures per client address: how many are recorded, and one record per
/// minute saying a client went over that.
pub(super) struct FailureLimit {
    recorded: Limiter,
    noted: Limiter,
    clock: TokioClock,
    checks: AtomicU32,
}

/// A failure over the limit: when to retry, and whether to record that the limit was hit.
pub(super) struct OverLimit {
    pub retry_after: Duration,
    pub note: bool,
}

impl FailureLimit {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let clock = TokioClock::default();
        FailureLimit {
            recorded: RateLimiter::new(
                Quota::per_minute(per_minute),
                DashMapStateStore::default(),
                clock.clone(),
            ),
            noted: RateLimiter::new(
                Quota::per_minute(NonZeroU32::MIN),
                DashMapStateStore::default(),
                clock.clone(),
            ),
            clock,
            checks: AtomicU32::new(0),
        }
    }

    /// Counts one failure of `client`; `Some` when it is over the limit.
    pub fn check(&self, client: ClientAddr) -> Option<OverLimit> {
        // Requests whose peer is unknown (a host application without connect info) share
        // one bucket: limited together rather than not at all.
        let key = limit_key(client.0.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.recorded.retain_recent();
            self.noted.retain_recent();
        }
        let not_until = self.recorded.check_key(&key).err()?;
        Some(OverLimit {
            retry_after: not_until.wait_time_from(self.clock.now()),
            note: self.noted.check_key(&key).is_ok(),
        })
    }
}

//! Circuit breakers: per backend, and per (tenant, backend) when the caller has a tenant.
//! A breaker opens on `consecutive_failures` failures in a row, or when the failure ratio
//! over the last `window` calls reaches `failure_ratio` (after `min_calls`); while open
//! every call is answered at once; after `open_for` it lets `half_open_probes` calls
//! through, and closes when they succeed (reopens when one fails). Time is tokio's.
//! A caller's subscription tier (a role named in `tiers`) gives its tenant's breakers
//! thresholds of their own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::Locked;
use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub failure_ratio: f64,
    pub window: usize,
    pub min_calls: usize,
    pub open_ms: u64,
    pub half_open_probes: u32,
    /// Separate breakers per (tenant, backend) for callers with a tenant.
    pub per_tenant: bool,
    /// Thresholds by subscription tier: a role name -> what differs for callers in it
    /// (the first of their roles, in name order, that names a tier).
    pub tiers: std::collections::BTreeMap<String, TierBreaker>,
}

/// A tier's breaker thresholds; what it leaves out is the backend's.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierBreaker {
    pub consecutive_failures: Option<u32>,
    pub failure_ratio: Option<f64>,
    pub window: Option<usize>,
    pub min_calls: Option<usize>,
    pub open_ms: Option<u64>,
    pub half_open_probes: Option<u32>,
}

impl BreakerSettings {
    /// These settings with `tier`'s thresholds laid over them.
    pub fn for_tier(&self, tier: &TierBreaker) -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: tier
                .consecutive_failures
                .unwrap_or(self.consecutive_failures),
            failure_ratio: tier.failure_ratio.unwrap_or(self.failure_ratio),
            window: tier.window.unwrap_or(self.window),
            min_calls: tier.min_calls.unwrap_or(self.min_calls),
            open_ms: tier.open_ms.unwrap_or(self.open_ms),
            half_open_probes: tier.half_open_probes.unwrap_or(self.half_open_probes),
            per_tenant: self.per_tenant,
            tiers: Default::default(),
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: 20,
            min_calls: 10,
            open_ms: 30_000,
            half_open_probes: 1,
            per_tenant: true,
            tiers: Default::default(),
        }
    }
}

/// A breaker's state, as metrics and errors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Breaker {
    /// The tier whose thresholds it keeps (`None`: the backend's).
    tier: Option<String>,
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
    opened_at: Instant,
    probes_out: u32,
    probes_ok: u32,
}

impl Breaker {
    fn new(tier: Option<String>) -> Breaker {
        Breaker {
            tier,
            state: State::Closed,
            consecutive: 0,
            recent: VecDeque::new(),
            opened_at: Instant::now(),
            probes_out: 0,
            probes_ok: 0,
        }
    }
}

/// Refused because the breaker is open: retry after `retry_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub retry_after: Duration,
}

/// Every breaker of one backend.
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    /// Each tier's settings, resolved.
    tiers: std::collections::BTreeMap<String, BreakerSettings>,
    by_key: Mutex<HashMap<String, Breaker>>,
}

/// Admission to call through a breaker; report the outcome with [`Breakers::record`].
#[derive(Debug)]
pub struct Ticket {
    key: String,
    probe: bool,
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Breakers {
        let tiers = settings
            .tiers
            .iter()
            .map(|(name, t)| (name.clone(), settings.for_tier(t)))
            .collect();
        Breakers {
            settings,
            tiers,
            by_key: Mutex::new(HashMap::new()),
        }
    }

    /// The breaker key of a call: the tenant when breakers are per tenant.
    pub fn key(&self, tenant: Option<&str>) -> String {
        match tenant {
            Some(t) if self.settings.per_tenant => t.to_owned(),
            _ => String::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.by_key.locked()
    }

    /// The subscription tier of a caller with `roles`: the first, in name order, that
    /// names a tier of these settings.
    pub fn tier(&self, roles: &[String]) -> Option<String> {
        if self.tiers.is_empty() {
            return None;
        }
        self.tiers.keys().find(|t| roles.contains(t)).cloned()
    }

    /// The settings a breaker keeps.
    fn of(&self, tier: Option<&String>) -> &BreakerSettings {
        tier.and_then(|t| self.tiers.get(t))
            .unwrap_or(&self.settings)
    }

    /// Admits a call (of a caller in `tier`), or says the breaker is open.
    pub fn admit(&self, key: String, tier: Option<String>) -> Result<Ticket, Open> {
        let mut all = self.lock();
        let b = all.entry(key.clone()).or_insert_with(|| Breaker::new(tier));
        let settings = self.of(b.tier.as_ref());
        let open_for = Duration::from_millis(settings.open_ms);
        if b.state == State::Open {
            let elapsed = b.opened_at.elapsed();
            if elapsed < open_for {
                return Err(Open {
                    retry_after: open_for - elapsed,
                });
            }
            b.state = State::HalfOpen;
            b.probes_out = 0;
            b.probes_ok = 0;
        }
        if b.state == State::HalfOpen {
            if b.probes_out >= settings.half_open_probes.max(1) {
                return Err(Open {
                    retry_after: Duration::from_millis(100),
                });
            }
            b.probes_out += 1;
            return Ok(Ticket { key, probe: true });
        }
        Ok(Ticket { key, probe: false })
    }

    /// Records how an admitted call ended (`None`: it neither failed nor succeeded, e.g.
    /// the client cancelled it). Returns the breaker's key and new state when the call
    /// changed it (for metrics: updated on transitions only, not per call).
    pub fn record(&self, ticket: Ticket, success: Option<bool>) -> Option<(String, State)> {
        let mut all = self.lock();
        let b = all.get_mut(&ticket.key)?;
        let before = b.state;
        self.apply(b, ticket.probe, success);
        (b.state != before || ticket.probe).then_some((ticket.key, b.state))
    }

    fn apply(&self, b: &mut Breaker, probe: bool, success: Option<bool>) {
        let s = self.of(b.tier.as_ref());
        let Some(ok) = success else {
            if probe {
                b.probes_out = b.probes_out.saturating_sub(1);
            }
            return;
        };
        if probe && b.state == State::HalfOpen {
            if ok {
                b.probes_ok += 1;
                if b.probes_ok >= s.half_open_probes.max(1) {
                    *b = Breaker::new(b.tier.take());
                }
            } else {
                b.state = State::Open;
                b.opened_at = Instant::now();
            }
            return;
        }
        if b.state != State::Closed {
            return;
        }
        b.consecutive = if ok { 0 } else { b.consecutive + 1 };
        b.recent.push_back(ok);
        while b.recent.len() > s.window.max(1) {
            b.recent.pop_front();
        }
        let failures = b.recent.iter().filter(|ok| !**ok).count();
        let ratio_tripped = b.recent.len() >= s.min_calls.max(1)
            && failures as f64 >= s.failure_ratio * b.recent.len() as f64;
        if (s.consecutive_failures > 0 && b.consecutive >= s.consecutive_failures) || ratio_tripped
        {
            b.state = State::Open;
            b.opened_at = Instant::now();
            b.recent.clear();
            b.consecutive = 0;
        }
    }

    /// Closes every breaker of this backend (an operator's reset): calls go through again
    /// and failures count from zero. How many were not closed.
    pub fn reset(&self) -> usize {
        let mut all = self.lock();
        let open = all.values().filter(|b| b.state != State::Closed).count();
        all.clear();
        open
    }

    /// The state of every breaker of this backend, by key (`""`: the backend's own).
    pub fn states(&self) -> Vec<(String, State)> {
        self.lock()
            .iter()
            .map(|(k, b)| (k.clone(), self.shown(b)))
            .collect()
    }

    /// An open breaker whose interval is over lets the next call probe: half open.
    fn shown(&self, b: &Breaker) -> State {
        let open_for = Duration::from_millis(self.of(b.tier.as_ref()).open_ms);
        if b.state == State::Open && b.opened_at.elapsed() >= open_for {
            State::HalfOpen
        } else {
            b.state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerSettings {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window: 10,
            min_calls: 6,
            open_ms: 1_000,
            half_open_probes: 1,
            per_tenant: true,
            tiers: Default::default(),
        })
    }

    fn call(b: &Breakers, ok: bool) -> Result<(), Open> {
        let t = b.admit(String::new(), None)?;
        b.record(t, Some(ok));
        Ok(())
    }

    #[test]
    fn a_reset_closes_an_open_breaker_at_once() {
        let b = breakers();
        for _ in 0..3 {
            call(&b, false).unwrap();
        }
        assert!(call(&b, true).is_err(), "open");
        assert_eq!(b.reset(), 1);
        assert!(call(&b, true).is_ok(), "closed again");
        assert_eq!(b.reset(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_consecutive_failures_answers_at_once_then_probes_and_closes() {
        let b = breakers();
        for _ in 0..3 {
            call(&b, false).unwrap();
        }
        let open = call(&b, true).unwrap_err();
        assert_eq!(open.retry_after, Duration::from_millis(1_000));
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(
            call(&b, true).unwrap_err().retry_after,
            Duration::from_millis(600)
        );
        tokio::time::advance(Duration::from_millis(600)).await;
        // Half open: one probe at a time.
        let probe = b.admit(String::new(), None).unwrap();
        assert!(b.admit(String::new(), None).is_err(), "one probe at a time");
        b.record(probe, Some(true));
        assert_eq!(b.states(), vec![(String::new(), State::Closed)]);
        call(&b, true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens() {
        let b = breakers();
        for _ in 0..3 {
            call(&b, false).unwrap();
        }
        tokio::time::advance(Duration::from_millis(1_000)).await;
        call(&b, false).unwrap();
        assert!(call(&b, true).is_err(), "open again after the failed probe");
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_failure_ratio() {
        let b = breakers();
        for ok in [false, true, false, true, false, true] {
            call(&b, ok).unwrap();
        }
        assert!(call(&b, true).is_err(), "3 of 6 failed: ratio 0.5 reached");
    }

    #[tokio::test(start_paused = true)]
    async fn tenants_have_their_own_breakers() {
        let b = breakers();
        let acme = b.key(Some("acme"));
        for _ in 0..3 {
            let t = b.admit(acme.clone(), None).unwrap();
            b.record(t, Some(false));
        }
        assert!(b.admit(acme, None).is_err());
        assert!(b.admit(b.key(Some("globex")), None).is_ok());
        assert!(b.admit(b.key(None), None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_calls_count_for_nothing() {
        let b = breakers();
        for _ in 0..10 {
            let t = b.admit(String::new(), None).unwrap();
            b.record(t, None);
        }
        call(&b, true).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_tier_keeps_thresholds_of_its_own() {
        let mut settings = BreakerSettings {
            consecutive_failures: 5,
            open_ms: 1_000,
            ..BreakerSettings::default()
        };
        settings.tiers.insert(
            "tier-free".to_owned(),
            TierBreaker {
                consecutive_failures: Some(2),
                open_ms: Some(60_000),
                ..TierBreaker::default()
            },
        );
        let b = Breakers::new(settings);
        let free = b.tier(&["dev".to_owned(), "tier-free".to_owned()]);
        assert_eq!(free.as_deref(), Some("tier-free"));
        assert_eq!(b.tier(&["dev".to_owned()]), None);
        let fail = |key: &str, tier: Option<String>| {
            let t = b.admit(key.to_owned(), tier)?;
            b.record(t, Some(false));
            Ok::<(), Open>(())
        };
        // A free tenant's breaker opens after two failures and stays open a minute...
        fail("acme", free.clone()).unwrap();
        fail("acme", free.clone()).unwrap();
        let open = b.admit("acme".to_owned(), free.clone()).unwrap_err();
        assert!(open.retry_after > Duration::from_secs(50), "{open:?}");
        // ...a paying tenant's after five, for a second.
        for _ in 0..4 {
            fail("globex", None).unwrap();
        }
        assert!(b.admit("globex".to_owned(), None).is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.admit("acme".to_owned(), free).is_err(), "still open");
    }
}

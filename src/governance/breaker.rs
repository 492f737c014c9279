//! Circuit breakers: per backend, and per (tenant, backend) when the caller has a tenant.
//! A breaker opens on `consecutive_failures` failures in a row, or when the failure ratio
//! over the last `window` calls reaches `failure_ratio` (after `min_calls`); while open
//! every call is answered at once; after `open_for` it lets `half_open_probes` calls
//! through, and closes when they succeed (reopens when one fails). Time is tokio's.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

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
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
    opened_at: Instant,
    probes_out: u32,
    probes_ok: u32,
}

impl Breaker {
    fn new() -> Breaker {
        Breaker {
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
        Breakers {
            settings,
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
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a call, or says the breaker is open.
    pub fn admit(&self, key: String) -> Result<Ticket, Open> {
        let open_for = Duration::from_millis(self.settings.open_ms);
        let mut all = self.lock();
        let b = all.entry(key.clone()).or_insert_with(Breaker::new);
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
            if b.probes_out >= self.settings.half_open_probes.max(1) {
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
        let s = &self.settings;
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
                    *b = Breaker::new();
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
        let open_for = Duration::from_millis(self.settings.open_ms);
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
        })
    }

    fn call(b: &Breakers, ok: bool) -> Result<(), Open> {
        let t = b.admit(String::new())?;
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
        let probe = b.admit(String::new()).unwrap();
        assert!(b.admit(String::new()).is_err(), "one probe at a time");
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
            let t = b.admit(acme.clone()).unwrap();
            b.record(t, Some(false));
        }
        assert!(b.admit(acme).is_err());
        assert!(b.admit(b.key(Some("globex"))).is_ok());
        assert!(b.admit(b.key(None)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_calls_count_for_nothing() {
        let b = breakers();
        for _ in 0..10 {
            let t = b.admit(String::new()).unwrap();
            b.record(t, None);
        }
        call(&b, true).unwrap();
    }
}

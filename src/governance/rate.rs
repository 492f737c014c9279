//! Rate limits: GCRA token buckets (governor) keyed by any combination of principal, role,
//! tenant, backend and tool. Each rule owns one keyed limiter; the limiters live in the
//! hub's [`Governance`](super::Governance), behind an `Arc`, so every clone of the call
//! stack draws from the same buckets. The clock is tokio's, so tests pause time instead of
//! sleeping.

use std::num::NonZeroU32;
use std::time::Duration;

use globset::GlobSet;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::authn::Principal;

/// What a rule's buckets are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyPart {
    Principal,
    Role,
    Tenant,
    Backend,
    Tool,
}

/// A validated rate-limit rule.
#[derive(Debug, Clone)]
pub struct RateRule {
    pub id: String,
    pub by: Vec<KeyPart>,
    /// Tokens refilled: one every `period`.
    pub period: Duration,
    pub burst: NonZeroU32,
    /// Only calls of these exposed tools (all calls when `None`).
    pub tools: Option<GlobSet>,
    /// Only these backends.
    pub backends: Option<Vec<String>>,
    /// Only principals holding one of these roles; keyed `role` buckets use these roles.
    pub roles: Option<Vec<String>>,
}

/// tokio's clock as seen by governor: time since the limiter was built.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Keyed = RateLimiter<String, DashMapStateStore<String>, TokioClock, NoOpMiddleware<Duration>>;

/// One rule and its buckets.
pub struct Limiter {
    rule: RateRule,
    buckets: Keyed,
    clock: TokioClock,
    /// Checks since the last sweep of full (idle) buckets.
    checks: std::sync::atomic::AtomicU32,
}

/// Checks between sweeps that drop buckets back at full capacity (idle callers), so the
/// map holds only callers active within about one refill of their burst.
const SWEEP_EVERY: u32 = 4_096;

/// A call refused by a rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub rule: String,
    pub retry_after: Duration,
}

/// What the rate limits look at in a call.
pub struct Subject<'a> {
    pub principal: &'a Principal,
    pub backend: &'a str,
    /// The exposed tool, for tool calls.
    pub tool: Option<&'a str>,
}

impl Limiter {
    pub fn new(rule: RateRule) -> Limiter {
        let quota = Quota::with_period(rule.period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(rule.burst);
        let clock = TokioClock::default();
        Limiter {
            buckets: RateLimiter::new(quota, DashMapStateStore::default(), clock.clone()),
            rule,
            clock,
            checks: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Takes one token from every bucket this call draws on, or says when to retry.
    pub fn check(&self, s: &Subject<'_>) -> Result<(), Limited> {
        let Some(keys) = self.keys(s) else {
            return Ok(());
        };
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.buckets.retain_recent();
        }
        for key in keys {
            if let Err(not_until) = self.buckets.check_key(&key) {
                return Err(Limited {
                    rule: self.rule.id.clone(),
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }

    /// Like [`Limiter::check`], on the buckets every replica shares in Redis; falls back
    /// to this process's buckets when Redis cannot be asked.
    pub async fn check_shared(
        &self,
        shared: &super::shared::SharedCounters,
        s: &Subject<'_>,
    ) -> Result<(), Limited> {
        let Some(keys) = self.keys(s) else {
            return Ok(());
        };
        for key in keys {
            let bucket = format!("{}{key}", self.rule.id);
            match shared
                .take(&bucket, self.rule.period, self.rule.burst.get())
                .await
            {
                Ok(None) => {}
                Ok(Some(wait)) => {
                    return Err(Limited {
                        rule: self.rule.id.clone(),
                        retry_after: wait,
                    });
                }
                Err(()) => {
                    if let Err(not_until) = self.buckets.check_key(&key) {
                        return Err(Limited {
                            rule: self.rule.id.clone(),
                            retry_after: not_until.wait_time_from(self.clock.now()),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The bucket keys of a call; `None` when the rule does not apply to it. A `role` key
    /// yields one bucket per (matching) role the principal holds.
    fn keys(&self, s: &Subject<'_>) -> Option<Vec<String>> {
        let r = &self.rule;
        if let Some(tools) = &r.tools
            && !s.tool.is_some_and(|t| tools.is_match(t))
        {
            return None;
        }
        if let Some(backends) = &r.backends
            && !backends.iter().any(|b| b == s.backend)
        {
            return None;
        }
        let roles: Vec<&str> = match &r.roles {
            Some(wanted) => s
                .principal
                .roles
                .iter()
                .filter(|role| wanted.contains(role))
                .map(String::as_str)
                .collect(),
            None => s.principal.roles.iter().map(String::as_str).collect(),
        };
        if r.roles.is_some() && roles.is_empty() {
            return None;
        }
        let mut keys = vec![String::new()];
        for part in &r.by {
            let values: Vec<String> = match part {
                // The principal's key names its issuer too: the same subject at two issuers
                // is two callers.
                KeyPart::Principal => vec![s.principal.key()],
                KeyPart::Role if roles.is_empty() => vec!["\u{0}no-role".to_owned()],
                KeyPart::Role => roles.iter().map(|r| (*r).to_owned()).collect(),
                KeyPart::Tenant => vec![s.principal.tenant.clone().unwrap_or_default()],
                KeyPart::Backend => vec![s.backend.to_owned()],
                KeyPart::Tool => vec![s.tool.unwrap_or_default().to_owned()],
            };
            keys = keys
                .iter()
                .flat_map(|k| values.iter().map(move |v| format!("{k}\u{1f}{v}")))
                .collect();
        }
        Some(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::Principal;

    fn rule(by: Vec<KeyPart>, roles: Option<Vec<&str>>) -> RateRule {
        RateRule {
            id: "r".to_owned(),
            by,
            period: Duration::from_secs(1),
            burst: NonZeroU32::new(2).unwrap(),
            tools: None,
            backends: None,
            roles: roles.map(|r| r.into_iter().map(str::to_owned).collect()),
        }
    }

    fn principal(id: &str, roles: &[&str]) -> Principal {
        let mut p = Principal::anonymous();
        p.id = id.to_owned();
        p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        p
    }

    fn subject<'a>(p: &'a Principal) -> Subject<'a> {
        Subject {
            principal: p,
            backend: "b",
            tool: Some("b__t"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_on_tokio_time() {
        let l = Limiter::new(rule(vec![KeyPart::Principal], None));
        let alice = principal("alice", &[]);
        assert!(l.check(&subject(&alice)).is_ok());
        assert!(l.check(&subject(&alice)).is_ok());
        let limited = l.check(&subject(&alice)).unwrap_err();
        assert_eq!(limited.rule, "r");
        assert_eq!(limited.retry_after, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(l.check(&subject(&alice)).is_ok());
        assert!(l.check(&subject(&alice)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn principals_have_their_own_buckets_and_roles_share_one() {
        let per_principal = Limiter::new(rule(vec![KeyPart::Principal], None));
        let per_role = Limiter::new(rule(vec![KeyPart::Role], Some(vec!["analyst"])));
        let (a, b) = (principal("a", &["analyst"]), principal("b", &["analyst"]));
        let admin = principal("c", &["admin"]);
        for p in [&a, &a, &b, &b] {
            assert!(per_principal.check(&subject(p)).is_ok());
        }
        assert!(per_role.check(&subject(&a)).is_ok());
        assert!(per_role.check(&subject(&b)).is_ok());
        assert!(
            per_role.check(&subject(&a)).is_err(),
            "the role's bucket is shared"
        );
        assert!(per_role.check(&subject(&b)).is_err());
        for _ in 0..5 {
            assert!(
                per_role.check(&subject(&admin)).is_ok(),
                "rule is for analysts only"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn combined_keys_separate_tenants_per_tool() {
        let l = Limiter::new(rule(vec![KeyPart::Tenant, KeyPart::Tool], None));
        let mut acme = principal("a", &[]);
        acme.tenant = Some("acme".to_owned());
        let mut globex = principal("g", &[]);
        globex.tenant = Some("globex".to_owned());
        let call = |p: &Principal, tool: &'static str| {
            l.check(&Subject {
                principal: p,
                backend: "b",
                tool: Some(tool),
            })
        };
        assert!(call(&acme, "t1").is_ok());
        assert!(call(&acme, "t1").is_ok());
        assert!(call(&acme, "t1").is_err());
        assert!(call(&acme, "t2").is_ok(), "another tool, another bucket");
        assert!(
            call(&globex, "t1").is_ok(),
            "another tenant, another bucket"
        );
    }

    #[tokio::test]
    async fn without_redis_the_local_buckets_still_limit() {
        let shared =
            crate::governance::shared::SharedCounters::new("redis://127.0.0.1:1/").unwrap();
        let l = Limiter::new(rule(vec![KeyPart::Principal], None));
        let alice = principal("alice", &[]);
        assert!(l.check_shared(&shared, &subject(&alice)).await.is_ok());
        assert!(l.check_shared(&shared, &subject(&alice)).await.is_ok());
        assert!(l.check_shared(&shared, &subject(&alice)).await.is_err());
    }
}

//! Session history kept in Redis (`[limits] redis`), so that every replica a session's calls
//! reach sees what it did on the others. Each session has four keys under
//! `mcp-warden:history:<session>:` — its tools (a set, bounded like the local one), its
//! groups (a set), its call count, and its recent calls (a sorted set of times on Redis's
//! own clock, trimmed to the window) — written and read atomically by two Lua scripts, and
//! expiring with the session idle timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{MAX_RECENT, MAX_TOOLS};
use crate::authz::HistoryFacts;

/// KEYS: tools, groups, calls, recent. ARGV: tool, max tools, max recent, window µs,
/// idle ms, then the tool's groups.
const RECORD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) or redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[1], ARGV[1])
end
for i = 6, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
local n = redis.call('INCR', KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[4], now, now .. ':' .. n)
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[3])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1) end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 0
"#;

/// KEYS: tools, groups, calls, recent. ARGV: window µs, idle ms.
const FACTS: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local recent = redis.call('ZCOUNT', KEYS[4], now - tonumber(ARGV[1]), '+inf')
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return {redis.call('SMEMBERS', KEYS[1]), redis.call('SMEMBERS', KEYS[2]), tonumber(redis.call('GET', KEYS[3]) or 0), recent}
"#;

pub struct SharedHistory {
    connection: ConnectionManager,
    record: redis::Script,
    facts: redis::Script,
    window: Duration,
    idle: Duration,
    /// Whether the last attempt reached Redis (to log transitions, not every call).
    reachable: AtomicBool,
}

fn keys(session: &str) -> [String; 4] {
    ["tools", "groups", "calls", "recent"].map(|k| format!("mcp-warden:history:{session}:{k}"))
}

impl SharedHistory {
    /// Connects lazily: a proxy starts even while Redis is down.
    pub fn new(url: &str, window: Duration, idle: Duration) -> Result<SharedHistory, String> {
        Ok(SharedHistory {
            connection: crate::governance::shared::connect(url)?,
            record: redis::Script::new(RECORD),
            facts: redis::Script::new(FACTS),
            window,
            idle,
            reachable: AtomicBool::new(true),
        })
    }

    fn reached<T>(&self, answer: redis::RedisResult<T>) -> Result<T, ()> {
        match answer {
            Ok(v) => {
                if !self.reachable.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        "Redis reachable again: session history is shared across replicas"
                    );
                }
                Ok(v)
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "Redis unreachable: session history holds per process until it is back");
                }
                Err(())
            }
        }
    }

    /// Notes an allowed call of `tool` (in `groups`) by `session`.
    pub async fn record(&self, session: &str, tool: &str, groups: &[String]) -> Result<(), ()> {
        let mut invocation = self.record.prepare_invoke();
        for key in keys(session) {
            invocation.key(key);
        }
        invocation
            .arg(tool)
            .arg(MAX_TOOLS)
            .arg(MAX_RECENT)
            .arg(self.window.as_micros() as u64)
            .arg(self.idle.as_millis().max(1) as u64);
        for group in groups {
            invocation.arg(group);
        }
        let mut connection = self.connection.clone();
        let answer: redis::RedisResult<i64> = invocation.invoke_async(&mut connection).await;
        self.reached(answer).map(drop)
    }

    /// What `session` did so far, on every replica.
    pub async fn facts(&self, session: &str) -> Result<HistoryFacts, ()> {
        let mut invocation = self.facts.prepare_invoke();
        for key in keys(session) {
            invocation.key(key);
        }
        invocation
            .arg(self.window.as_micros() as u64)
            .arg(self.idle.as_millis().max(1) as u64);
        let mut connection = self.connection.clone();
        let answer: redis::RedisResult<(Vec<String>, Vec<String>, i64, i64)> =
            invocation.invoke_async(&mut connection).await;
        let (mut tools, mut groups, calls, recent_calls) = self.reached(answer)?;
        tools.sort();
        groups.sort();
        Ok(HistoryFacts {
            tools,
            groups,
            calls,
            recent_calls,
        })
    }
}

//! Rate-limit buckets shared by every replica through Redis (`[limits] redis = "redis://..."`):
//! the same GCRA as the local limiter, run atomically in a Lua script on Redis's own clock
//! (so replicas' clocks do not matter). If Redis cannot be reached, the replica falls back
//! to its local buckets — limits then hold per process — and says so in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// GCRA: `KEYS[1]` holds the bucket's theoretical arrival time (µs, Redis clock).
/// `ARGV[1]` = emission interval (µs), `ARGV[2]` = burst tolerance (µs). Returns 0 when the
/// call may go, else the µs to wait.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then
  return tat - tolerance - now
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return 0
"#;

pub struct SharedCounters {
    connection: ConnectionManager,
    script: redis::Script,
    /// Whether the last attempt reached Redis (to log transitions, not every call).
    reachable: AtomicBool,
}

/// A connection to the Redis at `url`, made lazily (a proxy starts even while Redis is
/// down), with short timeouts and one retry: every replica-shared state uses this one.
pub fn connect(url: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1);
    client
        .get_connection_manager_lazy(config)
        .map_err(|e| e.to_string())
}

impl SharedCounters {
    /// Connects lazily: a proxy starts even while Redis is down.
    pub fn new(url: &str) -> Result<SharedCounters, String> {
        let connection = connect(url)?;
        Ok(SharedCounters {
            connection,
            script: redis::Script::new(GCRA),
            reachable: AtomicBool::new(true),
        })
    }

    /// Takes a token from `bucket`: `Ok(None)` when the call may go, `Ok(Some(wait))` when
    /// it is limited, `Err` when Redis could not be asked.
    pub async fn take(
        &self,
        bucket: &str,
        period: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, ()> {
        let interval = period.as_micros() as u64;
        let tolerance = interval * u64::from(burst.saturating_sub(1));
        let mut connection = self.connection.clone();
        let answer: Result<u64, _> = self
            .script
            .key(format!("mcp-warden:rate:{bucket}"))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await;
        match answer {
            Ok(wait) => {
                if !self.reachable.swap(true, Ordering::AcqRel) {
                    tracing::info!("Redis reachable again: rate limits are shared across replicas");
                }
                Ok((wait > 0).then(|| Duration::from_micros(wait)))
            }
            Err(e) => {
                if self.reachable.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "Redis unreachable: rate limits hold per process until it is back");
                }
                Err(())
            }
        }
    }
}

//! Identifiers the proxy makes for its own records: request ids, and session ids where the
//! transport has none (`serve --stdio`). A request id is this process's random boot id and
//! a counter, so it is unique across restarts and replicas without a random draw per
//! request; clients never choose it (what a client sends as `x-request-id` is recorded
//! beside it, never instead of it).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static BOOT: OnceLock<String> = OnceLock::new();

/// Seconds since the Unix epoch (0 on a clock set before it).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
static NEXT: AtomicU64 = AtomicU64::new(0);

/// 64 random bits as hex, drawn once per process.
fn boot() -> &'static str {
    BOOT.get_or_init(random_hex)
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Without the OS random source there is nothing unique to draw on: refuse loudly.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{:016x}", u64::from_be_bytes(bytes))
}

/// A new request id: `<boot>-<n>` (`n` in hex, from 1).
pub fn request_id() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) + 1;
    format!("{}-{n:x}", boot())
}

/// A new session id for a transport that has none of its own.
pub fn session_id() -> String {
    format!("{}-{}", boot(), random_hex())
}

/// The request id the HTTP layer assigned (and returned to the client), in the request's
/// extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Whether the MCP handler has written a request's record (in the request's extensions):
/// the HTTP layer records a failed request itself only when no handler did.
#[derive(Debug, Clone, Default)]
pub struct Recorded(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Recorded {
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The id of the session an `initialize` request opens, put in the request's extensions
/// by the HTTP session manager: the id every later request of the session sends.
#[derive(Debug, Clone)]
pub struct OpenedSession(pub std::sync::Arc<str>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_carry_the_boot_id() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.starts_with(boot())));
        assert_ne!(session_id(), session_id());
    }
}

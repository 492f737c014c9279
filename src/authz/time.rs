//! Request time as policies see it: epoch seconds plus the UTC hour and weekday, derived in
//! one place so the proxy and the decision tables agree. RFC 3339 parsing is for decision
//! tables (`time = "2026-11-24T10:00:00Z"`) and the audit tools' time filters.

use super::types::RequestFacts;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 time (like `2026-11-24T10:00:00Z`): {why}")]
pub struct TimeError {
    text: String,
    why: String,
}

/// Request facts at a moment (epoch seconds), with the UTC hour and weekday (0 = Sunday).
pub fn facts_at(
    epoch_seconds: i64,
    client_addr: &str,
    transport: &str,
    session: &str,
) -> RequestFacts {
    let days = epoch_seconds.div_euclid(86_400);
    let second_of_day = epoch_seconds.rem_euclid(86_400);
    RequestFacts {
        epoch_seconds,
        hour: second_of_day / 3_600,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7),
        client_addr: client_addr.to_owned(),
        transport: transport.to_owned(),
        session: session.to_owned(),
        history: Default::default(),
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (`Z` or a numeric offset; fractions of
/// a second are dropped).
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|e| TimeError {
            text: text.to_owned(),
            why: e.to_string(),
        })
}

#[cfg(test)]
mod tests;

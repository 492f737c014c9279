//! Request time as policies see it: epoch seconds plus the UTC hour and weekday, derived in
//! one place so the proxy and the decision tables agree. RFC 3339 parsing is for decision
//! tables (`time = "2026-11-24T10:00:00Z"`); it needs no calendar crate.

use super::types::RequestFacts;

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an RFC 3339 time (like `2026-11-24T10:00:00Z`): {why}")]
pub struct TimeError {
    text: String,
    why: &'static str,
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
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (`Z` or a numeric offset; fractions of
/// a second are dropped).
pub fn parse_rfc3339(text: &str) -> Result<i64, TimeError> {
    let fail = |why| TimeError {
        text: text.to_owned(),
        why,
    };
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(fail("too short"));
    }
    let num = |from: usize, len: usize| -> Result<i64, TimeError> {
        let part = text
            .get(from..from + len)
            .ok_or_else(|| fail("bad digits"))?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(fail("bad digits"));
        }
        part.parse().map_err(|_| fail("bad digits"))
    };
    let sep = |at: usize, allowed: &[u8]| {
        if allowed.contains(&b[at]) {
            Ok(())
        } else {
            Err(fail("bad separator"))
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(fail("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(fail("no such time of day"));
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("empty fraction of a second"));
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && rest.is_ascii()
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':' =>
        {
            let h: i64 = rest[1..3].parse().map_err(|_| fail("bad offset"))?;
            let m: i64 = rest[4..6].parse().map_err(|_| fail("bad offset"))?;
            if h > 23 || m > 59 {
                return Err(fail("bad offset"));
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (h * 3_600 + m * 60)
        }
        _ => return Err(fail("expected `Z` or an offset like `+02:00`")),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3_600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;

//! `audit show`: the records of a log, in order, filtered by time, principal, tool and
//! decision, as a table for people or as the canonical record lines for tools. It reads;
//! it does not verify (that is `audit verify`).

use std::io::Write;

use futures::StreamExt;
use serde_json::Value;

use super::store::Store;
use super::verify::listing;

/// Which records to show; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after this time (microseconds since the epoch).
    pub from_us: Option<u64>,
    /// Records strictly before this time.
    pub to_us: Option<u64>,
    /// `principal.id` equals this.
    pub principal: Option<String>,
    /// `resource` (the exposed tool, prompt or resource) equals this.
    pub tool: Option<String>,
    /// `decision.effect` equals this (`allow` or `deny`).
    pub decision: Option<String>,
}

/// How to print the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One aligned row per record, with a header.
    Table,
    /// The canonical record lines, as stored.
    JsonLines,
}

/// What was shown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Records printed.
    pub matched: u64,
    /// Lines that are not JSON objects (run `audit verify` to see why).
    pub skipped: u64,
}

/// Why the records could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error("cannot read the audit store: {0}")]
    Store(object_store::Error),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

// The causes are part of the messages, not error sources, so they print once.
impl From<object_store::Error> for ShowError {
    fn from(e: object_store::Error) -> Self {
        ShowError::Store(e)
    }
}

impl From<std::io::Error> for ShowError {
    fn from(e: std::io::Error) -> Self {
        ShowError::Output(e)
    }
}

impl Filter {
    /// Whether the record `value` passes.
    pub fn matches(&self, value: &Value) -> bool {
        let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
        let time = value.get("time_us").and_then(Value::as_u64);
        let same = |want: &Option<String>, pointer: &str| {
            want.as_deref()
                .is_none_or(|want| text(pointer) == Some(want))
        };
        self.from_us
            .is_none_or(|from| time.is_some_and(|t| t >= from))
            && self.to_us.is_none_or(|to| time.is_some_and(|t| t < to))
            && same(&self.principal, "/principal/id")
            && same(&self.tool, "/resource")
            && same(&self.decision, "/decision/effect")
    }
}

/// Prints the records of the log in `store` that pass `filter` to `out`.
pub async fn show(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<Shown, ShowError> {
    let listing = listing::list(store).await?;
    let mut shown = Shown::default();
    if format == Format::Table {
        writeln!(out, "{}", row(&HEADER.map(str::to_owned)))?;
    }
    let keys = listing.segments.into_iter().map(|s| s.key).collect();
    let mut reads = listing::read_each(store, keys, 4);
    while let Some(data) = reads.next().await {
        let data = data?;
        for line in data
            .as_ref()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else {
                shown.skipped += 1;
                continue;
            };
            if !filter.matches(&value) {
                continue;
            }
            shown.matched += 1;
            match format {
                Format::JsonLines => {
                    out.write_all(line)?;
                    out.write_all(b"\n")?;
                }
                Format::Table => writeln!(out, "{}", row(&cells(&value)))?,
            }
        }
    }
    out.flush()?;
    Ok(shown)
}

const HEADER: [&str; 9] = [
    "INDEX",
    "TIME (UTC)",
    "KIND",
    "PRINCIPAL",
    "ACTION",
    "RESOURCE",
    "DECISION",
    "STATUS",
    "LATENCY",
];
const WIDTHS: [usize; 9] = [8, 27, 12, 20, 16, 24, 8, 15, 0];

fn row(cells: &[String; 9]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        line.push_str(&format!("{cell:<width$} "));
    }
    line.trim_end().to_owned()
}

fn cells(value: &Value) -> [String; 9] {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map_or_else(|| "-".to_owned(), printable)
    };
    let int = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64);
    [
        int("/index").map_or("-".into(), |i| i.to_string()),
        int("/time_us").map_or("-".into(), rfc3339),
        text("/kind"),
        text("/principal/id"),
        text("/action"),
        text("/resource"),
        text("/decision/effect"),
        text("/outcome/status"),
        int("/outcome/latency_us").map_or("-".into(), latency),
    ]
}

/// A client-chosen string made safe for one table cell: control characters (C0, DEL, C1),
/// line and paragraph separators and bidirectional formatting characters print as
/// `\u{..}` escapes, and a backslash as `\\`, so no tool name or client name can start a
/// row of its own, move the cursor, recolour the terminal or reorder what is shown.
fn printable(s: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !s.chars().any(|c| c == '\\' || unsafe_char(c)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn latency(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// `time_us` (microseconds since the epoch) as RFC 3339 in UTC with microseconds.
pub fn rfc3339(time_us: u64) -> String {
    let seconds = time_us / 1_000_000;
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3_600,
        of_day / 60 % 60,
        of_day % 60,
        time_us % 1_000_000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc3339(1_795_000_000_123_456),
            "2026-11-18T11:06:40.123456Z"
        );
    }

    #[test]
    fn filters_on_every_condition() {
        let r = json!({"time_us": 5_000_000, "principal": {"id": "alice"}, "resource": "t",
            "decision": {"effect": "deny"}});
        assert!(Filter::default().matches(&r));
        let f = Filter {
            from_us: Some(5_000_000),
            to_us: Some(5_000_001),
            principal: Some("alice".into()),
            tool: Some("t".into()),
            decision: Some("deny".into()),
        };
        assert!(f.matches(&r));
        assert!(
            !Filter {
                to_us: Some(5_000_000),
                ..f.clone()
            }
            .matches(&r)
        );
        assert!(
            !Filter {
                principal: Some("bob".into()),
                ..f.clone()
            }
            .matches(&r)
        );
        assert!(
            !Filter {
                decision: Some("allow".into()),
                ..f
            }
            .matches(&r)
        );
    }

    #[test]
    fn rows_show_dashes_for_absent_members() {
        let r = json!({"index": 3, "time_us": 0, "kind": "start"});
        let line = row(&cells(&r));
        assert!(
            line.starts_with("3        1970-01-01T00:00:00.000000Z start"),
            "{line}"
        );
        assert!(line.ends_with("-"), "{line}");
    }

    #[test]
    fn client_chosen_text_cannot_forge_rows_or_drive_the_terminal() {
        // A tool name with a line feed and a fake row, an escape sequence, a C1 CSI, a
        // right-to-left override and a line separator.
        let forged =
            "t\n42       2026-01-01T00:00:00.000000Z request admin tools/call pay allow ok";
        let r = json!({"index": 1, "time_us": 0, "kind": "request",
            "principal": {"id": "eve\u{1b}[2J\u{9b}31m"},
            "resource": forged, "action": "a\u{202e}b\u{2028}c\\u{1b}"});
        let line = row(&cells(&r));
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.contains("t\\u{a}42"), "{line}");
        assert!(line.contains("eve\\u{1b}[2J\\u{9b}31m"), "{line}");
        // A literal backslash is escaped too, so the escapes cannot be forged.
        assert!(line.contains("a\\u{202e}b\\u{2028}c\\\\u{1b}"), "{line}");
    }
}

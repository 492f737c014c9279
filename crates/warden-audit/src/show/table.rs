//! How `audit show` prints one record for people (an aligned table row) and for
//! spreadsheets (a CSV row), with client-chosen text made harmless for either.

use serde_json::Value;

/// The table's columns and their widths (the last one is not padded).
const COLUMNS: [(&str, usize); 9] = [
    ("INDEX", 8),
    ("TIME (UTC)", 27),
    ("KIND", 12),
    ("PRINCIPAL", 20),
    ("ACTION", 16),
    ("RESOURCE", 24),
    ("DECISION", 8),
    ("STATUS", 15),
    ("LATENCY", 0),
];

/// Columns whose values may be shortened to keep the table aligned (numbers and times
/// are never shortened).
const SHORTENED: [bool; 9] = [false, false, true, true, true, true, true, true, false];

/// The CSV columns: every value in full.
pub const CSV_HEADER: [&str; 13] = [
    "index",
    "time",
    "kind",
    "principal",
    "action",
    "resource",
    "decision",
    "policies",
    "status",
    "code",
    "latency_us",
    "session",
    "request_id",
];

/// The table's header line.
pub fn header() -> String {
    line(COLUMNS.map(|(name, _)| name.to_owned()))
}

/// One record as a table row.
pub fn row(value: &Value) -> String {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map_or_else(|| "-".to_owned(), printable)
    };
    let int = |pointer: &str| value.pointer(pointer).and_then(Value::as_u64);
    line([
        int("/index").map_or("-".into(), |i| i.to_string()),
        int("/time_us").map_or("-".into(), rfc3339),
        text("/kind"),
        text("/principal/id"),
        text("/action"),
        text("/resource"),
        text("/decision/effect"),
        text("/outcome/status"),
        int("/outcome/latency_us").map_or("-".into(), latency),
    ])
}

fn line(cells: [String; 9]) -> String {
    let mut line = String::new();
    for ((cell, (_, width)), shorten) in cells.iter().zip(COLUMNS).zip(SHORTENED) {
        let cell = if shorten {
            shortened(cell, width)
        } else {
            cell.into()
        };
        line.push_str(&format!("{cell:<width$} "));
    }
    line.trim_end().to_owned()
}

/// `cell` cut to `width` characters, the last one `…`, when it is longer.
fn shortened(cell: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if cell.chars().count() <= width {
        return cell.into();
    }
    let mut short: String = cell.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short.into()
}

/// One record as a CSV row.
pub fn csv_row(value: &Value) -> [String; 13] {
    let text = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .map_or_else(String::new, spreadsheet_safe)
    };
    let int = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(|v| v.as_i64().map(|i| i.to_string()))
            .unwrap_or_default()
    };
    let policies = value
        .pointer("/decision/policies")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    [
        int("/index"),
        value
            .get("time_us")
            .and_then(Value::as_u64)
            .map(rfc3339)
            .unwrap_or_default(),
        text("/kind"),
        text("/principal/id"),
        text("/action"),
        text("/resource"),
        text("/decision/effect"),
        spreadsheet_safe(&policies),
        text("/outcome/status"),
        int("/outcome/code"),
        int("/outcome/latency_us"),
        text("/session"),
        text("/request_id"),
    ]
}

/// A client-chosen string a spreadsheet will not run as a formula: one that starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's advice for
/// CSV injection). The CSV writer quotes the rest.
fn spreadsheet_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// A client-chosen string made safe for one table cell: control characters (C0, DEL, C1),
/// line and paragraph separators and bidirectional formatting characters print as
/// `\u{..}` escapes, and a backslash as `\\`, so no tool name or client name can start a
/// row of its own, move the cursor, recolour the terminal or reorder what is shown.
pub fn printable(s: &str) -> String {
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
    let time = i64::try_from(time_us)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros);
    match time {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        None => format!("{time_us}µs after 1970"),
    }
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
        assert_eq!(rfc3339(u64::MAX), "18446744073709551615µs after 1970");
    }

    #[test]
    fn rows_show_dashes_for_absent_members() {
        let line = row(&json!({"index": 3, "time_us": 0, "kind": "start"}));
        assert!(
            line.starts_with("3        1970-01-01T00:00:00.000000Z start"),
            "{line}"
        );
        assert!(line.ends_with("-"), "{line}");
    }

    #[test]
    fn long_values_are_shortened_and_the_columns_stay_aligned() {
        let short = row(&json!({"index": 1, "time_us": 0, "kind": "request",
            "principal": {"id": "ann"}, "action": "tools/call", "resource": "t",
            "decision": {"effect": "allow"}, "outcome": {"status": "ok", "latency_us": 5}}));
        let long = row(&json!({"index": 2, "time_us": 0, "kind": "request",
            "principal": {"id": format!("hmac-sha256:{}", "ab".repeat(32))},
            "action": "tools/call", "resource": "a_very_long_backend__a_very_long_tool_name",
            "decision": {"effect": "allow"}, "outcome": {"status": "ok", "latency_us": 5}}));
        let column = |line: &str| line.find("allow").map(|at| line[..at].chars().count());
        assert_eq!(column(&short), column(&long), "{short}\n{long}");
        assert!(long.contains("hmac-sha256:abababa…"), "{long}");
        assert!(long.contains("a_very_long_backend__a_…"), "{long}");
    }

    #[test]
    fn client_chosen_text_cannot_forge_rows_or_drive_the_terminal() {
        // A tool name with a line feed and a fake row, an escape sequence, a C1 CSI, a
        // right-to-left override and a line separator.
        let forged = "t\n42 2026 request admin tools/call pay allow ok";
        let r = json!({"index": 1, "time_us": 0,
            "principal": {"id": "eve\u{1b}[2J\u{9b}31m"},
            "resource": forged, "action": "\u{202e}\\", "kind": "\u{2028}"});
        let line = row(&r);
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.contains("t\\u{a}42"), "{line}");
        assert!(line.contains("eve\\u{1b}[2J\\u{9b}3…"), "{line}");
        // A literal backslash is escaped too, so the escapes cannot be forged.
        assert!(line.contains("\\u{202e}\\\\ "), "{line}");
        assert!(line.contains("\\u{2028}"), "{line}");
    }

    #[test]
    fn csv_cells_are_whole_and_never_formulas() {
        let r = json!({"index": 7, "time_us": 0, "kind": "request",
            "principal": {"id": "=HYPERLINK(\"http://x\")"}, "resource": "a,b\"c\nd",
            "decision": {"effect": "deny", "policies": ["p1", "p2"]},
            "outcome": {"status": "denied", "code": -32003, "latency_us": 12}});
        let cells = csv_row(&r);
        assert_eq!(cells[0], "7");
        assert_eq!(cells[3], "'=HYPERLINK(\"http://x\")");
        assert_eq!(cells[5], "a,b\"c\nd");
        assert_eq!(cells[7], "p1 p2");
        assert_eq!(cells[9], "-32003");
        let mut out = Vec::new();
        let mut writer = csv::Writer::from_writer(&mut out);
        writer.write_record(cells).unwrap();
        drop(writer);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\"a,b\"\"c\nd\""), "{text}");
    }
}

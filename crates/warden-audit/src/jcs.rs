//! RFC 8785 JSON Canonicalization Scheme: the one byte form of a JSON value that every
//! record hash, commitment and result hash is computed over (audit/FORMAT.md §2). Written out
//! here because the build's `serde_json` keeps insertion order (another crate turns on
//! `preserve_order`), and because JCS numbers follow ECMAScript, not Rust's float printing.

use serde_json::Value;

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write(out: &mut Vec<u8>, value: &Value) {
    write_noting(out, value, &mut |_, _| {});
}

/// Appends the canonical bytes of `value` to `out`, telling `note` where each value inside
/// it was written (`value` itself last): a member's canonical bytes are a slice of its
/// parent's, so one pass gives both.
pub fn write_noting(
    out: &mut Vec<u8>,
    value: &Value,
    note: &mut impl FnMut(&Value, std::ops::Range<usize>),
) {
    let start = out.len();
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_noting(out, item, note);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Members sorted by their keys' UTF-16 code units (RFC 8785 §3.2.3).
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_order(a.0, b.0));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, key);
                out.push(b':');
                write_noting(out, item, note);
            }
            out.push(b'}');
        }
    }
    note(value, start..out.len());
}

/// The order of object members: by their keys' UTF-16 code units (RFC 8785 §3.2.3).
pub fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The members of a map with string keys in canonical order. A `BTreeMap` iterates in UTF-8
/// byte order, which is UTF-16 order unless a key holds a character from U+E000 up (lead
/// byte 0xEE or more): only then are the members sorted again.
pub fn members<V>(map: &std::collections::BTreeMap<String, V>) -> Vec<(&String, &V)> {
    let mut members: Vec<(&String, &V)> = map.iter().collect();
    if map.keys().any(|k| k.bytes().any(|b| b >= 0xEE)) {
        members.sort_by(|a, b| utf16_order(a.0, b.0));
    }
    members
}

/// An integer in plain decimal, exactly. A record's own integers stay below 2^53, where
/// this is what RFC 8785 prints; above it this is what [`number`] prints for an integer a
/// client sent, so a record re-serialized from its parsed value has the same bytes.
pub fn integer(out: &mut Vec<u8>, i: i128) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// A number a client sent: an integer that fits 64 bits prints as its exact decimal (what
/// the backend received), everything else as the IEEE-754 double it is, printed as
/// ECMAScript does (RFC 8785 §3.2.2.3). Below 2^53 the two agree; above it RFC 8785 would
/// round the integer to a double, and the record would name another value than the one
/// forwarded (audit/FORMAT.md §2).
fn number(out: &mut Vec<u8>, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        integer(out, i.into());
    } else if let Some(u) = n.as_u64() {
        integer(out, u.into());
    } else {
        double(out, n.as_f64().unwrap_or(0.0));
    }
}

fn double(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        // Negative zero prints as 0.
        out.push(b'0');
        return;
    }
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(f).as_bytes());
}

/// A string, escaped minimally (RFC 8785 §3.2.2.2). Runs that need no escape are
/// copied whole; they are found eight bytes at a time (results of tens of kilobytes are
/// hashed through here).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of eight bytes is a control character, `"` or `\\` (may say yes for a
/// word that has none; never no for one that has).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0;
    below_space
        || zero_in(word ^ (ONES * u64::from(b'"')))
        || zero_in(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn jcs(v: Value) -> String {
        String::from_utf8(to_vec(&v)).unwrap()
    }

    /// A byte at a time, as the rule is written.
    fn escaped_plainly(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn strings_are_escaped_as_the_rule_says(s in "(\\PC|[\\x00-\\x1f\"\\\\]|\u{7f}|\u{e9}|\u{1f600}){0,64}") {
            let mut out = Vec::new();
            string(&mut out, &s);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), escaped_plainly(&s));
        }
    }

    #[test]
    fn sorts_members_and_drops_whitespace() {
        assert_eq!(
            jcs(json!({"b": 1, "a": [true, null, "x"]})),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn sorts_by_utf16_code_units() {
        // RFC 8785 §3.2.3 example ordering: "\u{20ac}" (U+20AC) sorts before "\u{1f600}"
        // (a surrogate pair, 0xD83D) in UTF-16, though not in UTF-8 byte order... and
        // U+FB33 (0xFB33) sorts after the surrogate pair.
        let v = json!({"\u{fb33}": 3, "\u{1f600}": 2, "\u{20ac}": 1});
        assert_eq!(jcs(v), "{\"\u{20ac}\":1,\"\u{1f600}\":2,\"\u{fb33}\":3}");
    }

    #[test]
    fn numbers_print_as_ecmascript() {
        // Values from RFC 8785 Appendix B.
        let cases = [
            (json!(0), "0"),
            (json!(-0.0), "0"),
            (json!(1e21), "1e+21"),
            (json!(1e-7), "1e-7"),
            (json!(0.000001), "0.000001"),
            (json!(333333333.3333333), "333333333.3333333"),
            (json!(9007199254740992_u64), "9007199254740992"),
            (json!(295147905179352830000.0), "295147905179352830000"),
            (json!(4.5), "4.5"),
            (json!(-1), "-1"),
            (json!(1.0), "1"),
            // Integers of 64 bits stay exact (a deliberate difference from RFC 8785).
            (json!(9007199254740993_u64), "9007199254740993"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(i64::MIN), "-9223372036854775808"),
        ];
        for (v, want) in cases {
            assert_eq!(jcs(v.clone()), want, "{v}");
        }
    }

    #[test]
    fn escapes_only_what_it_must() {
        let v = json!("a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}/é\u{7f}");
        assert_eq!(
            jcs(v),
            "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f/é\u{7f}\""
        );
    }
}

//! The fast path must never accept a line the reference method rejects, and must read
//! the same members; it should accept the records the writer produces.

use serde_json::json;

use super::*;
use crate::testlog::TestLog;

/// What the reference method says about `line`: canonical, and the members if a record.
fn reference(line: &[u8]) -> (bool, Option<Fields<'static>>) {
    let parsed = Box::leak(Box::new(serde_json::from_slice::<Value>(line)));
    let (canonical, fields) = slow(line, parsed, &mut Vec::new());
    (canonical, fields.ok())
}

#[track_caller]
fn agrees(line: &[u8]) {
    if let Some(fields) = fast(line) {
        let (canonical, want) = reference(line);
        assert!(
            canonical,
            "fast accepted a non-canonical line: {}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(Some(fields), want, "{}", String::from_utf8_lossy(line));
    }
}

#[tokio::test]
async fn accepts_the_writers_records() {
    let log = TestLog::build(40, 10).await;
    for line in &log.lines {
        let fields = fast(line).expect("a writer's record takes the fast path");
        assert_eq!(Some(fields), reference(line).1);
    }
}

#[test]
fn accepts_canonical_escapes_and_values() {
    let record = json!({
        "v": 1, "origin": "o", "index": 3, "time_us": 9007199254740991_u64, "kind": "request",
        "prev": "00", "replica": "r",
        "detail": {"q": "a\"b\\c\u{8}\u{c}\n\r\t\u{1}\u{1f}/é\u{7f}😀", "": "empty key"},
        "n": [-1, 0, 7, -9007199254740991_i64, true, false, null, [], {}],
    });
    let line = jcs::to_vec(&record);
    assert!(fast(&line).is_some(), "{}", String::from_utf8_lossy(&line));
    agrees(&line);
}

/// RFC 8785 sorts keys by UTF-16 code units: a character above U+FFFF (a surrogate pair,
/// from 0xD800) sorts before one from U+E000, the reverse of their UTF-8 bytes. The fast
/// path takes non-ASCII keys whose order the bytes prove, and leaves that case alone.
#[test]
fn non_ascii_keys_sort_as_utf16() {
    let record = |extra: serde_json::Value| {
        let mut value = json!({
            "v": 1, "origin": "o", "index": 3, "time_us": 5, "kind": "request",
            "prev": "00", "replica": "r",
        });
        value["detail"] = extra;
        jcs::to_vec(&value)
    };
    let plain = record(
        json!({"a": 1, "aé": 2, "é": 3, "ü": 4, "\u{d7ff}": 5, "\u{e000}": 6, "\u{ffff}": 7}),
    );
    assert!(
        fast(&plain).is_some(),
        "{}",
        String::from_utf8_lossy(&plain)
    );
    agrees(&plain);
    let astral = record(json!({"\u{e000}": 1, "😀": 2}));
    let text = String::from_utf8_lossy(&astral).into_owned();
    assert!(text.find('😀') < text.find('\u{e000}'), "{text}");
    assert!(fast(&astral).is_none(), "{text}");
    assert!(reference(&astral).0, "{text}");
    // The same keys in byte order are not canonical, and the fast path must not say so.
    let swapped = text
        .replacen('😀', "\u{0}", 1)
        .replacen('\u{e000}', "😀", 1)
        .replacen('\u{0}', "\u{e000}", 1);
    assert!(fast(swapped.as_bytes()).is_none());
    assert!(!reference(swapped.as_bytes()).0, "{swapped}");
}

#[test]
fn leaves_the_rest_to_the_reference() {
    let base = r#"{"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#;
    assert!(fast(base.as_bytes()).is_some());
    let cases = [
        r#"{"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1} "#,
        r#"{"kind":"k","index":3,"origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3,"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3.0,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":03,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":-0,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":-3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3,"kind":"\u006b","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3,"kind":"\/","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":2}"#,
        r#"{"index":3,"kind":"k","origin":"o","prev":"p","time_us":5,"v":1}"#,
        r#"{"index":9007199254740992,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1,"x":1e2}"#,
        r#"{"a":"\u001F","index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"{"a":"\u000a","index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}"#,
        r#"[1]"#,
        "",
    ];
    for case in cases {
        assert!(fast(case.as_bytes()).is_none(), "{case}");
        agrees(case.as_bytes());
    }
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let line = format!(
        r#"{{"d":{deep},"index":3,"kind":"k","origin":"o","prev":"p","replica":"r","time_us":5,"v":1}}"#
    );
    assert!(fast(line.as_bytes()).is_none());
}

#[tokio::test]
async fn never_accepts_what_the_reference_rejects() {
    let log = TestLog::build(6, 10).await;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bytes: &[u8] = b" \"\\0123456789-+.eE{}[],:tfnu\x00\x1f\x7f\xc3\xa9\xff/abz";
    for line in &log.lines {
        for _ in 0..3_000 {
            let mut mutated = line.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % mutated.len() as u64) as usize;
                let byte = bytes[(next() % bytes.len() as u64) as usize];
                match next() % 3 {
                    0 => mutated[at] = byte,
                    1 => mutated.insert(at, byte),
                    _ => {
                        mutated.remove(at);
                    }
                }
            }
            agrees(&mutated);
        }
    }
}

/// The eight-bytes-at-a-time scan stops at the first `"`, `\` or control character, or
/// leaves fewer than eight bytes for the byte loop; bytes around the thresholds and with
/// the high bit set would expose a wrong flag.
#[test]
fn the_word_scan_stops_where_the_byte_scan_does() {
    let alphabet = [
        0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff,
        b'a',
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|k| alphabet[((seed >> (k % 60)) as usize + k * 7) % alphabet.len()])
            .collect();
        for i in 0..=len {
            let first_hit = bytes[i..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map_or(len, |p| i + p);
            let end = plain_run(&bytes, i);
            assert!(
                end == first_hit || (end < first_hit && end + 8 > len),
                "{bytes:x?} from {i}: {end}, the first hit is at {first_hit}"
            );
        }
    }
}

/// The key-order shortcut says what slice order says, for keys that share prefixes.
#[test]
fn key_order_is_byte_order() {
    let alphabet = [b'a', b'b', b'_', b'z', b'A', b'0', b'~'];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut key = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 12) as usize;
        (0..len)
            .map(|k| alphabet[((seed >> (k * 3 % 60)) as usize) % (2 + k % 5)])
            .collect::<Vec<u8>>()
    };
    for _ in 0..50_000 {
        let (a, b) = (key(), key());
        assert_eq!(ascending(&a, &b), a < b, "{a:?} then {b:?}");
        assert!(!ascending(&a, &a));
    }
}

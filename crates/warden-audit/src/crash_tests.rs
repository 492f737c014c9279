//! Whatever a client sends is relayed and recorded so that the writer, recovery after a
//! crash and the verifier reproduce it byte for byte: arbitrary JSON numbers (subnormals,
//! huge exponents, `-0.0`, integers past 2^53 and past 64 bits, long decimals) and
//! arbitrary strings, disclosed in clear, through append -> kill -> recover -> seal ->
//! verify. The kill is the state directory and the store copied as they are the moment
//! after every record was acknowledged: what a `kill -9` leaves on disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::note::NoteVerifier;
use super::record::Record;
use super::store::Store;
use super::tests::scratch;
use super::{Audit, AuditSettings, Entry, Kind, ObjectLock, jcs, verify};

fn settings(state: &Path, store: &Path) -> AuditSettings {
    AuditSettings {
        origin: "test.example/numbers".to_owned(),
        // Nothing is sealed before the kill: every record is only in the WAL.
        segment_records: 1_000_000,
        seal_interval: Duration::from_secs(3600),
        disclose: BTreeMap::from([("*".to_owned(), vec!["".to_owned()])]),
        object_lock: ObjectLock::Off,
        ..super::tests::settings(state, store)
    }
}

/// `cp -a`, file by file (the store's files are read-only; copies of them too).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name().to_string_lossy().contains('#') {
            // A put in progress (the store stages it beside its key): not on disk as an
            // object yet.
        } else if let Err(e) = std::fs::copy(entry.path(), &target) {
            // Renamed into place (or away) while we looked: what the kill would have seen
            // either way.
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        }
    }
}

/// The arguments object as the proxy parses a client's request body.
fn parse(text: &str) -> Map<String, Value> {
    serde_json::from_str(text).unwrap()
}

/// Appends one record per arguments object, kills, recovers from the copies, and returns
/// the verified store's records in order.
async fn through_a_crash(calls: &[Map<String, Value>]) -> Vec<(Value, Vec<u8>)> {
    let (state, store) = (scratch("num-state"), scratch("num-store"));
    let audit = Audit::open(&settings(&state, &store)).await.unwrap();
    for (n, args) in calls.iter().enumerate() {
        let mut entry = Entry::new(Kind::Request);
        entry.action = Some("tools/call".to_owned());
        entry.resource = Some("t".to_owned());
        let (field, openings) = audit.entries().arguments("t", args);
        entry.arguments = Some(field);
        assert_eq!(audit.append(entry, Some(openings)).await.unwrap(), n as u64);
    }
    // The kill: what is on disk now is what the next start finds.
    let (state2, store2) = (scratch("num-state2"), scratch("num-store2"));
    copy_dir(&state, &state2);
    copy_dir(&store, &store2);
    let key = std::fs::read_to_string(state.join("signing.pub")).unwrap();
    audit.close(Duration::from_secs(5)).await;

    let recovered = Audit::open(&settings(&state2, &store2)).await.unwrap();
    assert!(recovered.flush(Duration::from_secs(10)).await);
    recovered.close(Duration::from_secs(5)).await;

    let verifier = NoteVerifier::from_vkey(key.trim()).unwrap();
    let opened = Store::open(&format!("file://{}", store2.display()), &BTreeMap::new()).unwrap();
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let report = verify::verify(&opened, &verifier, None, now_us).await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.findings);

    let mut segments: Vec<_> = std::fs::read_dir(store2.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let mut records = Vec::new();
    for segment in segments {
        for line in std::fs::read(segment).unwrap().split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let (value, record) = Record::parse_canonical(line).unwrap();
            if record.entry.kind == Kind::Request {
                records.push((value, line.to_vec()));
            }
        }
    }
    // No acknowledged record was dropped by recovery.
    assert_eq!(records.len(), calls.len());
    records
}

/// The disclosed arguments of a record, as the verifier's parser reads them back.
fn disclosed(record: &Value) -> &Value {
    record.pointer("/arguments/disclosed/").unwrap()
}

/// Checks one call: relayed as the same value, recorded as the same value, and the
/// record's bytes canonical.
fn assert_faithful(text: &str, args: &Map<String, Value>, record: &(Value, Vec<u8>)) {
    // Relayed: the backend parses the re-serialized arguments into the same values.
    let relayed: Map<String, Value> = serde_json::from_str(&serde_json::to_string(args).unwrap())
        .unwrap_or_else(|e| panic!("{text}: relayed arguments do not parse: {e}"));
    assert_eq!(&relayed, args, "{text}");
    // Recorded: the disclosed value is the value parsed from the client's text.
    let recorded = disclosed(&record.0);
    assert!(
        same(recorded, &Value::Object(args.clone())),
        "{text}: recorded {recorded}"
    );
    assert_eq!(jcs::to_vec(&record.0), record.1, "{text}");
}

/// The same JSON value, numbers compared as numbers: an integer exactly, a double as its
/// value (RFC 8785 prints `100.0` as `100` and `-0.0` as `0`, which read back as integers).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Exactness of the parse itself: each number is the double (or integer) its text names,
/// as the standard library's correctly rounded parser reads it.
fn assert_exact(number_text: &str, value: &Value) {
    let n = value.as_number().unwrap();
    if let Some(i) = n.as_i64() {
        assert_eq!(number_text.parse::<i64>().ok(), Some(i), "{number_text}");
    } else if let Some(u) = n.as_u64() {
        assert_eq!(number_text.parse::<u64>().ok(), Some(u), "{number_text}");
    } else {
        let want: f64 = number_text.parse().unwrap();
        assert_eq!(
            n.as_f64().unwrap().to_bits(),
            want.to_bits(),
            "{number_text}"
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The value that once made `audit verify` report tampering, recovery drop acknowledged
/// records and the backend receive another number.
#[test]
fn a_number_the_default_parser_rounds_wrongly_is_relayed_recorded_and_verified_exactly() {
    let texts = [
        "1.0715660391465826e-75",
        "-0.0",
        "-0",
        "9007199254740993",
        "18446744073709551615",
        "-9223372036854775808",
        "18446744073709551616",
        "1e308",
        "4.9406564584124654e-324",
        "2.2250738585072011e-308",
        "0.1000000000000000055511151231257827021181583404541015625",
        "123456789012345678901234567890e-10",
        "1E+2",
    ];
    let calls: Vec<Map<String, Value>> = texts
        .iter()
        .map(|t| parse(&format!(r#"{{"amount": {t}}}"#)))
        .collect();
    for (text, args) in texts.iter().zip(&calls) {
        assert_exact(text, &args["amount"]);
    }
    let records = runtime().block_on(through_a_crash(&calls));
    for ((text, args), record) in texts.iter().zip(&calls).zip(&records) {
        assert_faithful(text, args, record);
    }
}

/// JSON number texts of every shape: integers of any size, decimals with long fractions,
/// exponents near and past the double range, subnormals, negative zero.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        "-?[1-9][0-9]{19,40}",
        "-?(0|[1-9][0-9]{0,5})\\.[0-9]{1,60}",
        "-?[1-9]\\.[0-9]{1,25}[eE]\\+?(30[0-7]|[12]?[0-9]{1,2})",
        "-?[1-9]\\.[0-9]{1,25}[eE]-(3[0-9][0-9]|[12]?[0-9]{1,2})",
        (1u64..(1 << 52)).prop_map(|bits| format!("{:e}", f64::from_bits(bits))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:?}")),
        Just("-0.0".to_owned()),
        Just("-0".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_number_or_string_a_client_sends_survives_a_crash_and_verifies(
        calls in prop::collection::vec(
            (prop::collection::vec(number_text(), 1..4), any::<String>()),
            1..6,
        )
    ) {
        let mut texts = Vec::new();
        let mut parsed = Vec::new();
        for (numbers, s) in &calls {
            let text = format!(
                r#"{{"n": [{}], "s": {}, {}: 1}}"#,
                numbers.join(", "),
                serde_json::to_string(s).unwrap(),
                serde_json::to_string(&format!("k{s}")).unwrap(),
            );
            let args = parse(&text);
            for (t, v) in numbers.iter().zip(args["n"].as_array().unwrap()) {
                assert_exact(t, v);
            }
            prop_assert_eq!(args["s"].as_str(), Some(s.as_str()));
            texts.push(text);
            parsed.push(args);
        }
        let records = runtime().block_on(through_a_crash(&parsed));
        for ((text, args), record) in texts.iter().zip(&parsed).zip(&records) {
            assert_faithful(text, args, record);
        }
    }
}

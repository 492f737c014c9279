use super::{facts_at, parse_rfc3339};

#[test]
fn parses_utc_and_offsets() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(parse_rfc3339("2026-01-07T12:00:00Z"), Ok(1_767_787_200));
    assert_eq!(
        parse_rfc3339("2026-01-07T14:00:00.250+02:00"),
        Ok(1_767_787_200)
    );
    assert_eq!(parse_rfc3339("2000-02-29T23:59:59Z"), Ok(951_868_799));
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Ok(-1));
}

#[test]
fn refuses_what_is_not_a_time() {
    for bad in [
        "",
        "2026-01-07",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-01-07T24:00:00Z",
        "2026-01-07T12:00:00",
        "2026-01-07T12:00:00+2",
        "2026-01-07T12:00:00+02:0é",
        "２026-01-07T12:00:00Z",
    ] {
        let e = parse_rfc3339(bad);
        assert!(e.is_err(), "{bad}");
    }
    let msg = parse_rfc3339("2026-01-07T12:00:00")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.starts_with("`2026-01-07T12:00:00` is not an RFC 3339 time"),
        "{msg}"
    );
}

#[test]
fn hour_and_weekday_are_utc() {
    // 2026-11-24 is a Tuesday.
    let f = facts_at(
        parse_rfc3339("2026-11-24T10:30:00Z").unwrap_or_default(),
        "c",
        "http",
        "s",
    );
    assert_eq!((f.hour, f.weekday), (10, 2));
    let f = facts_at(
        parse_rfc3339("2026-11-22T23:00:00Z").unwrap_or_default(),
        "c",
        "http",
        "s",
    );
    assert_eq!((f.hour, f.weekday), (23, 0));
    let f = facts_at(-1, "c", "http", "s");
    assert_eq!((f.hour, f.weekday), (23, 3));
}

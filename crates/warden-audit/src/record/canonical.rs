//! A record's canonical bytes written straight from its fields, members in the order RFC 8785
//! sorts them. This is the sequencer's per-record work: going through a `serde_json::Value`
//! first cost several times more (every key hashed into an insertion-ordered map, then
//! sorted). The test below holds it to the generic JCS serializer byte for byte.

use std::collections::BTreeMap;

use super::super::jcs;
use super::{
    ArgumentsField, DecisionField, Entry, GENESIS_PREV, Kind, OutcomeField, PrincipalField, VERSION,
};

/// The members a sequencer adds to an entry.
pub struct Place<'a> {
    pub v: u64,
    pub origin: &'a str,
    pub index: u64,
    pub time_us: u64,
    pub replica: &'a str,
    pub prev: &'a str,
}

impl Place<'_> {
    /// Appends the canonical bytes of the record made of this place and `entry` to `out`.
    pub fn write(&self, out: &mut Vec<u8>, entry: &Entry) {
        write(out, self, entry, &mut Marks::default())
    }
}

/// A record's canonical bytes before the writer places it in the log: everything but
/// `index`, `prev` and `time_us`, which only the writer knows (written as `0`, 64 zeros and
/// `0`). The request's own task builds it, so the writer thread only copies bytes in and
/// hashes them, and the entry is dropped where it was made.
pub struct Template {
    bytes: Vec<u8>,
    marks: Marks,
}

/// Where the values of `index`, `prev` (its first hex digit) and `time_us` start.
#[derive(Default)]
struct Marks {
    index: usize,
    prev: usize,
    time_us: usize,
}

impl Template {
    pub fn new(origin: &str, replica: &str, entry: &Entry) -> Template {
        let place = Place {
            v: VERSION,
            origin,
            index: 0,
            time_us: 0,
            replica,
            prev: GENESIS_PREV,
        };
        let mut bytes = Vec::with_capacity(1024);
        let mut marks = Marks::default();
        write(&mut bytes, &place, entry, &mut marks);
        Template { bytes, marks }
    }

    /// The most bytes the placed record's line can take: the template, `prev` (64 hex
    /// digits), `index` and `time_us` (at most 20 digits each) and the line feed.
    pub fn placed_len(&self) -> usize {
        self.bytes.len() + 64 + 2 * 20 + 1
    }

    /// Appends the record's canonical bytes at `index` and `time_us`, chained to `prev`
    /// (lowercase hex of the previous leaf hash, 64 digits).
    pub fn place(&self, out: &mut Vec<u8>, index: u64, time_us: u64, prev: &str) {
        debug_assert!(prev.len() == 64 && prev.bytes().all(|b| b.is_ascii_hexdigit()));
        let (b, m) = (&self.bytes, &self.marks);
        out.extend_from_slice(&b[..m.index]);
        jcs::integer(out, index.into());
        out.extend_from_slice(&b[m.index + 1..m.prev]);
        out.extend_from_slice(prev.as_bytes());
        out.extend_from_slice(&b[m.prev + 64..m.time_us]);
        jcs::integer(out, time_us.into());
        out.extend_from_slice(&b[m.time_us + 1..]);
    }
}

fn write(out: &mut Vec<u8>, place: &Place, entry: &Entry, marks: &mut Marks) {
    let mut o = Object::open(out);
    o.opt_str("action", entry.action.as_deref());
    if let Some(a) = &entry.arguments {
        arguments(o.key("arguments"), a);
    }
    if let Some(d) = &entry.decision {
        decision(o.key("decision"), d);
    }
    if !entry.detail.is_empty() {
        string_map(o.key("detail"), &entry.detail);
    }
    let out = o.key("index");
    marks.index = out.len();
    jcs::integer(out, place.index.into());
    o.str("kind", kind(entry.kind));
    o.str("origin", place.origin);
    if let Some(x) = &entry.outcome {
        outcome(o.key("outcome"), x);
    }
    o.opt_str("policy_hash", entry.policy_hash.as_deref());
    let out = o.key("prev");
    marks.prev = out.len() + 1;
    jcs::string(out, place.prev);
    if let Some(p) = &entry.principal {
        principal(o.key("principal"), p);
    }
    o.str("replica", place.replica);
    o.opt_str("request_id", entry.request_id.as_deref());
    o.opt_str("resource", entry.resource.as_deref());
    o.opt_str("schema_hash", entry.schema_hash.as_deref());
    o.opt_str("session", entry.session.as_deref());
    let out = o.key("time_us");
    marks.time_us = out.len();
    jcs::integer(out, place.time_us.into());
    o.int("v", place.v.into());
    o.close();
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Request => "request",
        Kind::AuthFailure => "auth_failure",
        Kind::Start => "start",
        Kind::Stop => "stop",
        Kind::Policy => "policy",
        Kind::Config => "config",
    }
}

fn arguments(out: &mut Vec<u8>, a: &ArgumentsField) {
    let mut o = Object::open(out);
    string_map(o.key("commitments"), &a.commitments);
    if !a.disclosed.is_empty() {
        let out = o.key("disclosed");
        out.push(b'{');
        for (i, (k, v)) in jcs::members(&a.disclosed).into_iter().enumerate() {
            member(out, i, k);
            jcs::write(out, v);
        }
        out.push(b'}');
    }
    o.close();
}

fn decision(out: &mut Vec<u8>, d: &DecisionField) {
    let mut o = Object::open(out);
    o.str("effect", &d.effect);
    strings(o.key("errors"), &d.errors);
    strings(o.key("policies"), &d.policies);
    o.str("reason", &d.reason);
    let out = o.key("shadow");
    out.push(b'[');
    for (i, s) in d.shadow.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut so = Object::open(out);
        so.str("effect", &s.effect);
        so.str("policy", &s.policy);
        so.key("would_change")
            .extend_from_slice(if s.would_change { b"true" } else { b"false" });
        so.close();
    }
    out.push(b']');
    o.close();
}

fn outcome(out: &mut Vec<u8>, x: &OutcomeField) {
    let mut o = Object::open(out);
    if let Some(code) = x.code {
        o.int("code", code.into());
    }
    o.int("latency_us", x.latency_us.into());
    o.opt_str("result_hash", x.result_hash.as_deref());
    o.str("status", &x.status);
    o.close();
}

fn principal(out: &mut Vec<u8>, p: &PrincipalField) {
    let mut o = Object::open(out);
    o.str("id", &p.id);
    o.opt_str("issuer", p.issuer.as_deref());
    o.str("kind", &p.kind);
    if !p.roles.is_empty() {
        strings(o.key("roles"), &p.roles);
    }
    o.opt_str("tenant", p.tenant.as_deref());
    o.close();
}

fn strings(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jcs::string(out, s);
    }
    out.push(b']');
}

fn string_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    out.push(b'{');
    for (i, (k, v)) in jcs::members(map).into_iter().enumerate() {
        member(out, i, k);
        jcs::string(out, v);
    }
    out.push(b'}');
}

/// The separator and key of the `i`-th member of an object.
fn member(out: &mut Vec<u8>, i: usize, key: &str) {
    if i > 0 {
        out.push(b',');
    }
    jcs::string(out, key);
    out.push(b':');
}

/// An object whose members the caller writes in canonical order (keys checked in tests).
struct Object<'o> {
    out: &'o mut Vec<u8>,
    count: usize,
    #[cfg(debug_assertions)]
    last: &'static str,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Object<'o> {
        out.push(b'{');
        Object {
            out,
            count: 0,
            #[cfg(debug_assertions)]
            last: "",
        }
    }

    /// Writes `"key":` and returns the buffer for the value. Keys are ASCII, so byte order
    /// is the canonical order.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        #[cfg(debug_assertions)]
        {
            debug_assert!(self.last < key, "{} before {key}", self.last);
            self.last = key;
        }
        member(self.out, self.count, key);
        self.count += 1;
        self.out
    }

    fn str(&mut self, key: &'static str, value: &str) {
        jcs::string(self.key(key), value);
    }

    fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    fn int(&mut self, key: &'static str, value: i128) {
        jcs::integer(self.key(key), value);
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::super::{Record, ShadowField, VERSION};
    use super::*;

    /// The reference: the generic serializer over the record as a JSON value.
    fn through_value(record: &Record) -> Vec<u8> {
        jcs::to_vec(&serde_json::to_value(record).unwrap())
    }

    fn text() -> impl Strategy<Value = String> {
        // ASCII, escapes, controls, and characters on both sides of U+E000 and U+10000.
        "(?s)[a-z\"\\\\\n\t\u{1}\u{7f}é\u{e000}\u{fb33}\u{1f600}/~]{0,6}"
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text())
    }

    fn map() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map(text(), text(), 0..4)
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let principal = (
            text(),
            text(),
            proptest::collection::vec(text(), 0..3),
            opt_text(),
            opt_text(),
        )
            .prop_map(|(id, kind, roles, tenant, issuer)| PrincipalField {
                id,
                kind,
                roles,
                tenant,
                issuer,
            });
        let shadow = (text(), text(), any::<bool>()).prop_map(|(policy, effect, would_change)| {
            ShadowField {
                policy,
                effect,
                would_change,
            }
        });
        let decision = (
            text(),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(text(), 0..3),
            proptest::collection::vec(shadow, 0..3),
            text(),
        )
            .prop_map(|(effect, policies, errors, shadow, reason)| DecisionField {
                effect,
                policies,
                errors,
                shadow,
                reason,
            });
        let arguments = (map(), proptest::collection::btree_map(text(), json(), 0..3)).prop_map(
            |(commitments, disclosed)| ArgumentsField {
                commitments,
                disclosed,
            },
        );
        let outcome = (text(), any::<Option<i64>>(), any::<u64>(), opt_text()).prop_map(
            |(status, code, latency_us, result_hash)| OutcomeField {
                status,
                code,
                latency_us,
                result_hash,
            },
        );
        let kind = prop_oneof![
            Just(Kind::Request),
            Just(Kind::AuthFailure),
            Just(Kind::Start),
            Just(Kind::Stop),
            Just(Kind::Policy),
            Just(Kind::Config),
        ];
        (
            (
                kind,
                opt_text(),
                opt_text(),
                proptest::option::of(principal),
            ),
            (opt_text(), opt_text(), proptest::option::of(decision)),
            (opt_text(), opt_text(), proptest::option::of(arguments)),
            (proptest::option::of(outcome), map()),
        )
            .prop_map(
                |(
                    (kind, request_id, session, principal),
                    (action, resource, decision),
                    (policy_hash, schema_hash, arguments),
                    (outcome, detail),
                )| Entry {
                    kind,
                    request_id,
                    session,
                    principal,
                    action,
                    resource,
                    decision,
                    policy_hash,
                    schema_hash,
                    arguments,
                    outcome,
                    detail,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_same_bytes_as_the_generic_serializer(
            entry in entry(),
            index in prop_oneof![0..1000u64, any::<u64>()],
            time_us in any::<u64>(),
            origin in text(),
            replica in text(),
            prev in "[0-9a-f]{64}",
        ) {
            let record = Record {
                v: VERSION,
                origin,
                index,
                time_us,
                replica,
                prev: prev.clone(),
                entry,
            };
            prop_assert_eq!(
                String::from_utf8(record.canonical()).unwrap(),
                String::from_utf8(through_value(&record)).unwrap()
            );
            let mut placed = b"earlier lines\n".to_vec();
            Template::new(&record.origin, &record.replica, &record.entry)
                .place(&mut placed, index, time_us, &record.prev);
            let canonical = record.canonical();
            prop_assert_eq!(&placed[14..], canonical.as_slice());
        }
    }
}

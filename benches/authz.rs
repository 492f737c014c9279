//! Cedar decisions against 10, 100, 1,000 and 10,000 policies (synthetic sets over a
//! generated tool catalog), sliced per action as the proxy runs them, and the same decision
//! against the whole set for comparison. `cargo bench --bench authz`.

use std::collections::BTreeMap;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcp_warden::{
    authn::{AttrValue, Principal, PrincipalKind},
    authz::{
        BuildMode, Engine, Operation, facts_at, synthetic_attributes, synthetic_catalog,
        synthetic_policies, synthetic_tool, synthetic_tool_count,
    },
};
use serde_json::json;

fn principal() -> Principal {
    let mut attributes = BTreeMap::new();
    attributes.insert("department".to_owned(), AttrValue::String("d2".to_owned()));
    Principal {
        id: "alice".to_owned(),
        kind: PrincipalKind::User,
        roles: vec!["r1".to_owned(), "r3".to_owned()],
        tenant: Some("acme".to_owned()),
        issuer: None,
        attributes,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let principal = principal();
    let facts = facts_at(1_795_000_000, "127.0.0.1", "http", "s1");
    let arguments = json!({"amount": 250, "symbol": "S1"})
        .as_object()
        .cloned()
        .unwrap();
    for n in [10, 100, 1_000, 10_000] {
        let engine = Engine::build(
            &synthetic_policies(n),
            &synthetic_catalog(n),
            &synthetic_attributes(),
            BuildMode::Strict,
        )
        .expect("synthetic policies validate");
        let tool = synthetic_tool(synthetic_tool_count(n) / 2);
        let op = Operation::CallTool {
            tool: &tool,
            arguments: &arguments,
        };
        group.bench_with_input(BenchmarkId::new("sliced", n), &n, |b, _| {
            b.iter(|| engine.decide(&principal, &op, &facts))
        });
        if n <= 1_000 {
            group.bench_with_input(BenchmarkId::new("whole set", n), &n, |b, _| {
                b.iter(|| engine.decide_unsliced(&principal, &op, &facts))
            });
        }
        group.bench_with_input(BenchmarkId::new("tool_visible", n), &n, |b, _| {
            b.iter(|| engine.tool_visible(&principal, &tool, &facts))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

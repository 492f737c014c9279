//! Cedar decisions against 10, 100, 1,000 and 10,000 policies (synthetic sets over a
//! generated tool catalog), sliced per action as the proxy runs them, and the same decision
//! against the whole set for comparison. `cargo bench --bench authz`.

use std::collections::BTreeMap;
use std::time::Instant;

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
        namespace: None,
        attributes,
    }
}

/// The synthetic engine of `n` policies and the tool its benchmarks call.
fn engine_of(n: usize) -> (Engine, String) {
    let engine = Engine::build(
        &synthetic_policies(n),
        &synthetic_catalog(n),
        &synthetic_attributes(),
        BuildMode::Strict,
    )
    .expect("synthetic policies validate");
    (engine, synthetic_tool(synthetic_tool_count(n) / 2))
}

fn arguments() -> serde_json::Map<String, serde_json::Value> {
    json!({"amount": 250, "symbol": "S1"})
        .as_object()
        .cloned()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let principal = principal();
    let facts = facts_at(1_795_000_000, "127.0.0.1", "http", "s1");
    let arguments = arguments();
    for n in [10, 100, 1_000, 10_000] {
        let (engine, tool) = engine_of(n);
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

/// Criterion reports means; the target is a p99. Times single decisions (after a warm-up)
/// and prints their percentiles per policy count.
fn percentiles(_: &mut Criterion) {
    let principal = principal();
    let facts = facts_at(1_795_000_000, "127.0.0.1", "http", "s1");
    let arguments = arguments();
    println!("\nsingle decisions (sliced), 50,000 each:");
    println!(
        "{:>8} {:>9} {:>9} {:>9}",
        "policies", "p50 µs", "p99 µs", "p99.9 µs"
    );
    for n in [10, 100, 1_000, 10_000] {
        let (engine, tool) = engine_of(n);
        let op = Operation::CallTool {
            tool: &tool,
            arguments: &arguments,
        };
        for _ in 0..5_000 {
            std::hint::black_box(engine.decide(&principal, &op, &facts));
        }
        let mut times: Vec<f64> = (0..50_000)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(engine.decide(&principal, &op, &facts));
                start.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        println!(
            "{n:>8} {:>9.1} {:>9.1} {:>9.1}",
            at(0.50),
            at(0.99),
            at(0.999)
        );
    }
}

/// Examining a catalog's tools for their integrity (pins and description rules), as each
/// engine build does: 200 and 2,000 tools over 20 backends, every tool pinned.
fn integrity(c: &mut Criterion) {
    use mcp_warden::pinning::{Definition, Integrity, LockFile, Mode};
    let mut group = c.benchmark_group("integrity");
    for n in [200, 2_000] {
        let defs: Vec<Definition> = (0..n)
            .map(|i| {
                let backend = format!("b{}", i % 20);
                let name = format!("tool_{i}");
                let tool = rmcp::model::Tool::new(
                    format!("{backend}__{name}"),
                    format!("Does thing {i} with the records of the workspace; returns them as JSON. See the documentation at https://docs.example.com/tools/{i}."),
                    std::sync::Arc::new(
                        json!({"type": "object", "properties": {"id": {"type": "string", "description": "The record's id"}}})
                            .as_object()
                            .cloned()
                            .unwrap(),
                    ),
                );
                Definition::of(&tool, &backend, &name)
            })
            .collect();
        let refs: Vec<&Definition> = defs.iter().collect();
        let integrity = Integrity {
            mode: Mode::Enforce,
            lock: Some(LockFile::of(&refs, None)),
            rules: Default::default(),
        };
        group.bench_with_input(BenchmarkId::new("examine", n), &n, |b, _| {
            b.iter(|| integrity.examine(&refs, "__"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, percentiles, integrity);
criterion_main!(benches);

//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, server
//! scenarios), run (a) directly against the conformance target and (b) through the proxy
//! fronting that target over stdio, over HTTP, and over HTTP with `protocol = "auto"`
//! (the backend on 2026-07-28, the suite's clients on the revision each scenario names),
//! mounted without a namespace so the suite's own tool names apply. Every check that
//! passes direct must pass through the proxy. Two releases of the suite: the stable one
//! and the newest prerelease (stateless, header, caching, input-round and tasks
//! scenarios). `.ci/install-peers` installs Node 22 and both into `.ci/conformance` and
//! `.ci/conformance-next`.

use std::{collections::BTreeMap, path::PathBuf};

use crate::common::*;

/// Scenarios allowed to differ through the proxy, each with its reason.
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "server-sse-multiple-streams",
        "the proxy answers a request that produces nothing but its result as plain JSON \
     (the target always opens a stream); the suite then reports its stream check as INFO \
     (\"SSE streams optional\"), not passed. The scenario still has no failure: checked below.",
    ),
    (
        "server-sse-polling",
        "the suite's test_reconnection call returns at once, so the proxy answers it as plain \
     JSON, where the suite's priming-event and retry checks do not apply (INFO). The proxy's \
     event streams do send a priming event, a retry interval and resumable event ids: \
     hot_path::a_lost_call_stream_is_resumed_from_the_last_event_seen.",
    ),
];

/// One release of the suite: the Node it runs on and its executable.
struct Suite {
    node: PathBuf,
    conformance: PathBuf,
}

/// The suite installed under `.ci/<folder>` (Node 22 always from `.ci/conformance`).
fn suite(folder: &str) -> Option<Suite> {
    let ci = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci");
    let node = ci.join("conformance/node_modules/.bin");
    let conformance = ci.join(folder).join("node_modules/.bin/conformance");
    if conformance.exists() && node.join("node").exists() {
        return Some(Suite { node, conformance });
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance suite not installed: run .ci/install-peers"
    );
    eprintln!("skipped: conformance suite not installed (run .ci/install-peers once)");
    None
}

/// Runs the suite (or one scenario) against `url`: scenario -> (passed, failed), and the
/// suite's output.
async fn run_suite(
    suite: &Suite,
    url: &str,
    scenario: Option<&str>,
) -> (BTreeMap<String, (u32, u32)>, String) {
    let path = format!(
        "{}:{}",
        suite.node.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new(&suite.conformance);
    cmd.args(["server", "--url", url]).env("PATH", path);
    match scenario {
        Some(name) => cmd.args(["--scenario", name]),
        None => cmd.args(["--suite", "all"]),
    };
    let out = cmd.output().await.expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("✓ ").or_else(|| line.strip_prefix("✗ ")) else {
            continue;
        };
        let Some((name, counts)) = rest.split_once(": ") else {
            continue;
        };
        let numbers: Vec<u32> = counts
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if let [passed, failed] = numbers[..] {
            results.insert(name.to_owned(), (passed, failed));
        }
    }
    if let Some(name) = scenario {
        // Single-scenario output: `Passed: N/M, F failed, ...`.
        let passed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Passed: "))
            .and_then(|rest| {
                let numbers: Vec<u32> = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse().ok())
                    .collect();
                (numbers.len() >= 3).then(|| (numbers[0], numbers[2]))
            });
        results.insert(name.to_owned(), passed.unwrap_or((0, 1)));
    } else {
        assert!(
            results.len() >= 30,
            "suite output not understood:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (results, stdout)
}

/// Every scenario that passed direct must pass through the proxy. Some scenarios wait a fixed
/// time for notifications (e.g. 200 ms for log messages), so on a loaded machine a failure is
/// run again on its own, up to twice, before it counts; retried scenarios are printed.
async fn compare(suite: &Suite, url: &str, direct: &BTreeMap<String, (u32, u32)>, how: &str) {
    let (proxied, _) = run_suite(suite, url, None).await;
    let mut regressions = Vec::new();
    for (scenario, (passed, failed)) in direct {
        if *failed > 0 {
            continue;
        }
        if EXCEPTIONS.iter().any(|(s, _)| s == scenario) {
            // Allowed fewer passed checks, never a failed one.
            assert!(
                matches!(proxied.get(scenario), Some((_, 0))),
                "{scenario} ({how}) failed through the proxy: {:?}",
                proxied.get(scenario)
            );
            continue;
        }
        if matches!(proxied.get(scenario), Some((p, 0)) if p >= passed) {
            continue;
        }
        let mut detail = format!(
            "{scenario}: direct {passed} passed, through the proxy ({how}) {:?}",
            proxied.get(scenario)
        );
        let mut recovered = false;
        for attempt in 1..=2 {
            let (again, output) = run_suite(suite, url, Some(scenario)).await;
            if matches!(again.get(scenario), Some((p, 0)) if p >= passed) {
                eprintln!(
                    "note: conformance scenario `{scenario}` ({how}) passed on retry {attempt}"
                );
                recovered = true;
                break;
            }
            detail.push_str(&format!("\n--- retry {attempt} ---\n{output}"));
        }
        if !recovered {
            regressions.push(detail);
        }
    }
    assert!(
        regressions.is_empty(),
        "checks lost through the proxy:\n{}",
        regressions.join("\n")
    );
}

/// Every check the target passes direct passes through the proxy, for each backend kind.
async fn through_every_backend_kind(suite: &Suite) {
    let target = HttpTarget::start().await;
    let (direct, _) = run_suite(suite, &target.url, None).await;
    assert!(
        direct
            .values()
            .any(|(passed, failed)| *passed > 0 && *failed == 0),
        "the target passes nothing: {direct:?}"
    );

    let over_stdio = TestProxy::start(&stdio_backend("target", "namespace = \"\"")).await;
    compare(suite, &over_stdio.url, &direct, "stdio backend").await;

    let over_http =
        TestProxy::start(&http_backend("target", &target.url, "namespace = \"\"")).await;
    compare(suite, &over_http.url, &direct, "HTTP backend").await;

    let auto = "namespace = \"\"\nprotocol = \"auto\"";
    let over_auto = TestProxy::start(&http_backend("target", &target.url, auto)).await;
    compare(
        suite,
        &over_auto.url,
        &direct,
        "HTTP backend, protocol = auto",
    )
    .await;
}

#[tokio::test]
async fn the_proxy_passes_every_conformance_check_the_target_passes() {
    let Some(suite) = suite("conformance") else {
        return;
    };
    // The target implements every scenario of the stable release.
    let target = HttpTarget::start().await;
    let (direct, _) = run_suite(&suite, &target.url, None).await;
    let failing: Vec<_> = direct.iter().filter(|(_, (_, f))| *f > 0).collect();
    assert!(failing.is_empty(), "the target itself fails: {failing:?}");
    through_every_backend_kind(&suite).await;
}

/// The prerelease has scenarios the target does not implement (tasks, some input-round
/// tools, custom headers): those fail direct and are not compared; every other one must
/// pass through the proxy as it does direct.
#[tokio::test]
async fn the_proxy_passes_every_check_of_the_suites_prerelease_the_target_passes() {
    let Some(suite) = suite("conformance-next") else {
        return;
    };
    through_every_backend_kind(&suite).await;
}

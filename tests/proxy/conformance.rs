//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, server
//! scenarios), run (a) directly against the conformance target and (b) through the proxy
//! fronting that target over stdio and over HTTP, mounted without a namespace so the
//! suite's own tool names apply. Every check that passes direct must pass through the
//! proxy. `.ci/run` installs Node 22 and the suite into `.ci/conformance`.

use std::{collections::BTreeMap, path::PathBuf};

use crate::common::*;

/// Scenarios allowed to differ through the proxy, each with its reason. Empty: the proxy
/// passes everything the target passes.
const EXCEPTIONS: &[(&str, &str)] = &[];

fn suite_bin() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/conformance/node_modules/.bin");
    if bin.join("conformance").exists() && bin.join("node").exists() {
        return Some(bin);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance suite not installed: run .ci/run"
    );
    eprintln!("skipped: conformance suite not installed (run .ci/run once)");
    None
}

/// Runs the suite against `url`: scenario -> (passed, failed).
async fn run_suite(bin: &PathBuf, url: &str) -> BTreeMap<String, (u32, u32)> {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(bin.join("conformance"))
        .args(["server", "--url", url, "--suite", "all"])
        .env("PATH", path)
        .output()
        .await
        .expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
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
    assert!(
        results.len() >= 30,
        "suite output not understood:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

fn compare(
    direct: &BTreeMap<String, (u32, u32)>,
    proxied: &BTreeMap<String, (u32, u32)>,
    how: &str,
) {
    let mut regressions = Vec::new();
    for (scenario, (passed, failed)) in direct {
        if *failed > 0 || EXCEPTIONS.iter().any(|(s, _)| s == scenario) {
            continue;
        }
        match proxied.get(scenario) {
            Some((p, 0)) if p >= passed => {}
            other => regressions.push(format!(
                "{scenario}: direct {passed} passed, through the proxy ({how}) {other:?}"
            )),
        }
    }
    assert!(
        regressions.is_empty(),
        "checks lost through the proxy:\n{}",
        regressions.join("\n")
    );
}

#[tokio::test]
async fn the_proxy_passes_every_conformance_check_the_target_passes() {
    let Some(bin) = suite_bin() else { return };
    let target = HttpTarget::start().await;
    let direct = run_suite(&bin, &target.url).await;
    let failing: Vec<_> = direct.iter().filter(|(_, (_, f))| *f > 0).collect();
    assert!(failing.is_empty(), "the target itself fails: {failing:?}");

    let over_stdio = TestProxy::start(&stdio_backend("target", "namespace = \"\"")).await;
    compare(
        &direct,
        &run_suite(&bin, &over_stdio.url).await,
        "stdio backend",
    );

    let over_http =
        TestProxy::start(&http_backend("target", &target.url, "namespace = \"\"")).await;
    compare(
        &direct,
        &run_suite(&bin, &over_http.url).await,
        "HTTP backend",
    );
}

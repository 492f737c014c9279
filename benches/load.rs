//! The load harness: every party a process of its own on loopback — the demo backend over
//! streamable HTTP (`mcp-warden demo-server --http`) and over stdio, mcp-warden on the
//! minimal path and on the full path, the `mcp-proxy` crate when installed — driven by a
//! keep-alive HTTP client in this process. Every call has its own arguments.
//!
//! - Closed loop: C callers (one session each) call `echo` back to back for a while;
//!   calls/s, and each proxy's CPU per call (read from `/proc`, so the backend's and this
//!   client's work are not counted). Repeated in interleaved rounds; medians.
//! - Fixed rate: calls sent on a schedule; latency counted from each call's intended send
//!   time (a stalled proxy cannot hide its queue).
//!
//! `cargo bench --bench load` runs the measurement (`scripts/bench` wraps it and draws the
//! plot); under `cargo test --benches` a smoke pass of a few seconds checks that every call
//! succeeded and prints the ratios. Results go to `target/bench-load/`.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

// Only `binary` is used here: the harness starts mcp-proxy as a process of its own.
#[allow(dead_code)]
#[path = "shared/mcp_proxy.rs"]
mod mcp_proxy;

const WARDEN: &str = env!("CARGO_BIN_EXE_mcp-warden");
const TOKEN: &str = "bench-token";

struct Plan {
    rounds: usize,
    run_for: Duration,
    concurrency: Vec<usize>,
    rates: Vec<u64>,
}

/// One endpoint under load: where, which tool, with which credentials, and the process
/// whose CPU is the proxy's.
#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    tool: String,
    token: Option<String>,
    pid: Option<u32>,
    /// Bytes of padding in each call's text (echoed back: the result is as large).
    pad: usize,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-load");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_listening(port: u16) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port}");
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("a process of the harness starts")
}

/// A perimeter-like set of 100 policies: typed argument conditions on `echo`, the rest on
/// other roles and tools (as in the in-process bench).
fn policies(backends: &[&str]) -> String {
    let mut text = String::from(
        "@id(\"lists\") permit(principal, action == Mcp::Action::\"list_tools\", resource);\n",
    );
    for b in backends {
        text.push_str(&format!(
            "permit(principal in Mcp::Role::\"dev\", action == Mcp::Action::\"{b}__echo\", resource)\n\
               when {{ context.arguments.text like \"*payload*\" }};\n\
             forbid(principal, action == Mcp::Action::\"{b}__echo\", resource)\n\
               when {{ context.arguments.text like \"*PRIVATE KEY*\" }};\n"
        ));
    }
    for i in 0..(99 - 2 * backends.len()) {
        text.push_str(&format!(
            "permit(principal in Mcp::Role::\"role{i}\", action == Mcp::Action::\"demo__add\", resource) when {{ context.arguments.a < {i} }};\n"
        ));
    }
    text
}

/// Starts mcp-warden with `config` (TOML, without `[server]`); returns it and its URL.
async fn warden(dir: &std::path::Path, name: &str, config: &str) -> (Child, String) {
    let port = free_port();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!("[server]\nbind = \"127.0.0.1:{port}\"\n{config}"),
    )
    .unwrap();
    let child = spawn(
        Command::new(WARDEN)
            .args(["serve", "--config"])
            .arg(&path)
            .arg("--admin-bind")
            .arg(format!("127.0.0.1:{}", free_port()))
            .env("MCP_WARDEN_LOG", "warn"),
    );
    wait_listening(port).await;
    (child, format!("http://127.0.0.1:{port}/mcp"))
}

fn backends(http: &str) -> String {
    format!(
        "[[backends]]\nname = \"demo\"\nurl = \"{http}\"\n\
         [[backends]]\nname = \"local\"\ncommand = {WARDEN:?}\nargs = [\"demo-server\"]\n"
    )
}

/// An HTTP client keeping `connections` connections alive.
fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap()
}

fn post(
    client: &reqwest::Client,
    t: &Target,
    session: Option<&str>,
    body: String,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(&t.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    if let Some(token) = &t.token {
        request = request.bearer_auth(token);
    }
    request
}

/// The JSON-RPC message in a JSON or event-stream body (the last one carrying an id).
fn answer(body: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return Some(v);
    }
    body.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
}

async fn open_session(client: &reqwest::Client, t: &Target) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "load", "version": "1"}}});
    let response = post(client, t, None, init.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}: initialize: {}",
        t.name,
        response.status()
    );
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let _ = post(client, t, Some(&session), done.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await;
    session
}

/// Ends a session (DELETE), so that rounds do not pile sessions up against the proxies'
/// session limits.
async fn close_session(client: &reqwest::Client, t: &Target, session: &str) {
    let mut request = client
        .delete(&t.url)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(token) = &t.token {
        request = request.bearer_auth(token);
    }
    let _ = request.send().await;
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// One `echo` call with arguments of its own; whether it succeeded.
async fn call(client: &reqwest::Client, t: &Target, session: &str) -> bool {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut text = format!("payload {n}");
    text.extend(std::iter::repeat_n('x', t.pad));
    let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
        "params": {"name": t.tool, "arguments": {"text": text}}});
    let response = match post(client, t, Some(session), body.to_string())
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => return failure(t, &e.to_string()),
    };
    let status = response.status();
    let answered = response.text().await.unwrap_or_default();
    let good = status.is_success()
        && answer(&answered).is_some_and(|v| {
            v["result"]["isError"] != json!(true)
                && v["result"]["content"][0]["text"].as_str() == Some(text.as_str())
        });
    good || failure(t, &format!("{status}: {answered}"))
}

/// Reports the first few failures of a run; always false.
fn failure(t: &Target, what: &str) -> bool {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 3 {
        eprintln!(
            "{}: a call failed: {}",
            t.name,
            &what[..what.len().min(300)]
        );
    }
    false
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces), from its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

struct Closed {
    calls_per_s: f64,
    cpu_us_per_call: Option<f64>,
    failed: u64,
}

/// `c` callers, one session each, calling back to back for `run_for`.
async fn closed_loop(t: &Target, c: usize, run_for: Duration) -> Closed {
    let client = client(c);
    let mut sessions = Vec::new();
    for _ in 0..c {
        sessions.push(open_session(&client, t).await);
    }
    // Warm-up: connections open, caches of the path filled.
    for s in &sessions {
        call(&client, t, s).await;
    }
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cpu_before = t.pid.map(cpu_seconds);
    let started = Instant::now();
    let workers: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|session| {
            let (client, t, ok, failed) = (client.clone(), t.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while started.elapsed() < run_for {
                    if call(&client, &t, &session).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    for s in &sessions {
        close_session(&client, t, s).await;
    }
    let done = ok.load(Ordering::Relaxed);
    let cpu = t
        .pid
        .zip(cpu_before)
        .map(|(pid, before)| (cpu_seconds(pid) - before) * 1e6 / done.max(1) as f64);
    Closed {
        calls_per_s: done as f64 / elapsed,
        cpu_us_per_call: cpu,
        failed: failed.load(Ordering::Relaxed),
    }
}

struct Paced {
    p50_us: f64,
    p99_us: f64,
    achieved: f64,
    failed: u64,
}

/// Calls sent at `rate` per second for `run_for`, over 16 sessions; latency from each
/// call's intended send time.
async fn fixed_rate(t: &Target, rate: u64, run_for: Duration) -> Paced {
    let client = client(64);
    let mut sessions = Vec::new();
    for _ in 0..16 {
        sessions.push(Arc::new(open_session(&client, t).await));
    }
    for s in &sessions {
        call(&client, t, s).await;
    }
    let total = (rate as f64 * run_for.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    // The schedule is kept by a thread of its own with the OS's sleep (tens of µs of
    // slack), not by the runtime's timer (1 ms ticks, which would add up to a millisecond
    // to every latency); each call starts as a task at its intended time.
    let runtime = tokio::runtime::Handle::current();
    let (pool, target, kept) = (client.clone(), t.clone(), sessions.clone());
    let started = Instant::now();
    let tasks = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let intended = started + period * i as u32;
            if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (client, t, session) =
                (pool.clone(), target.clone(), kept[i as usize % 16].clone());
            tasks.push(runtime.spawn(async move {
                let ok = call(&client, &t, &session).await;
                (ok, intended.elapsed())
            }));
        }
        tasks
    })
    .await
    .unwrap();
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for task in tasks {
        let (ok, latency) = task.await.unwrap();
        if ok {
            latencies.push(latency);
        } else {
            failed += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for s in &sessions {
        close_session(&client, t, s).await;
    }
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    Paced {
        p50_us: at(0.50),
        p99_us: at(0.99),
        achieved: latencies.len() as f64 / elapsed,
        failed,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            rounds: 3,
            run_for: Duration::from_secs(4),
            concurrency: vec![16, 64],
            rates: vec![1000, 2000, 4000],
        }
    } else {
        Plan {
            rounds: 1,
            run_for: Duration::from_millis(500),
            concurrency: vec![4],
            rates: vec![200],
        }
    };
    let dir = std::env::temp_dir().join(format!("mcp-warden-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The backend, a process of its own.
    let backend_port = free_port();
    let _backend = spawn(
        Command::new(WARDEN)
            .args(["demo-server", "--http"])
            .arg(format!("127.0.0.1:{backend_port}")),
    );
    wait_listening(backend_port).await;
    let backend = format!("http://127.0.0.1:{backend_port}/mcp");

    let mut children = Vec::new();
    let mut targets: Vec<Target> = vec![Target {
        name: "direct, HTTP backend".into(),
        url: backend.clone(),
        tool: "echo".into(),
        token: None,
        pid: None,
        pad: 0,
    }];
    let minimal = format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n{}",
        backends(&backend)
    );
    let secured = |durability: &str, name: &str| {
        let logs = dir.join(name);
        let store = url::Url::from_directory_path(logs.join("store")).unwrap();
        format!(
            "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"dev\"\nroles = [\"dev\"]\n\
             [authz]\npolicy = {:?}\n\
             [audit]\norigin = \"bench/load\"\nstore = {:?}\nstate_dir = {:?}\ndurability = {durability:?}\n{}",
            mcp_warden::authn::token_hash_hex(TOKEN),
            policies(&["demo", "local"]),
            store.as_str(),
            logs.join("state").display().to_string(),
            backends(&backend)
        )
    };
    let wardens = [
        ("mcp-warden minimal", minimal.clone(), None),
        (
            "mcp-warden full (token, 100 policies, audit async)",
            secured("async", "async"),
            Some(TOKEN.to_owned()),
        ),
        (
            "mcp-warden full, audit before-response",
            secured("before-response", "before-response"),
            Some(TOKEN.to_owned()),
        ),
    ];
    for (i, (name, config, token)) in wardens.into_iter().enumerate() {
        let (child, url) = warden(&dir, &format!("warden{i}"), &config).await;
        for (kind, tool) in [("HTTP", "demo__echo"), ("stdio", "local__echo")] {
            targets.push(Target {
                name: format!("{name}, {kind} backend"),
                url: url.clone(),
                tool: tool.into(),
                token: token.clone(),
                pid: child.id(),
                pad: 0,
            });
        }
        children.push(child);
    }
    let peer_config = dir.join("mcp-proxy.toml");
    let peer_port = free_port();
    std::fs::write(
        &peer_config,
        format!(
            "[proxy]\nname = \"bench\"\nversion = \"1.0.0\"\nseparator = \"__\"\n\
             [proxy.listen]\nhost = \"127.0.0.1\"\nport = {peer_port}\n\
             [[backends]]\nname = \"demo\"\ntransport = \"http\"\nurl = \"{backend}\"\n\
             [[backends]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = {WARDEN:?}\nargs = [\"demo-server\"]\n"
        ),
    )
    .unwrap();
    let peer_bin = mcp_proxy::binary();
    let peer = Command::new(&peer_bin)
        .arg("--config")
        .arg(&peer_config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok();
    if let Some(peer) = peer {
        wait_listening(peer_port).await;
        for (kind, tool) in [("HTTP", "demo__echo"), ("stdio", "local__echo")] {
            targets.push(Target {
                name: format!("mcp-proxy, {kind} backend"),
                url: format!("http://127.0.0.1:{peer_port}/"),
                tool: tool.into(),
                token: None,
                pid: peer.id(),
                pad: 0,
            });
        }
        children.push(peer);
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mcp-proxy is not installed: run .ci/run"
        );
        println!("mcp-proxy not installed (benches/install-mcp-proxy): its rows are left out");
    }

    // `LOAD_PROFILE=<part of a path's name>`: only that path, 16 callers (`LOAD_CALLERS`)
    // for `LOAD_SECONDS` (default 30), its proxy's pid printed first, for a profiler to
    // attach.
    if let Ok(wanted) = std::env::var("LOAD_PROFILE") {
        let t = targets
            .iter()
            .find(|t| t.name.contains(&wanted))
            .unwrap_or_else(|| panic!("no path named like {wanted:?}"));
        let seconds = std::env::var("LOAD_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        // `LOAD_PAD=<bytes>`: each call echoes that much (the large-result rows use 65536).
        let t = &Target {
            pad: std::env::var("LOAD_PAD")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            ..t.clone()
        };
        println!("profiling {} (pid {:?}) for {seconds} s", t.name, t.pid);
        // `LOAD_RATE=<calls/s>`: that fixed rate instead of the closed loop.
        if let Some(rate) = std::env::var("LOAD_RATE").ok().and_then(|s| s.parse().ok()) {
            let paced = fixed_rate(t, rate, Duration::from_secs(seconds)).await;
            println!(
                "{:.0} answered/s of {rate}, p50 {:.0} µs, p99 {:.0} µs, {} failed",
                paced.achieved, paced.p50_us, paced.p99_us, paced.failed
            );
            return;
        }
        let callers = std::env::var("LOAD_CALLERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(16);
        let result = closed_loop(t, callers, Duration::from_secs(seconds)).await;
        println!(
            "{:.0} calls/s, {:?} µs CPU per call, {} failed",
            result.calls_per_s, result.cpu_us_per_call, result.failed
        );
        return;
    }

    // Closed loop, interleaved rounds.
    let mut closed: BTreeMap<(usize, String), Vec<Closed>> = BTreeMap::new();
    for &c in &plan.concurrency {
        for _ in 0..plan.rounds {
            for t in &targets {
                let result = closed_loop(t, c, plan.run_for).await;
                assert_eq!(result.failed, 0, "{}: calls failed at C={c}", t.name);
                closed.entry((c, t.name.clone())).or_default().push(result);
            }
        }
    }
    let mut report = String::new();
    let mut rows = Vec::new();
    for &c in &plan.concurrency {
        report.push_str(&format!(
            "\nClosed loop, {c} callers ({} rounds of {:?}, medians)\n\n\
             | path | calls/s | vs mcp-proxy | proxy CPU µs/call | vs mcp-proxy |\n|---|---:|---:|---:|---:|\n",
            plan.rounds, plan.run_for
        ));
        let figures = |name: &str| {
            closed.get(&(c, name.to_owned())).map(|runs| {
                (
                    median(runs.iter().map(|r| r.calls_per_s).collect()),
                    median(runs.iter().filter_map(|r| r.cpu_us_per_call).collect()),
                )
            })
        };
        for t in &targets {
            let (rate, cpu) = figures(&t.name).unwrap();
            let kind = if t.name.contains("stdio") {
                "stdio"
            } else {
                "HTTP"
            };
            let peer = figures(&format!("mcp-proxy, {kind} backend"));
            let ratio = |a: f64, b: Option<f64>| {
                b.filter(|b| b.is_finite() && a.is_finite())
                    .map_or("–".to_owned(), |b| format!("{:.2}×", a / b))
            };
            report.push_str(&format!(
                "| {} | {rate:.0} | {} | {} | {} |\n",
                t.name,
                ratio(rate, peer.map(|p| p.0)),
                if cpu.is_finite() {
                    format!("{cpu:.0}")
                } else {
                    "–".to_owned()
                },
                ratio(cpu, peer.map(|p| p.1)),
            ));
            rows.push(json!({"kind": "closed", "callers": c, "path": t.name, "calls_per_s": rate, "cpu_us_per_call": cpu}));
        }
    }

    // Fixed rates: direct, mcp-proxy and the full path (HTTP backend).
    // Large results: 64 KiB echoed back, HTTP backend, the first concurrency.
    let big: Vec<Target> = targets
        .iter()
        .filter(|t| t.name.ends_with("HTTP backend") && !t.name.contains("before-response"))
        .map(|t| Target {
            name: t
                .name
                .replace("HTTP backend", "HTTP backend, 64 KiB result"),
            pad: 64 * 1024,
            ..t.clone()
        })
        .collect();
    let c = plan.concurrency[0];
    let mut large: BTreeMap<String, Vec<Closed>> = BTreeMap::new();
    for _ in 0..plan.rounds {
        for t in &big {
            let result = closed_loop(t, c, plan.run_for).await;
            assert_eq!(result.failed, 0, "{}: calls failed", t.name);
            large.entry(t.name.clone()).or_default().push(result);
        }
    }
    report.push_str(&format!(
        "\nLarge results (64 KiB echoed), {c} callers\n\n| path | calls/s | vs mcp-proxy | proxy CPU µs/call |\n|---|---:|---:|---:|\n"
    ));
    let rate_of = |name: &str| {
        large
            .get(name)
            .map(|r| median(r.iter().map(|r| r.calls_per_s).collect()))
    };
    let peer_rate = rate_of("mcp-proxy, HTTP backend, 64 KiB result");
    for t in &big {
        let runs = &large[&t.name];
        let rate = median(runs.iter().map(|r| r.calls_per_s).collect());
        let cpu = median(runs.iter().filter_map(|r| r.cpu_us_per_call).collect());
        report.push_str(&format!(
            "| {} | {rate:.0} | {} | {} |\n",
            t.name,
            peer_rate.map_or("–".to_owned(), |p| format!("{:.2}×", rate / p)),
            if cpu.is_finite() {
                format!("{cpu:.0}")
            } else {
                "–".to_owned()
            },
        ));
        rows.push(json!({"kind": "large", "callers": c, "path": t.name, "calls_per_s": rate, "cpu_us_per_call": cpu}));
    }
    println!("{report}");
    report.push_str("\nFixed rate (latency from the intended send time, µs)\n\n| path | offered/s | answered/s | refused | p50 | p99 |\n|---|---:|---:|---:|---:|---:|\n");
    let paced: Vec<&Target> = targets
        .iter()
        .filter(|t| {
            t.name == "direct, HTTP backend"
                || t.name == "mcp-proxy, HTTP backend"
                || t.name == "mcp-warden full (token, 100 policies, audit async), HTTP backend"
        })
        .collect();
    for &rate in &plan.rates {
        for t in &paced {
            let p = fixed_rate(t, rate, plan.run_for).await;
            // Under load beyond what the machine sustains a proxy may refuse calls (the
            // concurrency limit's "busy"): reported, and a failure only of the smoke pass.
            assert!(
                full || p.failed == 0,
                "{}: calls failed at {rate}/s",
                t.name
            );
            report.push_str(&format!(
                "| {} | {rate} | {:.0} | {} | {:.0} | {:.0} |\n",
                t.name, p.achieved, p.failed, p.p50_us, p.p99_us
            ));
            rows.push(json!({"kind": "rate", "rate": rate, "path": t.name, "achieved": p.achieved, "refused": p.failed, "p50_us": p.p50_us, "p99_us": p.p99_us}));
        }
    }
    println!("{report}");
    if !full {
        println!(
            "(smoke pass: mcp-warden is a debug build here and mcp-proxy a release one; only \
             `cargo bench --bench load` figures mean anything)"
        );
    }
    let out = out_dir();
    std::fs::write(out.join("report.md"), &report).unwrap();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&rows).unwrap(),
    )
    .unwrap();
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}

//! End-to-end load harness: `tools/call` latency and throughput against the demo backend
//! directly and through the proxy (without an audit log, and with one in each durability
//! mode), in the same run, reported as added µs and as ratios.
//!
//! `cargo bench --bench e2e` runs the full measurement; under `cargo test` it runs a short
//! smoke pass so the harness itself stays working.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_warden::{Config, Proxy};
use rmcp::{ServiceExt, model::CallToolRequestParams, transport::StreamableHttpClientTransport};

#[path = "shared/fsync.rs"]
mod fsync;
#[path = "shared/mcp_proxy.rs"]
mod mcp_proxy;
use fsync::{Overwrite, bare_fsync};

struct Settings {
    sequential_calls: usize,
    concurrency: usize,
    throughput_for: Duration,
}

async fn serve(router: axum::Router) -> String {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/mcp")
}

fn echo(name: &str) -> CallToolRequestParams {
    let args = serde_json::json!({"text": "benchmark payload"});
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().cloned().unwrap())
}

struct Figures {
    p50: Duration,
    p99: Duration,
    calls_per_s: f64,
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

async fn http_client(url: &str) -> Client {
    ().serve(StreamableHttpClientTransport::from_uri(url.to_owned()))
        .await
        .unwrap()
}

async fn token_client(url: &str, token: &str) -> Client {
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_owned(),
        )
        .auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

/// A perimeter-like policy set: 100 policies, typed argument conditions on the echo tool.
fn policies() -> String {
    let mut text = String::from(
        "@id(\"lists\") permit(principal, action == Mcp::Action::\"list_tools\", resource);\n\
         @id(\"echo\") permit(principal in Mcp::Role::\"dev\", action == Mcp::Action::\"demo__echo\", resource)\n\
           when { context.arguments.text like \"*payload*\" };\n\
         @id(\"no-secrets\") forbid(principal, action == Mcp::Action::\"demo__echo\", resource)\n\
           when { context.arguments.text like \"*PRIVATE KEY*\" };\n",
    );
    for i in 0..97 {
        text.push_str(&format!(
            "permit(principal in Mcp::Role::\"role{i}\", action == Mcp::Action::\"demo__add\", resource) when {{ context.arguments.a < {i} }};\n"
        ));
    }
    text
}

async fn stdio_client() -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-warden"));
    cmd.arg("demo-server");
    ().serve(rmcp::transport::TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap()
}

async fn measure(client: Client, tool: &str, s: &Settings) -> Figures {
    measure_together(vec![(client, tool)], 1, s).await.remove(0)
}

type Peer = rmcp::service::Peer<rmcp::RoleClient>;

/// Latency of several paths, measured in `rounds` that take turns (so that drift on a shared
/// machine hits them alike), then the throughput of each in turn.
async fn measure_together(paths: Vec<(Client, &str)>, rounds: usize, s: &Settings) -> Vec<Figures> {
    let peers: Vec<(Peer, &str)> = paths
        .iter()
        .map(|(c, tool)| (c.peer().clone(), *tool))
        .collect();
    for (peer, tool) in &peers {
        for _ in 0..50 {
            peer.call_tool(echo(tool)).await.unwrap();
        }
    }
    let mut latencies = vec![Vec::with_capacity(s.sequential_calls); peers.len()];
    for _ in 0..rounds {
        for ((peer, tool), latencies) in peers.iter().zip(&mut latencies) {
            for _ in 0..s.sequential_calls / rounds {
                let start = Instant::now();
                peer.call_tool(echo(tool)).await.unwrap();
                latencies.push(start.elapsed());
            }
        }
    }
    let mut figures = Vec::new();
    for ((peer, tool), mut latencies) in peers.into_iter().zip(latencies) {
        latencies.sort();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        figures.push(Figures {
            p50: pct(0.50),
            p99: pct(0.99),
            calls_per_s: throughput(peer, tool, s).await,
        });
    }
    figures
}

async fn throughput(peer: Peer, tool: &str, s: &Settings) -> f64 {
    let deadline = Instant::now() + s.throughput_for;
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..s.concurrency)
        .map(|_| {
            let (peer, count, tool) = (peer.clone(), count.clone(), tool.to_owned());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    peer.call_tool(echo(&tool)).await.unwrap();
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for w in workers {
        w.await.unwrap();
    }
    let calls = count.load(std::sync::atomic::Ordering::Relaxed) as f64;
    calls / started.elapsed().as_secs_f64()
}

/// p50s of bare fsyncs of a record-sized line in `dir` (the physical floor of a
/// `before-response` record), back to back and 1 ms apart (calls here come about that far
/// apart), appended and written over zeros on disk (the WAL's way).
struct Floor {
    append: Duration,
    append_paced: Duration,
    over: Duration,
    over_paced: Duration,
}

async fn bare_fsyncs(dir: &std::path::Path, n: usize) -> Floor {
    const LINE: usize = 1_000;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync-probe"))
        .unwrap();
    let mut over = Overwrite::create(&dir.join("overwrite-probe"), 8 << 20);
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut append, mut written_over) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        append.push(bare_fsync(&mut file, LINE));
        written_over.push(over.fsync(LINE));
    }
    let (mut append_paced, mut over_paced) = (Vec::new(), Vec::new());
    for _ in 0..n / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        append_paced.push(bare_fsync(&mut file, LINE));
        tokio::time::sleep(Duration::from_millis(1)).await;
        over_paced.push(over.fsync(LINE));
    }
    Floor {
        append: p50(append),
        append_paced: p50(append_paced),
        over: p50(written_over),
        over_paced: p50(over_paced),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `BENCH_KEEP_ALIVE=false` has the proxies open a connection to the HTTP backend per
/// request, as before connections were pooled (to compare the two with one build).
fn keep_alive() -> bool {
    std::env::var("BENCH_KEEP_ALIVE").map_or(true, |v| v != "false")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let s = if full {
        Settings {
            sequential_calls: 5_000,
            concurrency: 16,
            throughput_for: Duration::from_secs(5),
        }
    } else {
        Settings {
            sequential_calls: 50,
            concurrency: 2,
            throughput_for: Duration::from_millis(200),
        }
    };
    let keep_alive = keep_alive();
    let backend = serve(mcp_warden::demo::router()).await;
    let demo_exe = env!("CARGO_BIN_EXE_mcp-warden");
    let config = Config::from_toml_str(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\n\
         [[backends]]\nname = \"local\"\ncommand = {demo_exe:?}\nargs = [\"demo-server\"]\n"
    ))
    .unwrap();
    let proxy = Proxy::from_config(config).await.unwrap();
    let handle = proxy.handle();
    let proxied = serve(proxy.into_router()).await;
    // The same backend behind a proxy that authenticates a bearer token and decides 100
    // policies with typed argument conditions.
    let token = "bench-token";
    let secured = Config::from_toml_str(&format!(
        "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"dev\"\nroles = [\"dev\"]\n\
         [authz]\npolicy = {:?}\n[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\n",
        mcp_warden::authn::token_hash_hex(token),
        policies()
    ))
    .unwrap();
    let secured = Proxy::from_config(secured).await.unwrap();
    let secured_handle = secured.handle();
    let secured_url = serve(secured.into_router()).await;
    // The same backend behind a proxy that writes the audit log, in each durability mode,
    // to a local directory on the project's disk.
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-e2e-audit");
    let _ = std::fs::remove_dir_all(&logs);
    let mut audited = Vec::new();
    for durability in ["async", "before-response"] {
        let dir = logs.join(durability);
        let store = url::Url::from_directory_path(dir.join("store")).unwrap();
        let config = Config::from_toml_str(&format!(
            "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n\
             [audit]\norigin = \"bench/audit\"\nstore = {:?}\nstate_dir = {:?}\ndurability = {durability:?}\n\
             [[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\n",
            store.as_str(),
            dir.join("state").display().to_string(),
        ))
        .unwrap();
        let proxy = Proxy::from_config(config).await.unwrap();
        let handle = proxy.handle();
        audited.push((serve(proxy.into_router()).await, handle));
    }

    // The proxy without and with the audit log: latencies taken in turns, ten rounds.
    let mut together = measure_together(
        vec![
            (http_client(&proxied).await, "demo__echo"),
            (http_client(&audited[0].0).await, "demo__echo"),
            (http_client(&audited[1].0).await, "demo__echo"),
        ],
        10,
        &s,
    )
    .await
    .into_iter();
    let (without_log, log_async, log_before_response) = (
        together.next().unwrap(),
        together.next().unwrap(),
        together.next().unwrap(),
    );
    let direct = measure(http_client(&backend).await, "echo", &s).await;
    // The peer baseline in the same run, when installed.
    let peer = mcp_proxy::start(&backend, demo_exe).await;
    let peer_rows = match &peer {
        Some(p) => vec![
            (
                "HTTP backend, via mcp-proxy",
                measure(http_client(&p.url).await, "demo__echo", &s).await,
            ),
            (
                "stdio backend, via mcp-proxy",
                measure(http_client(&p.url).await, "local__echo", &s).await,
            ),
        ],
        None => {
            println!("mcp-proxy not found (MCP_PROXY_BIN or PATH): its rows are left out");
            Vec::new()
        }
    };
    let rows = [
        ("HTTP backend, direct", direct),
        ("HTTP backend, via proxy", without_log),
        (
            "HTTP backend, via proxy, token + 100 policies",
            measure(token_client(&secured_url, token).await, "demo__echo", &s).await,
        ),
        ("HTTP backend, via proxy, audit log async", log_async),
        (
            "HTTP backend, via proxy, audit log before-response",
            log_before_response,
        ),
        (
            "stdio backend, direct",
            measure(stdio_client().await, "echo", &s).await,
        ),
        (
            "stdio backend, via proxy",
            measure(http_client(&proxied).await, "local__echo", &s).await,
        ),
    ];
    println!(
        "tools/call of the demo echo tool, loopback ({} sequential calls for latency, {} concurrent for {:?} for throughput)",
        s.sequential_calls, s.concurrency, s.throughput_for
    );
    println!(
        "{:<50} {:>9} {:>9} {:>10}",
        "", "p50 µs", "p99 µs", "calls/s"
    );
    for (name, f) in rows.iter().chain(&peer_rows) {
        println!(
            "{name:<50} {:>9.0} {:>9.0} {:>10.0}",
            us(f.p50),
            us(f.p99),
            f.calls_per_s
        );
    }
    if let [(_, http_peer), (_, stdio_peer)] = peer_rows.as_slice() {
        for (path, ours, theirs) in [
            ("HTTP backend, minimal path", &rows[1].1, http_peer),
            ("HTTP backend, token + 100 policies", &rows[2].1, http_peer),
            ("HTTP backend, audit log async", &rows[3].1, http_peer),
            (
                "HTTP backend, audit log before-response",
                &rows[4].1,
                http_peer,
            ),
            ("stdio backend, minimal path", &rows[6].1, stdio_peer),
        ] {
            println!(
                "{path}: {:.2}x mcp-proxy's calls/s, p50 {:+.0} µs against it",
                ours.calls_per_s / theirs.calls_per_s,
                us(ours.p50) - us(theirs.p50),
            );
        }
    }
    let (open, secured) = (&rows[1].1, &rows[2].1);
    println!(
        "authentication + 100-policy authorization add p50 {:+.0} µs, p99 {:+.0} µs to the proxy (anonymous, one permit-all policy)",
        us(secured.p50) - us(open.p50),
        us(secured.p99) - us(open.p99),
    );
    for (mode, with) in [("async", &rows[3].1), ("before-response", &rows[4].1)] {
        println!(
            "the audit log ({mode}) adds p50 {:+.0} µs, p99 {:+.0} µs to the proxy (anonymous, one permit-all policy); throughput {:.2}x",
            us(with.p50) - us(open.p50),
            us(with.p99) - us(open.p99),
            with.calls_per_s / open.calls_per_s,
        );
    }
    let floor = bare_fsyncs(&logs, s.sequential_calls.min(2_000)).await;
    let added = us(rows[4].1.p50) - us(open.p50);
    println!(
        "before-response adds {added:.0} µs p50 (calls here are {:.0} µs apart) = {:.2}x a bare fsync \
         appending 1 KB on the same disk ({:.0} µs back to back), {:.2}x one 1 ms apart ({:.0} µs); \
         {:.2}x one written over zeros ({:.0} µs back to back), {:.2}x 1 ms apart ({:.0} µs)",
        us(open.p50),
        added / us(floor.append),
        us(floor.append),
        added / us(floor.append_paced),
        us(floor.append_paced),
        added / us(floor.over),
        us(floor.over),
        added / us(floor.over_paced),
        us(floor.over_paced),
    );
    for (label, direct, through) in [
        ("HTTP", &rows[0].1, &rows[1].1),
        ("stdio", &rows[5].1, &rows[6].1),
    ] {
        println!(
            "{label} backend: proxy adds p50 {:+.0} µs ({:.2}x), p99 {:+.0} µs ({:.2}x); throughput {:.2}x of direct",
            us(through.p50) - us(direct.p50),
            us(through.p50) / us(direct.p50),
            us(through.p99) - us(direct.p99),
            us(through.p99) / us(direct.p99),
            through.calls_per_s / direct.calls_per_s,
        );
    }
    governance(&backend, &s).await;
    handle.shutdown().await;
    secured_handle.shutdown().await;
    for (_, handle) in audited {
        handle.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&logs);
}

/// The governance layers' cost, in the same run: the same backend behind three proxies —
/// governance off (no rate rules, built-in guard rules off), on (two rate rules, a
/// per-principal concurrency limit, a per-tool timeout, every built-in guard rule), and on
/// with the tool cacheable (every call after the first is a cache hit). Latencies in turns.
async fn governance(backend: &str, s: &Settings) {
    let keep_alive = keep_alive();
    let base =
        "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n";
    let rules = "[limits]\nprincipal_concurrency = 64\n\
        [[limits.rate]]\nid = \"per-principal\"\nby = [\"principal\"]\nper_second = 1000000\n\
        [[limits.rate]]\nid = \"tenant-tool\"\nby = [\"tenant\", \"tool\"]\nper_second = 1000000\n";
    let configs = [
        format!(
            "{base}[guards]\nbuiltin_rules = false\n[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\n"
        ),
        format!(
            "{base}{rules}[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\ntools.echo = {{ timeout_ms = 5000 }}\n"
        ),
        format!(
            "{base}{rules}[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\nkeep_alive = {keep_alive}\ntools.echo = {{ timeout_ms = 5000, cache_ttl_secs = 3600 }}\n"
        ),
    ];
    let mut urls = Vec::new();
    let mut handles = Vec::new();
    for c in configs {
        let proxy = Proxy::from_config(Config::from_toml_str(&c).unwrap())
            .await
            .unwrap();
        handles.push(proxy.handle());
        urls.push(serve(proxy.into_router()).await);
    }
    let mut clients = Vec::new();
    for url in &urls {
        clients.push((http_client(url).await, "demo__echo"));
    }
    let figures = measure_together(clients, 10, s).await;
    println!("\ngovernance layers, same backend, latencies taken in turns:");
    let names = [
        "governance off (no rate rules, no guard rules)",
        "governance on (2 rate rules, guards, limits, timeout)",
        "governance on, cache hit",
    ];
    for (name, f) in names.iter().zip(&figures) {
        println!(
            "{name:<55} {:>9.0} {:>9.0} {:>10.0}",
            us(f.p50),
            us(f.p99),
            f.calls_per_s
        );
    }
    println!(
        "governance adds p50 {:+.1} µs, p99 {:+.1} µs; a cache hit answers in {:.0} µs p50 ({:+.0} µs against a call through governance)",
        us(figures[1].p50) - us(figures[0].p50),
        us(figures[1].p99) - us(figures[0].p99),
        us(figures[2].p50),
        us(figures[2].p50) - us(figures[1].p50),
    );
    for h in handles {
        h.shutdown().await;
    }
}

//! End-to-end load harness: `tools/call` latency and throughput against the demo backend
//! directly and through the proxy, in the same run, reported as added µs and as ratios.
//!
//! `cargo bench --bench e2e` runs the full measurement; under `cargo test` it runs a short
//! smoke pass so the harness itself stays working.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use mcp_warden::{Config, Proxy};
use rmcp::{ServiceExt, model::CallToolRequestParams, transport::StreamableHttpClientTransport};

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
    let peer = client.peer().clone();
    for _ in 0..50 {
        peer.call_tool(echo(tool)).await.unwrap();
    }
    let mut latencies = Vec::with_capacity(s.sequential_calls);
    for _ in 0..s.sequential_calls {
        let start = Instant::now();
        peer.call_tool(echo(tool)).await.unwrap();
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
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
    Figures {
        p50: pct(0.50),
        p99: pct(0.99),
        calls_per_s: calls / started.elapsed().as_secs_f64(),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
    let backend = serve(mcp_warden::demo::router()).await;
    let demo_exe = env!("CARGO_BIN_EXE_mcp-warden");
    let config = Config::from_toml_str(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\n\
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
         [authz]\npolicy = {:?}\n[[backends]]\nname = \"demo\"\nurl = \"{backend}\"\n",
        mcp_warden::authn::token_hash_hex(token),
        policies()
    ))
    .unwrap();
    let secured = Proxy::from_config(secured).await.unwrap();
    let secured_handle = secured.handle();
    let secured_url = serve(secured.into_router()).await;

    let rows = [
        (
            "HTTP backend, direct",
            measure(http_client(&backend).await, "echo", &s).await,
        ),
        (
            "HTTP backend, via proxy",
            measure(http_client(&proxied).await, "demo__echo", &s).await,
        ),
        (
            "HTTP backend, via proxy, token + 100 policies",
            measure(token_client(&secured_url, token).await, "demo__echo", &s).await,
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
        "{:<46} {:>9} {:>9} {:>10}",
        "", "p50 µs", "p99 µs", "calls/s"
    );
    for (name, f) in &rows {
        println!(
            "{name:<46} {:>9.0} {:>9.0} {:>10.0}",
            us(f.p50),
            us(f.p99),
            f.calls_per_s
        );
    }
    let (open, secured) = (&rows[1].1, &rows[2].1);
    println!(
        "authentication + 100-policy authorization add p50 +{:.0} µs, p99 +{:.0} µs to the proxy (anonymous, one permit-all policy)",
        us(secured.p50) - us(open.p50),
        us(secured.p99) - us(open.p99),
    );
    for (label, direct, through) in [
        ("HTTP", &rows[0].1, &rows[1].1),
        ("stdio", &rows[3].1, &rows[4].1),
    ] {
        println!(
            "{label} backend: proxy adds p50 +{:.0} µs ({:.2}x), p99 +{:.0} µs ({:.2}x); throughput {:.2}x of direct",
            us(through.p50) - us(direct.p50),
            us(through.p50) / us(direct.p50),
            us(through.p99) - us(direct.p99),
            us(through.p99) / us(direct.p99),
            through.calls_per_s / direct.calls_per_s,
        );
    }
    handle.shutdown().await;
    secured_handle.shutdown().await;
}

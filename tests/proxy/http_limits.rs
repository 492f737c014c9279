//! Every connection is bounded (regressions of the hardening issue): slow and idle clients
//! are cut off while a normal client is still served, request heads and bodies are bounded
//! in size and time, authentication failures cannot flood the log, the client address
//! reaches policies, the protected resource is named by configuration only, and metrics
//! and readiness live on the admin listener. Real HTTP against the real proxy, loopback.

use std::time::{Duration, Instant};

use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::audit::{records, scratch};
use crate::common::*;

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes the connection or `limit` passes; `None`
/// when it did neither (the connection is still open).
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn metric(admin: &str, line_start: &str) -> u64 {
    let text = metrics_text(admin).await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn healthz(base: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Idle connections (never sending a byte) and a body trickled a byte at a time: the
/// idle ones are closed after the header read timeout, connections past the limit get a
/// 503 at once, the trickle gets a 408 — and a normal client is served throughout.
#[tokio::test]
async fn slow_and_idle_clients_are_cut_off_and_a_normal_client_is_still_served() {
    let proxy = TestProxy::start(&format!(
        "[server]\nmax_connections = 16\nheader_read_timeout_ms = 2000\nbody_read_timeout_ms = 1000\n{}",
        stdio_backend("s", "")
    ))
    .await;
    let at = addr(&proxy.base);
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(&at).await.unwrap());
    }
    assert_eq!(
        healthz(&proxy.base).await,
        200,
        "served beside 12 idle connections"
    );
    // Fill the rest of the slots; everything past them is refused at once, clearly.
    let opened_at = Instant::now();
    let mut more = Vec::new();
    for _ in 0..10 {
        more.push(TcpStream::connect(&at).await.unwrap());
    }
    let answers = futures::future::join_all(
        more.iter_mut()
            .map(|tcp| read_until_closed(tcp, Duration::from_millis(300))),
    )
    .await;
    let mut refused = 0;
    for answer in answers.into_iter().flatten() {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
        refused += 1;
    }
    assert!(
        refused >= 6,
        "at most 16 connections are held; refused {refused}"
    );
    // The idle ones are closed once the header read timeout passes, not left open.
    for tcp in idle.iter_mut().chain(more.iter_mut()) {
        assert!(
            read_until_closed(tcp, Duration::from_secs(6))
                .await
                .is_some(),
            "an idle connection was left open"
        );
    }
    assert!(opened_at.elapsed() < Duration::from_secs(8));
    assert_eq!(
        healthz(&proxy.base).await,
        200,
        "served once the idle ones are gone"
    );

    // A body trickled a byte every 200 ms is cut off at the body read timeout.
    let mut trickle = TcpStream::connect(&at).await.unwrap();
    let head = "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n";
    trickle.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = None;
    for _ in 0..50 {
        if trickle.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), trickle.read(&mut buf)).await
        {
            answer = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    let answer = answer.expect("the trickled body was never cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    for (reason, at_least) in [
        ("connection_limit", 6),
        ("header_timeout", 10),
        ("body_timeout", 1),
    ] {
        let n = metric(
            &proxy.admin,
            &format!("mcp_warden_http_rejections_total{{reason=\"{reason}\"}}"),
        )
        .await;
        assert!(n >= at_least, "{reason}: {n}");
    }
}

/// A client that sends requests but never reads the answers: once a write has waited
/// `write_timeout_ms` the connection is closed (the head timeout does not run while the
/// server is writing, so without this it would hold its slot forever).
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    let proxy = TestProxy::start(&format!(
        "[server]\nwrite_timeout_ms = 1000\nheader_read_timeout_ms = 60000\n{}",
        stdio_backend("s", "")
    ))
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(addr(&proxy.base).parse().unwrap())
        .await
        .unwrap();
    let (_read_half_never_read, mut write) = tcp.into_split();
    let started = Instant::now();
    // Pipelined requests, never reading a response; the server stops reading them once
    // its writes wait, and closes the connection at the write timeout.
    let writer = tokio::spawn(async move {
        let batch = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(200);
        while write.write_all(&batch).await.is_ok() {}
    });
    tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the connection was never closed")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        metric(
            &proxy.admin,
            "mcp_warden_http_rejections_total{reason=\"write_timeout\"}"
        )
        .await,
        1
    );
    assert_eq!(healthz(&proxy.base).await, 200);
}

/// A request head over `max_header_bytes` gets 431 and is counted; one under it is served.
#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    let client = reqwest::Client::new();
    let big = client
        .get(format!("{}/healthz", proxy.base))
        .header("x-padding", "a".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 431);
    let fits = client
        .get(format!("{}/healthz", proxy.base))
        .header("x-padding", "a".repeat(16 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    assert_eq!(
        metric(
            &proxy.admin,
            "mcp_warden_http_rejections_total{reason=\"header_too_large\"}"
        )
        .await,
        1
    );
}

/// An unsigned token whose `iss` is 30 KB, sent again and again: each record is small,
/// and past `failures_per_minute` the client gets 429 and one record saying so.
#[tokio::test]
async fn authentication_failures_are_bounded_and_limited_per_client() {
    let (store, state) = (scratch("authflood-store"), scratch("authflood-state"));
    let config = format!(
        "[server]\nmax_header_bytes = 131072\n[auth]\nfailures_per_minute = 5\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"eve\"\n{}{}",
        mcp_warden::authn::token_hash_hex("good-token"),
        crate::audit::audit_section(&format!("file://{}", store.display()), &state, ""),
        stdio_backend("s", "")
    );
    let proxy = TestProxy::start(&config).await;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let claims = json!({"iss": "i".repeat(30 * 1024), "sub": "s".repeat(30 * 1024)});
    let token = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let response = client
            .post(&proxy.url)
            .header("authorization", format!("Bearer {token}"))
            .header("x-request-id", "r".repeat(10 * 1024))
            .body("{}")
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let retry_after: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        metric(
            &proxy.admin,
            "mcp_warden_http_rejections_total{reason=\"auth_failure_limit\"}"
        )
        .await,
        15
    );
    // The good token is never limited.
    let (_ok, _) = connect_as(&proxy.url, "good-token").await;

    proxy.handle.shutdown().await;
    let all = records(&store, &state);
    let failures: Vec<&Value> = all.iter().filter(|r| r["kind"] == "auth_failure").collect();
    assert_eq!(
        failures.len(),
        6,
        "5 failures and one saying the limit was hit"
    );
    for record in &failures {
        let size = record.to_string().len();
        assert!(size < 2048, "a record of {size} bytes");
        assert_eq!(record["detail"]["client"], "127.0.0.1");
    }
    let note = failures[5];
    assert_eq!(note["outcome"]["code"], 429);
    assert_eq!(note["outcome"]["status"], "rate_limited");
    assert!(
        note["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("failures_per_minute")
    );
}

const FORBID_LOOPBACK: &str = r#"
permit(principal, action, resource);
@id("no-loopback")
forbid(principal, action, resource) when { context.request.client like "127.*" };
"#;

const FORBID_DOC_NET: &str = r#"
permit(principal, action, resource);
@id("no-doc-net")
forbid(principal, action, resource) when { context.request.client like "203.0.113.*" };
"#;

async fn connect_with(url: &str, forwarded_for: Option<&str>) -> Client {
    let mut headers = std::collections::HashMap::new();
    if let Some(ip) = forwarded_for {
        headers.insert(
            http::HeaderName::from_static("x-forwarded-for"),
            http::HeaderValue::from_str(ip).unwrap(),
        );
    }
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).custom_headers(headers);
    TestClient::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

async fn echo_allowed(client: &Client) -> bool {
    client
        .call_tool(call("s__echo", json!({"text": "hi"})))
        .await
        .is_ok_and(|r| r.is_error != Some(true))
}

/// `context.request.client` is the peer address; `X-Forwarded-For` counts only from a
/// trusted proxy.
#[tokio::test]
async fn policies_see_the_client_address_and_forwarded_for_only_from_trusted_proxies() {
    let loopback = TestProxy::start(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = {}\n{}",
        lit(FORBID_LOOPBACK),
        stdio_backend("s", "")
    ))
    .await;
    let client = connect_with(&loopback.url, None).await;
    assert!(!echo_allowed(&client).await, "a forbid on 127.* fires");

    // Not trusted: the header is the client's to write, and ignored.
    let untrusted = TestProxy::start(&format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = {}\n{}",
        lit(FORBID_DOC_NET),
        stdio_backend("s", "")
    ))
    .await;
    let forged = connect_with(&untrusted.url, Some("203.0.113.7")).await;
    assert!(
        echo_allowed(&forged).await,
        "an untrusted X-Forwarded-For is ignored"
    );

    // Behind a trusted proxy (loopback here), the forwarded address is the client's.
    let trusted = TestProxy::start(&format!(
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[auth]\nanonymous = true\n[authz]\npolicy = {}\n{}",
        lit(FORBID_DOC_NET),
        stdio_backend("s", "")
    ))
    .await;
    let forwarded = connect_with(&trusted.url, Some("203.0.113.7")).await;
    assert!(
        !echo_allowed(&forwarded).await,
        "the forwarded client is forbidden"
    );
    let other = connect_with(&trusted.url, Some("198.51.100.1, 127.0.0.1")).await;
    assert!(echo_allowed(&other).await);
}

/// A client's `Host` header appears neither in `WWW-Authenticate` nor in the metadata.
#[tokio::test]
async fn the_protected_resource_is_named_by_configuration_not_by_the_host_header() {
    let proxy = TestProxy::start(&format!(
        "[auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"eve\"\n{}",
        mcp_warden::authn::token_hash_hex("good-token"),
        stdio_backend("s", "")
    ))
    .await;
    let client = reqwest::Client::new();
    let expected = format!("{}/.well-known/oauth-protected-resource/mcp", proxy.base);
    let response = client
        .post(&proxy.url)
        .header("host", "evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{expected}\"")
    );
    let metadata: Value = client
        .get(&expected)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{}/mcp", proxy.base));
}

/// `/metrics` and `/readyz` answer on the admin listener only.
#[tokio::test]
async fn metrics_and_readiness_are_on_the_admin_listener_only() {
    let proxy = TestProxy::start(&stdio_backend("s", "")).await;
    for path in ["/metrics", "/readyz"] {
        let data = reqwest::get(format!("{}{path}", proxy.base)).await.unwrap();
        assert_eq!(data.status(), 404, "{path} on the data listener");
        let admin = reqwest::get(format!("{}{path}", proxy.admin))
            .await
            .unwrap();
        assert_eq!(admin.status(), 200, "{path} on the admin listener");
    }
    assert_eq!(healthz(&proxy.base).await, 200, "liveness stays on both");
    assert_eq!(healthz(&proxy.admin).await, 200);
}

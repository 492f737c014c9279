//! Authentication end to end: real signed JWTs against a JWKS served over HTTP by the test,
//! static tokens, and the attack matrix — each attack answered 401 with `WWW-Authenticate`.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::common::*;

pub const ISSUER: &str = "https://idp.test/realms/warden";
pub const AUDIENCE: &str = "mcp-warden";
const STATIC_TOKEN: &str = "static-token-for-ci";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn jwk(name: &str) -> Value {
    serde_json::from_slice(&key_file(&format!("{name}.jwk.json"))).unwrap()
}

/// A JWKS endpoint whose keys the test can rotate, counting fetches.
pub struct Idp {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    pub async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"keys": *k.lock().unwrap()}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Idp { url, keys, fetches }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 600, "nbf": now() - 10,
           "realm_access": {"roles": ["analyst"]}, "tenant": "acme", "email": format!("{sub}@acme.test")})
}

pub fn sign(key: &str, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let pem = key_file(key);
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(&pem),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    encode(&header, claims, &key).unwrap()
}

async fn proxy_for(idp: &Idp) -> TestProxy {
    let hash = mcp_warden::authn::token_hash_hex(STATIC_TOKEN);
    let toml = format!(
        "[auth]\nattributes = {{ email = \"string\" }}\n\
         [[auth.issuers]]\nissuer = {}\naudiences = [{}]\njwks_url = {}\nmin_refresh_s = 1\nleeway_s = 5\n\
         principal_prefix = \"idp\"\nroles_claim = \"realm_access.roles\"\ntenant_claim = \"tenant\"\ntenants = [\"acme\"]\nclaims = {{ email = \"email\" }}\n\
         [[auth.tokens]]\nsha256 = \"{hash}\"\nid = \"ci-bot\"\nkind = \"service\"\nroles = [\"ci\"]\n{}",
        lit(ISSUER),
        lit(AUDIENCE),
        lit(&idp.url),
        stdio_backend("s", "")
    );
    TestProxy::start(&toml).await
}

/// A tools/list over raw HTTP with this bearer token: the HTTP status and WWW-Authenticate.
async fn attempt(proxy: &TestProxy, token: Option<&str>) -> (u16, Option<String>) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let mut request = reqwest::Client::new()
        .post(&proxy.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(init.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), challenge)
}

async fn client_with(
    url: &str,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("authenticated client connects")
}

#[tokio::test]
async fn valid_jwts_and_static_tokens_get_in() {
    let idp = Idp::start(vec![jwk("rsa1"), jwk("ec1")]).await;
    let proxy = proxy_for(&idp).await;
    for token in [
        sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("alice")),
        sign("ec1.pem", Algorithm::ES256, "ec-1", &claims("bob")),
        STATIC_TOKEN.to_owned(),
    ] {
        let client = client_with(&proxy.url, &token).await;
        assert!(client.peer().list_all_tools().await.unwrap().len() > 5);
    }
}

#[tokio::test]
async fn the_attack_matrix_is_refused_with_401() {
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let proxy = proxy_for(&idp).await;
    let good = claims("mallory");
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    let mut early = good.clone();
    early["nbf"] = json!(now() + 3600);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut other_tenant = good.clone();
    other_tenant["tenant"] = json!("globex");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let valid = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &good);
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut escalated = good.clone();
    escalated["realm_access"]["roles"] = json!(["admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(escalated.to_string());
    let tampered = parts.join(".");
    let mut forever = good.clone();
    forever["exp"] = json!(253_402_300_799u64); // 9999-12-31
    let mut issued_long_ago = good.clone();
    issued_long_ago["iat"] = json!(now() - 3 * 86_400);
    let critical = {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".to_owned());
        header.crit = Some(vec!["urn:example:must-understand".to_owned()]);
        header
            .extras
            .insert("urn:example:must-understand", "anything");
        let key = EncodingKey::from_rsa_pem(&key_file("rsa1.pem")).unwrap();
        encode(&header, &good, &key).unwrap()
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing token", None),
        ("alg none", Some(none)),
        (
            "HS256 signed with the RSA public key",
            Some(sign("rsa1.pub.pem", Algorithm::HS256, "rsa-1", &good)),
        ),
        (
            "expired",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &expired)),
        ),
        (
            "not yet valid",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &early)),
        ),
        (
            "wrong issuer",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &wrong_iss)),
        ),
        (
            "wrong audience",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &wrong_aud)),
        ),
        (
            "unknown kid",
            Some(sign("rsa2.pem", Algorithm::RS256, "rsa-2", &good)),
        ),
        (
            "known kid, other key",
            Some(sign("rsa2.pem", Algorithm::RS256, "rsa-1", &good)),
        ),
        ("tampered payload", Some(tampered)),
        (
            "exp in the year 9999",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &forever)),
        ),
        (
            "issued for longer than the maximum lifetime",
            Some(sign(
                "rsa1.pem",
                Algorithm::RS256,
                "rsa-1",
                &issued_long_ago,
            )),
        ),
        ("an unknown critical header extension", Some(critical)),
        (
            "another tenant",
            Some(sign("rsa1.pem", Algorithm::RS256, "rsa-1", &other_tenant)),
        ),
        ("static token guess", Some("static-token-for-cj".to_owned())),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    for (name, token) in &cases {
        let (status, challenge) = attempt(&proxy, token.as_deref()).await;
        assert_eq!(status, 401, "{name}");
        let challenge = challenge.unwrap_or_else(|| panic!("{name}: no WWW-Authenticate"));
        assert!(
            challenge.starts_with("Bearer resource_metadata=\""),
            "{name}: {challenge}"
        );
        assert_eq!(
            challenge.contains("invalid_token"),
            token.is_some(),
            "{name}: {challenge}"
        );
    }
    assert_eq!(
        attempt(&proxy, Some(&valid)).await.0,
        200,
        "the valid token still works"
    );
    // Invented kids cannot make the proxy hammer the identity provider.
    for i in 0..20 {
        let forged = sign("rsa2.pem", Algorithm::RS256, &format!("forged-{i}"), &good);
        assert_eq!(attempt(&proxy, Some(&forged)).await.0, 401);
    }
    assert!(
        idp.fetches.load(Ordering::SeqCst) <= 3,
        "fetches: {}",
        idp.fetches.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn protected_resource_metadata_names_the_issuers() {
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let proxy = proxy_for(&idp).await;
    let (_, challenge) = attempt(&proxy, None).await;
    let url = challenge.unwrap().split('"').nth(1).unwrap().to_owned();
    let metadata: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    assert!(metadata["resource"].as_str().unwrap().ends_with("/mcp"));
    let by_path: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        proxy.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(by_path, metadata);
}

#[tokio::test]
async fn a_key_rotated_in_during_traffic_is_picked_up() {
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let proxy = proxy_for(&idp).await;
    let old = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("alice"));
    let new = sign("rsa2.pem", Algorithm::RS256, "rsa-2", &claims("bob"));
    assert_eq!(
        attempt(&proxy, Some(&new)).await.0,
        401,
        "not published yet"
    );
    idp.keys.lock().unwrap().push(jwk("rsa2"));
    let traffic = {
        let (url, old) = (proxy.url.clone(), old.clone());
        tokio::spawn(async move {
            let client = client_with(&url, &old).await;
            for _ in 0..20 {
                client.peer().list_all_tools().await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1100)).await; // past min_refresh
    assert_eq!(
        attempt(&proxy, Some(&new)).await.0,
        200,
        "the new key is fetched on its first use"
    );
    idp.keys.lock().unwrap().remove(0);
    traffic
        .await
        .expect("traffic with the old key went on during the rotation");
}

#[tokio::test]
async fn a_principal_cannot_use_another_principals_session() {
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let proxy = proxy_for(&idp).await;
    let alice = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("alice"));
    let bob = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("bob"));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let post = |token: &str, session: Option<&str>, body: Value| {
        let mut r = reqwest::Client::new()
            .post(&proxy.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string());
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let opened = post(&alice, None, init).await.unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = opened.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(&alice, Some(&session), initialized)
            .await
            .unwrap()
            .status(),
        202
    );
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(
        post(&bob, Some(&session), list.clone())
            .await
            .unwrap()
            .status(),
        404,
        "bob cannot use alice's session"
    );
    assert_eq!(
        post(&alice, Some(&session), list).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_jwks() {
    let idp = Idp::start(vec![jwk("rsa1"), jwk("rsa2")]).await;
    let proxy = proxy_for(&idp).await;
    let token = sign("rsa2.pem", Algorithm::RS256, "rsa-2", &claims("alice"));
    assert_eq!(
        attempt(&proxy, Some(&token)).await.0,
        200,
        "verified and cached"
    );
    assert_eq!(
        attempt(&proxy, Some(&token)).await.0,
        200,
        "served from the cache"
    );
    // The identity provider withdraws the key (compromised); the next refresh sees it.
    idp.keys.lock().unwrap().retain(|k| k["kid"] != "rsa-2");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past min_refresh
    let unknown = sign("rsa1.pem", Algorithm::RS256, "rsa-9", &claims("bob"));
    assert_eq!(
        attempt(&proxy, Some(&unknown)).await.0,
        401,
        "forces a refresh"
    );
    assert_eq!(
        attempt(&proxy, Some(&token)).await.0,
        401,
        "the cached verification went with its key"
    );
    let other = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("carol"));
    assert_eq!(
        attempt(&proxy, Some(&other)).await.0,
        200,
        "other keys still work"
    );
}

/// A partner identity provider's token with `sub=admin` satisfied
/// `principal == Mcp::User::"admin"` and ran a payment tool. Each issuer now has its own
/// namespace of principals, and policies name it.
#[tokio::test]
async fn a_partner_admin_is_not_the_proxys_admin() {
    const PARTNER: &str = "https://partner.test";
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let policies = r#"
permit(principal, action == Mcp::Action::"list_tools", resource);
permit(principal == Mcp::User::"corp/admin", action == Mcp::Action::"s__echo", resource);
permit(principal in Mcp::Issuer::"partner", action == Mcp::Action::"s__test_simple_text", resource);
"#;
    let issuer = |iss: &str, prefix: &str| {
        format!(
            "[[auth.issuers]]\nissuer = {}\naudiences = [{}]\njwks_url = {}\nprincipal_prefix = \"{prefix}\"\n",
            lit(iss),
            lit(AUDIENCE),
            lit(&idp.url)
        )
    };
    let toml = format!(
        "[auth]\n{}{}[authz]\npolicy = {}\n{}",
        issuer(ISSUER, "corp"),
        issuer(PARTNER, "partner"),
        lit(policies),
        stdio_backend("s", "")
    );
    let proxy = TestProxy::start(&toml).await;
    let mut partner_admin = claims("admin");
    partner_admin["iss"] = json!(PARTNER);
    let tools = |token: String| {
        let url = proxy.url.clone();
        async move {
            let client = client_with(&url, &token).await;
            let mut names: Vec<String> = listed_tool_names(&client).await;
            names.sort();
            let echo = client
                .peer()
                .call_tool(call("s__echo", json!({"text": "hi"})))
                .await;
            (names, echo.is_ok())
        }
    };
    let corp = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims("admin"));
    let partner = sign("rsa1.pem", Algorithm::RS256, "rsa-1", &partner_admin);
    assert_eq!(tools(corp).await, (vec!["s__echo".to_owned()], true));
    assert_eq!(
        tools(partner).await,
        (vec!["s__test_simple_text".to_owned()], false),
        "the partner's admin is in the partner's namespace only"
    );
}

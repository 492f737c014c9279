//! HTTPS served by the proxy: a client certificate whose subject names a principal
//! (mTLS) or a bearer token when certificates are optional, a certificate of no known
//! subject refused, no connection without a certificate when they are required, and a
//! renewed server certificate or a rotated client CA in force for new connections without
//! a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

use crate::audit::scratch;
use crate::common::*;

const TOKEN: &str = "tls-token";

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn new_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate signed by `ca`: (certificate PEM, key PEM).
fn issue(ca: &Ca, names: &[&str], cn: &str, org: Option<&str>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some(org) = org {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
    }
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn config(dir: &Path, client_auth: &str) -> String {
    format!(
        "[server.tls]\ncert = {}\nkey = {}\nclient_ca = {}\nclient_auth = \"{client_auth}\"\n\
         [auth]\n[[auth.tokens]]\nsha256 = \"{}\"\nid = \"token-caller\"\nroles = [\"agent\"]\n\
         [[auth.certificates]]\ncommon_name = \"agent-1\"\norganization = \"Example\"\nroles = [\"agent\"]\n\
         [authz]\npolicy = {}\n{}",
        lit(&dir.join("server.pem").display().to_string()),
        lit(&dir.join("server.key").display().to_string()),
        lit(&dir.join("ca.pem").display().to_string()),
        mcp_warden::authn::token_hash_hex(TOKEN),
        lit("permit(principal in Mcp::Role::\"agent\", action, resource);"),
        stdio_backend("s", "")
    )
}

/// A CA, a server certificate for `localhost` and an agent's (CN=agent-1, O=Example) in
/// `dir`, and a proxy serving HTTPS with them: (CA, agent identity, proxy, port, URL).
async fn serving(dir: &Path, client_auth: &str) -> (Ca, (String, String), TestProxy, u16, String) {
    let ca = new_ca();
    write(dir, "ca.pem", &ca.pem);
    let server = issue(&ca, &["localhost"], "mcp.example.com", None);
    write(dir, "server.pem", &server.0);
    write(dir, "server.key", &server.1);
    let agent = issue(&ca, &[], "agent-1", Some("Example"));
    let proxy = TestProxy::from_config(
        mcp_warden::Config::from_toml_str(&config(dir, client_auth)).unwrap(),
    )
    .await;
    let port: u16 = proxy.base.rsplit(':').next().unwrap().parse().unwrap();
    let url = format!("https://localhost:{port}/mcp");
    (ca, agent, proxy, port, url)
}

/// An HTTPS client trusting `ca`, presenting `identity` (certificate and key PEM) if any.
fn client(ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}\n{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// `initialize` over HTTPS: the status.
async fn initialize(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Result<u16, String> {
    let mut request = client
        .post(url)
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "tls-test", "version": "1"}}})
            .to_string(),
        );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// The server certificate a fresh TLS connection to `port` is shown (DER).
async fn served_certificate(ca: &str, port: u16, identity: &(String, String)) -> Vec<u8> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(identity.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn certificates_and_tokens_authenticate_over_https_and_a_renewed_certificate_is_served() {
    let dir = scratch("tls");
    let (ca, agent, _proxy, port, url) = serving(&dir, "optional").await;
    let stranger = issue(&ca, &[], "stranger", Some("Example"));
    let elsewhere = issue(&ca, &[], "agent-1", Some("Elsewhere"));

    // The certificate names the principal; no token needed.
    assert_eq!(
        initialize(&client(&ca.pem, Some(&agent)), &url, None).await,
        Ok(200)
    );
    // A verified certificate whose subject names nobody (or the right CN in another
    // organization) is refused.
    for other in [&stranger, &elsewhere] {
        assert_eq!(
            initialize(&client(&ca.pem, Some(other)), &url, None).await,
            Ok(401)
        );
    }
    // Certificates optional: a token still works, and nothing at all does not.
    assert_eq!(
        initialize(&client(&ca.pem, None), &url, Some(TOKEN)).await,
        Ok(200)
    );
    assert_eq!(
        initialize(&client(&ca.pem, None), &url, None).await,
        Ok(401)
    );
    // Plain HTTP on the TLS port is not served.
    let plain = initialize(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}/mcp"),
        Some(TOKEN),
    )
    .await;
    assert!(!matches!(plain, Ok(200)), "{plain:?}");

    // A renewed certificate reaches new connections, with no restart.
    let first = served_certificate(&ca.pem, port, &agent).await;
    let renewed = issue(&ca, &["localhost"], "mcp.example.com renewed", None);
    write(&dir, "server.key.new", &renewed.1);
    write(&dir, "server.pem.new", &renewed.0);
    std::fs::rename(dir.join("server.key.new"), dir.join("server.key")).unwrap();
    std::fs::rename(dir.join("server.pem.new"), dir.join("server.pem")).unwrap();
    until("the renewed certificate is served", 20, async || {
        served_certificate(&ca.pem, port, &agent).await != first
    })
    .await;
    assert_eq!(
        initialize(&client(&ca.pem, Some(&agent)), &url, None).await,
        Ok(200)
    );

    // The client CA rotated: the new CA's agents get in, the old CA's no longer do.
    let next = new_ca();
    let next_agent = issue(&next, &[], "agent-1", Some("Example"));
    write(&dir, "ca.pem.new", &next.pem);
    std::fs::rename(dir.join("ca.pem.new"), dir.join("ca.pem")).unwrap();
    until("the rotated client CA is in force", 20, async || {
        initialize(&client(&ca.pem, Some(&next_agent)), &url, None).await == Ok(200)
    })
    .await;
    let old = initialize(&client(&ca.pem, Some(&agent)), &url, None).await;
    assert!(!matches!(old, Ok(200)), "{old:?}");
}

#[tokio::test]
async fn required_client_certificates_refuse_a_connection_without_one() {
    let dir = scratch("tls-required");
    let (ca, agent, _proxy, _port, url) = serving(&dir, "required").await;
    assert_eq!(
        initialize(&client(&ca.pem, Some(&agent)), &url, None).await,
        Ok(200)
    );
    // No certificate, even with a good token: the handshake itself fails.
    let refused = initialize(&client(&ca.pem, None), &url, Some(TOKEN)).await;
    assert!(refused.is_err(), "{refused:?}");
    // A certificate from another CA is refused at the handshake too.
    let other_ca = new_ca();
    let forged = issue(&other_ca, &[], "agent-1", Some("Example"));
    let refused = initialize(&client(&ca.pem, Some(&forged)), &url, None).await;
    assert!(refused.is_err(), "{refused:?}");
    // What the file asks for is checked: certificates without a CA to check them by.
    let bad = mcp_warden::Config::from_toml_str(&config(&dir, "required").replace(
        &format!(
            "client_ca = {}\n",
            lit(&dir.join("ca.pem").display().to_string())
        ),
        "",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("server.tls.client_auth") && bad.contains("auth.certificates"),
        "{bad}"
    );
}

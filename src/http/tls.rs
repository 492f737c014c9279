//! HTTPS served by the proxy itself (rustls). The certificate, its key and the client CA
//! come from PEM files and are read again when one changes (checked every few seconds: a
//! renewed certificate or a rotated CA reaches new connections with no restart, and a
//! broken renewal keeps the previous configuration serving, said in the log). With `client_ca`, clients are asked for a certificate that
//! chains to it (mTLS); its subject can name a principal (`[[auth.certificates]]`), which
//! the authentication layer reads from [`ClientCertificate`] in each request.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio_util::sync::CancellationToken;

use crate::config::TlsSettings;

/// How often the certificate files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// A connection's verified client certificate, as its requests carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    pub common_name: Option<String>,
    pub organization: Option<String>,
}

impl ClientCertificate {
    /// The subject of a certificate (DER) the handshake verified.
    pub fn of(der: &[u8]) -> Option<ClientCertificate> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        Some(ClientCertificate {
            common_name: subject
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned),
            organization: subject
                .iter_organization()
                .next()
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned),
        })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls.{key} `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.{key} `{}`: no certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The server configuration the files say now.
fn build(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let chain = certificates(&settings.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .map_err(|e| format!("server.tls.key `{}`: {e}", settings.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client_ca")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("server.tls.client_ca `{}`: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if settings.client_required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("server.tls.client_ca: {e}"))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("server.tls: the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS configuration in force, swapped when its files change.
pub struct Tls {
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    /// The acceptor of a new connection (with the configuration in force now).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }
}

fn modified(paths: &[&PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// TLS as `settings` say; the files are watched until `stop`.
pub fn start(settings: &TlsSettings, stop: CancellationToken) -> Result<Arc<Tls>, String> {
    let tls = Arc::new(Tls {
        current: ArcSwap::from_pointee(build(settings)?),
    });
    watch(settings.clone(), tls.clone(), stop);
    Ok(tls)
}

/// Reads the files again whenever one of them changes.
fn watch(settings: TlsSettings, tls: Arc<Tls>, stop: CancellationToken) {
    tokio::spawn(async move {
        let paths: Vec<&PathBuf> = [&settings.cert, &settings.key]
            .into_iter()
            .chain(settings.client_ca.as_ref())
            .collect();
        let mut seen = modified(&paths);
        loop {
            tokio::select! {
                () = tokio::time::sleep(RELOAD_CHECK) => {}
                () = stop.cancelled() => return,
            }
            let now = modified(&paths);
            if now == seen {
                continue;
            }
            seen = now;
            match build(&settings) {
                Ok(config) => {
                    tls.current.store(Arc::new(config));
                    tracing::info!(cert = %settings.cert.display(), "TLS certificate and client CA reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS files not reloaded: the previous configuration keeps serving");
                }
            }
        }
    });
}

//! HTTPS served by the proxy itself (rustls). The certificate and key come from PEM files
//! and are read again when they change (checked every few seconds: a renewed certificate
//! reaches new connections with no restart, and a broken renewal keeps the previous one
//! serving, said in the log). With `client_ca`, clients are asked for a certificate that
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
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
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

/// The certificate and key in force, swapped when the files change.
#[derive(Debug)]
struct Reloading {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_key(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls.cert `{}`: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "server.tls.cert `{}`: no certificate in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.tls.key `{}`: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| format!("server.tls: the key does not fit the certificate: {e}"))
}

fn modified(paths: &[&PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The acceptor for `settings`; the certificate is watched until `stop`.
pub fn acceptor(
    settings: &TlsSettings,
    stop: CancellationToken,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let resolver = Arc::new(Reloading {
        current: ArcSwap::from_pointee(read_key(&settings.cert, &settings.key)?),
    });
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?;
    let builder = match &settings.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("server.tls.client_ca `{}`: {e}", ca.display()))?;
            for cert in certs {
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
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    watch(settings.clone(), resolver, stop);
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Reads the certificate again whenever its files change.
fn watch(settings: TlsSettings, resolver: Arc<Reloading>, stop: CancellationToken) {
    tokio::spawn(async move {
        let paths = [&settings.cert, &settings.key];
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
            match read_key(&settings.cert, &settings.key) {
                Ok(key) => {
                    resolver.current.store(Arc::new(key));
                    tracing::info!(cert = %settings.cert.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded: the previous one keeps serving");
                }
            }
        }
    });
}

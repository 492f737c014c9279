//! The listeners' sections: `[server]` (bind, path, bounds on connections and requests,
//! trusted proxies, TLS, the log level) and `[admin]` (its bind, off loopback only when
//! asked for). Part of the one validation pass of [`super::validate`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::super::{
    AdminSettings, ConnectionLimits, ServerSettings, TlsSettings, file::FileConfig,
};
use super::{Issues, name_char};

const DEFAULT_BIND: &str = "127.0.0.1:8808";
const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:8809";
/// hyper's smallest read buffer: a head limit below it cannot be enforced.
const MIN_HEADER_BYTES: usize = 8 * 1024;

pub(super) fn server(file: &FileConfig, issues: &mut Issues) -> Option<ServerSettings> {
    let s = &file.server;
    let bind = s.bind.as_deref().unwrap_or(DEFAULT_BIND);
    let bind: Option<SocketAddr> = match bind.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.push(
                "server.bind",
                format!("`{bind}` is not a `host:port` socket address"),
            );
            None
        }
    };
    let path = s.path.clone().unwrap_or_else(|| "/mcp".to_owned());
    if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ']) {
        issues.push(
            "server.path",
            format!("`{path}` must be an absolute path such as `/mcp`"),
        );
    }
    let separator = s.separator.clone().unwrap_or_else(|| "__".to_owned());
    if separator.is_empty() || separator.len() > 8 || !separator.chars().all(name_char) {
        issues.push(
            "server.separator",
            format!("`{separator}` must be 1 to 8 characters from `A-Z a-z 0-9 _ - .`"),
        );
    }
    let max_body_bytes = s.max_body_bytes.unwrap_or(4 * 1024 * 1024);
    if max_body_bytes < 1024 {
        issues.push("server.max_body_bytes", "must be at least 1024");
    }
    let page_size = s.page_size.unwrap_or(100);
    if page_size == 0 || page_size > 10_000 {
        issues.push("server.page_size", "must be between 1 and 10000");
    }
    let allowed_hosts = s
        .allowed_hosts
        .clone()
        .unwrap_or_else(|| ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec());
    let drain_timeout = Duration::from_millis(s.drain_timeout_ms.unwrap_or(10_000));
    let connections = connection_limits(s, issues);
    let trusted_proxies = s
        .trusted_proxies
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, net)| match parse_net(net) {
            Some(net) => Some(net),
            None => {
                issues.push(
                    format!("server.trusted_proxies[{i}]"),
                    format!("`{net}` is not an address or CIDR such as `10.0.0.0/8`"),
                );
                None
            }
        })
        .collect();
    let max_sessions = s.max_sessions.unwrap_or(10_000);
    if max_sessions == 0 {
        issues.push("server.max_sessions", "must be at least 1");
    }
    let max_sessions_per_principal = s.max_sessions_per_principal.unwrap_or(64);
    if max_sessions_per_principal == 0 {
        issues.push("server.max_sessions_per_principal", "must be at least 1");
    }
    let session_idle_timeout = match s.session_idle_timeout_s {
        Some(0) => {
            issues.push("server.session_idle_timeout_s", "must be greater than 0");
            Duration::from_secs(300)
        }
        Some(secs) => Duration::from_secs(secs),
        None => Duration::from_secs(300),
    };
    let tls = file.server.tls.as_ref().and_then(|t| tls(t, issues));
    let log_level = file.server.log_level.clone();
    if let Some(level) = &log_level
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
    {
        issues.push("server.log_level", format!("`{level}`: {e}"));
    }
    Some(ServerSettings {
        bind: bind?,
        tls,
        log_level,
        path,
        separator,
        max_body_bytes,
        page_size,
        allowed_hosts,
        drain_timeout,
        connections,
        trusted_proxies,
        max_sessions,
        max_sessions_per_principal,
        session_idle_timeout,
        sessions: Default::default(),
    })
}

fn connection_limits(
    s: &super::super::file::ServerSection,
    issues: &mut Issues,
) -> ConnectionLimits {
    let d = ConnectionLimits::default();
    let max_connections = s.max_connections.unwrap_or(d.max_connections);
    if max_connections == 0 {
        issues.push("server.max_connections", "must be at least 1");
    }
    let max_header_bytes = s.max_header_bytes.unwrap_or(d.max_header_bytes);
    if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&max_header_bytes) {
        issues.push(
            "server.max_header_bytes",
            format!("must be between {MIN_HEADER_BYTES} and 1048576"),
        );
    }
    let ms = |v: Option<u64>, default: Duration, path: &str, issues: &mut Issues| match v {
        Some(0) => {
            issues.push(path, "must be greater than 0");
            default
        }
        Some(ms) => Duration::from_millis(ms),
        None => default,
    };
    ConnectionLimits {
        max_connections,
        header_read_timeout: ms(
            s.header_read_timeout_ms,
            d.header_read_timeout,
            "server.header_read_timeout_ms",
            issues,
        ),
        body_read_timeout: ms(
            s.body_read_timeout_ms,
            d.body_read_timeout,
            "server.body_read_timeout_ms",
            issues,
        ),
        write_timeout: ms(
            s.write_timeout_ms,
            d.write_timeout,
            "server.write_timeout_ms",
            issues,
        ),
        max_header_bytes,
    }
}

/// An address or a CIDR (`10.0.0.0/8`, `::1`).
pub(in crate::config) fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(ipnet::IpNet::from)
        })
        .map(|net| net.trunc())
}

pub(super) fn admin(file: &FileConfig, issues: &mut Issues) -> Option<AdminSettings> {
    let bind = file.admin.bind.as_deref().unwrap_or(DEFAULT_ADMIN_BIND);
    let remote = file.admin.allow_remote.unwrap_or(false);
    match bind.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() || remote => Some(AdminSettings {
            bind: addr,
            switches: file.admin.switches.as_ref().map(PathBuf::from),
            required_backends: file.admin.required_backends.clone(),
            allow_remote: remote,
            tenant_metrics: file.admin.tenant_metrics.unwrap_or(false),
        }),
        Ok(_) => {
            issues.push(
                "admin.bind",
                format!(
                    "`{bind}` must be a loopback address: its /metrics and /readyz are not authenticated (`allow_remote = true` allows it, for probes and scrapers from outside)"
                ),
            );
            None
        }
        Err(_) => {
            issues.push(
                "admin.bind",
                format!("`{bind}` is not a `host:port` socket address"),
            );
            None
        }
    }
}

/// `[server.tls]`: both files named; `client_auth` only with a CA to check clients by.
fn tls(t: &super::super::file::TlsSection, issues: &mut Issues) -> Option<TlsSettings> {
    let mut path = |value: &Option<String>, key: &str| match value.as_deref() {
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => {
            issues.push(format!("server.tls.{key}"), "required: a PEM file");
            None
        }
    };
    let (cert, key) = (path(&t.cert, "cert"), path(&t.key, "key"));
    let client_ca = t.client_ca.as_deref().map(PathBuf::from);
    let client_required = match (t.client_auth.as_deref(), &client_ca) {
        (None | Some("required"), Some(_)) => true,
        (Some("optional"), Some(_)) | (None, None) => false,
        (Some("required" | "optional"), None) => {
            issues.push(
                "server.tls.client_auth",
                "needs `client_ca`: the CA client certificates must chain to",
            );
            false
        }
        (Some(other), _) => {
            issues.push(
                "server.tls.client_auth",
                format!("`{other}`: `required` or `optional`"),
            );
            false
        }
    };
    Some(TlsSettings {
        cert: cert?,
        key: key?,
        client_ca,
        client_required,
    })
}

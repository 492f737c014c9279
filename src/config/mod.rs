//! Configuration in two steps: [`file`] is what the operator wrote (TOML, or the
//! `mcpServers` JSON of desktop clients); [`validate`] checks all of it without I/O and
//! reports every problem at once with its path, producing the [`Config`] the runtime uses.
//! `mcp-warden check` runs exactly this validation.

mod audit;
mod auth;
mod authz;
pub mod file;
mod in_process;
pub mod laptop;
pub mod mcp_json;
mod parse;
mod sessions;
mod tools;
mod traces;
mod validate;

use parse::parse_toml;

pub use audit::AuditSection;
pub use auth::{
    AttrKind, AuthSettings, CertificateSettings, DEFAULT_FAILURES_PER_MINUTE, IssuerSettings,
    KeySource, TokenSettings, resource_needed,
};
pub use authz::{ALLOW_ALL, ApprovalSettings, AuthzSettings};
pub use sessions::{SessionKeys, SessionSharing, SessionsSection};
pub use tools::{RuleSection, ToolsSection, ToolsSettings};
pub use traces::{EXPORT_BUILT as TRACE_EXPORT_BUILT, TracingSection, TracingSettings};

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub use in_process::InProcess;
pub use validate::{MAX_NAME_LEN, check_backends, validate};

/// A validated configuration: everything the runtime needs, defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub backends: Vec<BackendSettings>,
    pub auth: AuthSettings,
    pub authz: AuthzSettings,
    /// The audit log; `None` when the file has no `[audit]` section.
    pub audit: Option<crate::audit::AuditSettings>,
    /// Rate limits (empty when the file has no `[limits]`).
    pub limits: crate::governance::LimitsSettings,
    /// Guards as written (they compiled at validation).
    pub guards: crate::governance::config::GuardsSection,
    /// Trace export and whose trace context is continued (`[tracing]`).
    pub tracing: TracingSettings,
    /// Tool integrity: pins, description rules (`[tools]`).
    pub tools: ToolsSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// HTTPS served directly, when configured.
    pub tls: Option<TlsSettings>,
    /// The log filter the file asks for (`MCP_WARDEN_LOG` wins).
    pub log_level: Option<String>,
    pub path: String,
    pub separator: String,
    pub max_body_bytes: usize,
    pub page_size: usize,
    pub allowed_hosts: Vec<String>,
    pub drain_timeout: Duration,
    /// Bounds on client connections (count, head size, read times).
    pub connections: ConnectionLimits,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open MCP sessions at most, in total and per principal.
    pub max_sessions: usize,
    pub max_sessions_per_principal: usize,
    /// A session idle this long ends.
    pub session_idle_timeout: Duration,
    /// `[sessions]`: how sessions travel between replicas.
    pub sessions: SessionSharing,
}

/// What one client connection may hold and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// How long one write may wait for the client to read.
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
        }
    }
}

/// `[admin]`: where `/metrics`, `/readyz` and `/healthz` are served (loopback only).
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub bind: SocketAddr,
    /// The kill switch's file; `None`: next to the audit state (or, without an audit log,
    /// kept in memory only).
    pub switches: Option<PathBuf>,
    /// Backends `/readyz` requires connected and answering (`None`: any one connected).
    pub required_backends: Option<Vec<String>>,
    /// `bind` may be off loopback (asked for explicitly).
    pub allow_remote: bool,
    /// Requests counted by tenant (asked for explicitly).
    pub tenant_metrics: bool,
}

impl AdminSettings {
    /// Where the kill switch's set is persisted, if anywhere.
    pub fn switches_file(&self, audit: Option<&crate::audit::AuditSettings>) -> Option<PathBuf> {
        self.switches
            .clone()
            .or_else(|| audit.map(|a| a.state_dir.join("switches.json")))
    }
}

#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub name: String,
    /// Empty: names are exposed unchanged.
    pub namespace: String,
    pub transport: Transport,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub filter: NameFilter,
    /// Backend tool name -> exposed name.
    pub aliases: BTreeMap<String, String>,
    pub optional: bool,
    pub protocol: BackendProtocol,
    /// Operator-set hints, by the backend's own tool name.
    pub hints: BTreeMap<String, file::HintSection>,
    /// Whether the backend's own annotations count (else only `hints` do).
    pub trust_hints: bool,
    /// Tools (the backend's own names) whose calls may carry only declared arguments.
    pub refuse_undeclared: Option<globset::GlobSet>,
    /// Overrides of the global `[limits]` for this backend.
    pub limits: Option<crate::governance::config::BackendLimitsSection>,
    /// Per-tool settings (timeouts, cache, coalescing), by the backend's own tool name.
    pub tools: BTreeMap<String, crate::governance::config::ToolSection>,
    /// stdio: one child per client session (`per_session = true`).
    pub per_session: Option<PerSession>,
    /// The tenants it belongs to, sorted; empty: shared by every tenant.
    pub tenants: Vec<String>,
    /// Signs who each call is for (`actor = true`, a child mcp-warden).
    pub actor: Option<std::sync::Arc<crate::federation::ActorSigner>>,
}

/// A stdio backend run as one child per client session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerSession {
    pub max_children: usize,
    pub idle_timeout: Duration,
}

/// How the proxy opens a backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendProtocol {
    /// The `initialize` handshake (2025-11-25): the backend may send sampling, elicitation
    /// and roots requests, and unscoped notifications.
    Initialize,
    /// Probe `server/discover`; 2026-07-28 when served (input requests arrive as
    /// input-required results, list changes on `subscriptions/listen`), else `initialize`.
    Auto,
}

#[derive(Debug, Clone)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        env_allow: Vec<String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
        /// Reuse connections between calls (keep-alive); `false` opens one per request.
        keep_alive: bool,
    },
    /// Served inside the embedding application (library mode only).
    InProcess(InProcess),
}

/// `[server.tls]`, paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// A client certificate is required (else verified when presented).
    pub client_required: bool,
}

/// Expose/hide globs over a backend's own names.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    expose: Option<globset::GlobSet>,
    hide: Option<globset::GlobSet>,
    /// `expose` and `hide` as written.
    patterns: (Vec<String>, Vec<String>),
}

impl NameFilter {
    pub fn new(expose: Option<globset::GlobSet>, hide: Option<globset::GlobSet>) -> Self {
        Self {
            expose,
            hide,
            patterns: Default::default(),
        }
    }

    /// The globs as written, in the order of their sets, for [`NameFilter::unmatched`].
    pub fn with_patterns(mut self, expose: &[String], hide: &[String]) -> Self {
        self.patterns = (expose.to_vec(), hide.to_vec());
        self
    }

    /// `(field, glob)` of every glob that matches none of `names`: a `hide = ["get_env"]`
    /// for a tool called `get-env` leaves the tool exposed without a word otherwise.
    pub fn unmatched<'a>(
        &self,
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for (field, set, patterns) in [
            ("expose", &self.expose, &self.patterns.0),
            ("hide", &self.hide, &self.patterns.1),
        ] {
            let Some(set) = set else { continue };
            let mut hit = vec![false; set.len()];
            for name in names.clone() {
                for i in set.matches(name) {
                    hit[i] = true;
                }
            }
            out.extend(
                (hit.iter().zip(patterns))
                    .filter(|(hit, _)| !**hit)
                    .map(|(_, p)| (field, p.as_str())),
            );
        }
        out
    }

    /// Whether a backend's tool or prompt called `name` is exposed at all.
    pub fn allows(&self, name: &str) -> bool {
        if self.hide.as_ref().is_some_and(|h| h.is_match(name)) {
            return false;
        }
        self.expose.as_ref().is_none_or(|e| e.is_match(name))
    }
}

/// One problem in a configuration, at a path such as `backends[2].command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

/// Everything wrong with a configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            issues: vec![ConfigIssue {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid configuration ({n} error{})",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {}: {}", issue.path, issue.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a TOML file (and the `mcpServers` JSON it imports), then validates it.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = read(path, "config")?;
        let mut file = parse_toml(&text)?;
        if let Some(section) = file.audit.as_mut() {
            audit::expand_env(section, &|name| std::env::var(name).ok())?;
        }
        if let Some(import) = file.import.take() {
            let import_path = path.parent().unwrap_or(Path::new(".")).join(&import);
            let json = read(&import_path, "import")?;
            let imported = mcp_json::parse(&json, &|name| std::env::var(name).ok())?;
            warn(&imported.warnings);
            let mut servers = imported.backends;
            // A `[[backends]]` entry that names an imported server and has neither `command`
            // nor `url` adds its settings (hide, aliases, limits…) to that server.
            let mut unmatched = Vec::new();
            for section in std::mem::take(&mut file.backends) {
                let target = (section.command.is_none() && section.url.is_none())
                    .then(|| servers.iter_mut().find(|s| s.name == section.name))
                    .flatten();
                match target {
                    Some(server) => server.override_with(section),
                    None => unmatched.push(section),
                }
            }
            file.backends = unmatched;
            file.backends.extend(servers);
        }
        if let Some(section) = file.authz.clone() {
            authz::load(&section, path.parent().unwrap_or(Path::new(".")), &mut file)?;
        }
        if let Some(section) = file.tools.clone() {
            tools::load(
                &section,
                path.parent().unwrap_or(Path::new(".")),
                &mut file.tools_lock,
            )?;
        }
        federation_files(&mut file, path.parent().unwrap_or(Path::new(".")))?;
        if let Some(section) = file.sessions.clone() {
            sessions::load(
                &section,
                path.parent().unwrap_or(Path::new(".")),
                &mut file.session_keys,
            )?;
        }
        let mut config = validate(&file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(audit) = config.audit.as_mut() {
            audit::resolve(audit, base);
        }
        if let Some(file) = config.admin.switches.as_mut()
            && file.is_relative()
        {
            *file = base.join(&*file);
        }
        if let Some(tls) = config.server.tls.as_mut() {
            for file in [&mut tls.cert, &mut tls.key]
                .into_iter()
                .chain(tls.client_ca.as_mut())
            {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Reads an `mcpServers` JSON file and serves its servers with default settings.
    pub fn from_mcp_json_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let text = read(path.as_ref(), "mcp-json")?;
        let imported = mcp_json::parse(&text, &|name| std::env::var(name).ok())?;
        warn(&imported.warnings);
        let backends = imported.backends;
        // The file a desktop client keeps: a laptop, on loopback, without identities, where
        // the user may use every tool they configured.
        let auth = Some(file::AuthSection {
            anonymous: Some(true),
            ..Default::default()
        });
        let authz = Some(file::AuthzSection {
            policy: Some(ALLOW_ALL.to_owned()),
            ..Default::default()
        });
        // Every request is recorded here too, in the user's state directory.
        let source = std::fs::canonicalize(path.as_ref())
            .unwrap_or_else(|_| path.as_ref().to_owned())
            .display()
            .to_string();
        let home =
            laptop::instance_home(&source).map_err(|e| ConfigError::one("audit", e.to_string()))?;
        let mut config = validate(&file::FileConfig {
            backends,
            auth,
            authz,
            audit: Some(laptop::audit_section(&home)),
            ..Default::default()
        })?;
        if let Some(audit) = config.audit.as_mut() {
            audit::resolve(audit, &home);
        }
        Ok(config)
    }

    /// Parses and validates TOML text. Pure: an `import` key is refused here because it
    /// would need a file.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let file = parse_toml(text)?;
        if file.import.is_some() {
            return Err(ConfigError::one(
                "import",
                "only allowed in a config read from a file",
            ));
        }
        validate(&file)
    }
}

/// What an imported file made of the user's entries, told once at load.
fn warn(warnings: &[String]) {
    for warning in warnings {
        tracing::warn!("{warning}");
    }
}

/// Reads the federation's key files: this gateway's signing key, its parents' public keys.
fn federation_files(file: &mut file::FileConfig, base: &Path) -> Result<(), ConfigError> {
    if let Some(name) = file.federation.as_ref().and_then(|f| f.signing_key.clone()) {
        let path = base.join(&name);
        file.federation_key = Some(file::PolicyFile {
            file: path.display().to_string(),
            text: read(&path, "federation.signing_key")?,
        });
    }
    let parents: Vec<String> = file
        .auth
        .iter()
        .flat_map(|a| a.parents.iter().map(|p| p.public_key.clone()))
        .collect();
    for (i, name) in parents.into_iter().enumerate() {
        let path = base.join(&name);
        file.parent_keys.push(file::PolicyFile {
            file: path.display().to_string(),
            text: read(&path, &format!("auth.parents[{i}].public_key"))?,
        });
    }
    Ok(())
}

pub(crate) fn read(path: &Path, what: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(what, format!("cannot read `{}`: {e}", path.display())))
}

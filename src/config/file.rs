//! What the operator wrote: serde types of the TOML file, with no defaults applied and no
//! I/O. `validate` turns this into the runtime [`super::Settings`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub admin: AdminSection,
    /// Path of an `mcpServers` JSON file (Claude Desktop, Claude Code, Cursor) whose servers
    /// are added as backends. Relative to the config file.
    #[serde(default)]
    pub import: Option<String>,
    #[serde(default)]
    pub backends: Vec<BackendSection>,
    #[serde(default)]
    pub auth: Option<AuthSection>,
    #[serde(default)]
    pub authz: Option<AuthzSection>,
    /// The tamper-evident audit log.
    #[serde(default)]
    pub audit: Option<super::audit::AuditSection>,
    /// Traffic governance: rate limits.
    #[serde(default)]
    pub limits: Option<crate::governance::LimitsSection>,
    /// Argument and result guards: size limits, content rules, redaction.
    #[serde(default)]
    pub guards: Option<crate::governance::config::GuardsSection>,
    /// Tool integrity: the lock file, `pinning`, description rules.
    #[serde(default)]
    pub tools: Option<super::ToolsSection>,
    /// The text of `tools.lock`, read by the loader.
    #[serde(skip)]
    pub tools_lock: Option<PolicyFile>,
    /// Sessions any replica can serve: sealed ids or Redis.
    #[serde(default)]
    pub sessions: Option<super::SessionsSection>,
    /// The text of `sessions.key_file`, read by the loader.
    #[serde(skip)]
    pub session_keys: Option<PolicyFile>,
    /// This gateway as a parent of others.
    #[serde(default)]
    pub federation: Option<FederationSection>,
    /// The text of `federation.signing_key`, read by the loader.
    #[serde(skip)]
    pub federation_key: Option<PolicyFile>,
    /// The texts of `auth.parents[].public_key`, read by the loader, in order.
    #[serde(skip)]
    pub parent_keys: Vec<PolicyFile>,
    /// OpenTelemetry trace export (`otel` builds).
    #[serde(default)]
    pub tracing: Option<super::TracingSection>,
    /// The `.cedar` files of `authz.policies`, read by the loader (not part of the TOML).
    #[serde(skip)]
    pub policy_files: Vec<PolicyFile>,
    /// The text of `authz.tools`, read by the loader.
    #[serde(skip)]
    pub policy_files_catalog: Option<PolicyFile>,
}

/// `[authz]`: the Cedar policies that decide every request (deny by default).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzSection {
    /// A directory of `.cedar` files, relative to the config file.
    pub policies: Option<String>,
    /// Policy text in the config itself (small setups, tests).
    pub policy: Option<String>,
    /// A saved tool catalog (JSON) to validate policies against when backends are not
    /// running (`mcp-warden check`, `policy validate` in CI).
    pub tools: Option<String>,
    /// How long a call that needs a person's approval (`@approval`) is held waiting for
    /// it before the caller is told to call again (default 30 s; 0: not held).
    pub approval_wait_s: Option<u64>,
    /// How long a request for approval stays open, and an approval stays usable by the
    /// same call (default 900 s).
    pub approval_expire_s: Option<u64>,
}

/// One policy file as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// Path as shown in errors.
    pub file: String,
    pub text: String,
}

/// `[auth]`: who may call. At least one of `anonymous`, `issuers`, `tokens` must be set.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Every caller is the principal `anonymous` (role `anonymous`). Only on a loopback bind.
    pub anonymous: Option<bool>,
    /// The URL clients use for this server, named in protected-resource metadata and
    /// `WWW-Authenticate`; default `http://<bind><path>`, and required when `server.bind`
    /// is not a loopback address.
    pub resource: Option<String>,
    /// Authentication failures recorded per client address and minute (a burst of as
    /// many); beyond it the client gets 429 and the failures are counted, not recorded;
    /// default 60.
    pub failures_per_minute: Option<u32>,
    /// Claim attributes the policies may use: attribute name -> `string`, `long`, `bool`
    /// or `set` (of strings).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub issuers: Vec<IssuerSection>,
    #[serde(default)]
    pub tokens: Vec<TokenSection>,
    /// Client certificates that name principals (mTLS).
    #[serde(default)]
    pub certificates: Vec<CertificateSection>,
    /// Gateways this one sits behind: each may say which principal a call is for.
    #[serde(default)]
    pub parents: Vec<ParentSection>,
}

/// `[[auth.parents]]`: a parent mcp-warden whose signed assertions of who a call is for
/// are believed (`warden-actor`); the principal is then `<parent>/<id>`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentSection {
    /// The id of the principal the parent authenticates as (its token's or JWT's).
    pub principal: String,
    /// The parent's verifier key (`mcp-warden audit keygen`'s `.pub`), relative to the
    /// config file; its name names the parent.
    pub public_key: String,
}

/// `[federation]`: this gateway as a parent of others.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// A C2SP signer key (`mcp-warden audit keygen --name <this gateway> --out ...`),
    /// relative to the config file: it signs who each call to an `actor = true` backend
    /// is for.
    pub signing_key: Option<String>,
}

/// `[[auth.issuers]]`: an identity provider whose JWTs are accepted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSection {
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Keys from a URL (cached, refreshed in the background) ...
    pub jwks_url: Option<String>,
    /// ... or from a file.
    pub jwks_file: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds; default 30.
    pub leeway_s: Option<u64>,
    /// Background refresh interval of a `jwks_url`, in seconds; default 300.
    pub refresh_s: Option<u64>,
    /// Least time between two refreshes caused by an unknown `kid`, in seconds; default 30.
    pub min_refresh_s: Option<u64>,
    /// Longest lifetime a token may have (from `iat`, or from now when it has none), in
    /// seconds; default 86 400 (24 h). A token valid for longer is refused.
    pub max_lifetime_s: Option<u64>,
    /// Claim paths (dot-separated) of the principal's parts.
    pub subject_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub tenant_claim: Option<String>,
    /// A claim holding `user`, `agent` or `service`; absent claim: `kind`.
    pub kind_claim: Option<String>,
    /// The kind of principal this issuer's tokens are for; default `user`.
    pub kind: Option<String>,
    /// Attribute name -> claim path, for attributes declared in `auth.attributes`.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The namespace of this issuer's principals: with `principal_prefix = "partner"`, a
    /// token with `sub = "admin"` is `Mcp::User::"partner/admin"` (roles and tenant are
    /// prefixed alike) and is in `Mcp::Issuer::"partner"`. Required when more than one
    /// issuer, or an issuer and static tokens, are configured.
    pub principal_prefix: Option<String>,
    /// Tenants this proxy serves; a token for any other tenant (or none) is refused.
    /// Empty: any tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
}

/// Hints of one tool, as policies see them (`resource.read_only`, ...).
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HintSection {
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub idempotent: Option<bool>,
    pub open_world: Option<bool>,
}

/// `[server.tls]`: the certificate the proxy serves, and the client certificates it asks
/// for (mTLS). PEM files, relative to the config file; read again when they change.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain, leaf first.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// CA certificates that client certificates must chain to; asks clients for one.
    pub client_ca: Option<String>,
    /// `required` (default with `client_ca`): no connection without a valid client
    /// certificate; `optional`: one is verified when presented, bearer tokens still work.
    pub client_auth: Option<String>,
}

/// `[[auth.certificates]]`: a client certificate (verified against `server.tls.client_ca`)
/// whose subject names a principal, as a token's hash does.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    /// The subject's common name (CN).
    pub common_name: Option<String>,
    /// The subject's organization (O), when it must match too.
    pub organization: Option<String>,
    pub id: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

/// `[[auth.tokens]]`: a static bearer token, stored only as its SHA-256.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// Hex SHA-256 of the token (`mcp-warden hash-token` prints it).
    pub sha256: Option<String>,
    pub id: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub tenant: Option<String>,
}

/// `[server]`: the client-facing endpoint.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port`; default `127.0.0.1:8808`.
    pub bind: Option<String>,
    /// Serve HTTPS directly (else plain HTTP, for TLS ended in front).
    pub tls: Option<TlsSection>,
    /// Log level and per-module filters, in tracing's syntax (`info`,
    /// `info,mcp_warden::backend=debug`); the `MCP_WARDEN_LOG` environment variable wins.
    pub log_level: Option<String>,
    /// Path of the MCP endpoint; default `/mcp`.
    pub path: Option<String>,
    /// Between a backend's namespace and a tool or prompt name; default `__`.
    pub separator: Option<String>,
    /// Largest accepted request body; default 4 MiB.
    pub max_body_bytes: Option<usize>,
    /// Items per page of an aggregated list; default 100.
    pub page_size: Option<usize>,
    /// Host headers accepted (DNS-rebinding protection); default loopback names only.
    pub allowed_hosts: Option<Vec<String>>,
    /// How long shutdown waits for in-flight calls, in milliseconds; default 10 000.
    pub drain_timeout_ms: Option<u64>,
    /// Open client connections at most; one more is answered 503 and closed; default 512.
    pub max_connections: Option<usize>,
    /// Time a connection has to send a complete request head, counted from when it opens or
    /// its previous response ends (so it also closes idle connections), in milliseconds;
    /// default 10 000.
    pub header_read_timeout_ms: Option<u64>,
    /// Time a request has to send its whole body once its head has arrived, in
    /// milliseconds; default 30 000.
    pub body_read_timeout_ms: Option<u64>,
    /// How long a response write may wait for the client to read (a client that stops
    /// reading is cut off), in milliseconds; default 30 000. Streams that are merely
    /// quiet are not affected.
    pub write_timeout_ms: Option<u64>,
    /// Largest request head (request line and headers); default 32 KiB.
    pub max_header_bytes: Option<usize>,
    /// Addresses (CIDRs) of reverse proxies whose `X-Forwarded-For` is believed; default
    /// none: the client address is the peer address.
    pub trusted_proxies: Option<Vec<String>>,
    /// Open MCP sessions at most, all principals together; one more is answered 503;
    /// default 10 000.
    pub max_sessions: Option<usize>,
    /// Open MCP sessions one principal may hold; one more is answered 429; default 64.
    pub max_sessions_per_principal: Option<usize>,
    /// A session with no request and no open stream for this long ends, in seconds;
    /// default 300.
    pub session_idle_timeout_s: Option<u64>,
}

/// `[admin]`: the listener for `/metrics`, `/readyz` and `/healthz`, apart from the MCP
/// endpoint and unauthenticated: loopback only.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// `host:port` on a loopback address; default `127.0.0.1:8809`.
    pub bind: Option<String>,
    /// Where the kill switch's set is kept (relative to the config file); default
    /// `switches.json` in the audit log's state directory.
    pub switches: Option<String>,
    /// Backends `/readyz` requires connected and answering a ping; default: any one
    /// connected.
    pub required_backends: Option<Vec<String>>,
    /// Lets `bind` be an address off loopback (a container whose probes and scraper come
    /// from outside): `/metrics` and `/readyz` answer whoever reaches it.
    pub allow_remote: Option<bool>,
    /// Count forwarded requests by the caller's tenant (`mcp_warden_tenant_requests`);
    /// default false: tenant names then appear in `/metrics`.
    pub tenant_metrics: Option<bool>,
}

/// `[[backends]]`: one MCP server behind the proxy.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    pub name: Option<String>,
    /// Prefix of exposed tool and prompt names; defaults to `name`; `""` exposes the
    /// backend's names unchanged.
    pub namespace: Option<String>,
    /// stdio: the program to start.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// stdio: variables set for the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio: variables passed through from the proxy's own environment (nothing else is).
    pub env_allow: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// http: the streamable-HTTP endpoint.
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http: keep connections open and reuse them between calls; default true. Set it false
    /// only for a server that answers ~40 ms late on a reused connection (one that writes
    /// its answer in several small writes without `TCP_NODELAY`).
    pub keep_alive: Option<bool>,
    /// Connecting and initializing, in milliseconds; default 30 000.
    pub connect_timeout_ms: Option<u64>,
    /// One request, in milliseconds; default 300 000.
    pub request_timeout_ms: Option<u64>,
    /// Globs over the backend's own tool and prompt names; only matches are exposed.
    pub expose: Option<Vec<String>>,
    /// Globs over the backend's own names that are never exposed (wins over `expose`).
    #[serde(default)]
    pub hide: Vec<String>,
    /// Backend tool name -> exposed name (used as is, without the namespace).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Start without this backend instead of failing when it is down; default true.
    pub optional: Option<bool>,
    /// Annotation hints the operator sets (confirms) for the backend's tools, overriding
    /// what the backend claims (a backend may lie): backend tool name -> hints.
    #[serde(default)]
    pub hints: BTreeMap<String, HintSection>,
    /// Whether the backend's own annotations (`readOnlyHint`, `destructiveHint`, ...)
    /// count; default false: they are claims, and only `hints` set here place a tool in
    /// `read` or mark it non-destructive.
    pub trust_hints: Option<bool>,
    /// Globs over the backend's own tool names whose calls are refused when they carry an
    /// argument the tool's schema does not declare (at any level); `["*"]` for every tool.
    /// Tools whose schema says `additionalProperties: false` refuse them regardless.
    #[serde(default)]
    pub refuse_undeclared_arguments: Vec<String>,
    /// How the proxy opens its connection: `initialize` (default; the 2025-11-25
    /// handshake) or `auto` (probe `server/discover` and speak 2026-07-28 when the backend
    /// serves it, else fall back to `initialize`).
    pub protocol: Option<String>,
    /// stdio: one child per client session instead of one shared by all, for servers that
    /// ask clients for sampling, elicitation or roots (over one shared pipe nothing says
    /// which client a request is for, and the proxy refuses it when several sessions have
    /// calls in flight); default false.
    pub per_session: Option<bool>,
    /// stdio, `per_session`: children at most (one per session); a session beyond gets a
    /// clear error until one ends; default 16.
    pub max_children: Option<usize>,
    /// stdio, `per_session`: a session's child unused this long is stopped (started again on
    /// its next call); seconds, default 300.
    pub child_idle_timeout_s: Option<u64>,
    /// Concurrency and circuit-breaker settings for this backend (over `[limits]`).
    pub limits: Option<crate::governance::config::BackendLimitsSection>,
    /// Per tool (the backend's own tool name): timeouts and the like.
    #[serde(default)]
    pub tools: BTreeMap<String, crate::governance::config::ToolSection>,
    /// http: tell the backend (a child mcp-warden) who each call is for, signed with
    /// `[federation] signing_key`; a call that cannot carry it is refused.
    pub actor: Option<bool>,
    /// The tenants this backend belongs to: `Mcp::Backend` in `Mcp::Tenant` for policies
    /// (`policies/multitenant` keeps other tenants out); absent: shared by every tenant.
    pub tenants: Option<Vec<String>>,
}

impl BackendSection {
    /// Settings from `other` (a `[[backends]]` entry naming an imported server) laid over
    /// this one: what it sets wins, lists and maps add to what is there.
    pub fn override_with(&mut self, other: BackendSection) {
        macro_rules! set {
            ($($field:ident),*) => {$(
                if other.$field.is_some() {
                    self.$field = other.$field;
                }
            )*};
        }
        macro_rules! add {
            ($($field:ident),*) => {$(
                self.$field.extend(other.$field);
            )*};
        }
        set!(
            namespace,
            env_allow,
            keep_alive,
            connect_timeout_ms,
            request_timeout_ms,
            expose,
            optional,
            trust_hints,
            protocol,
            per_session,
            max_children,
            child_idle_timeout_s,
            limits,
            tenants,
            actor
        );
        add!(
            args,
            env,
            headers,
            hide,
            aliases,
            hints,
            refuse_undeclared_arguments,
            tools
        );
        if other.cwd.is_some() {
            self.cwd = other.cwd;
        }
    }
}

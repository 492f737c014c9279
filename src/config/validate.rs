//! The one validation pass: every rule, every path, no I/O. Startup and `check` both call
//! [`validate`], so what `check` accepts is exactly what `serve` runs.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{
    BackendProtocol, BackendSettings, Config, ConfigError, ConfigIssue, NameFilter, PerSession,
    Transport,
    file::{BackendSection, FileConfig},
};

const DEFAULT_ENV_ALLOW: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ"];
/// MCP tool names: 1 to 128 characters from this set.
const NAME_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.";
pub const MAX_NAME_LEN: usize = 128;

#[derive(Default)]
pub(super) struct Issues(pub(super) Vec<ConfigIssue>);

impl Issues {
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Checks a whole file and returns the runtime configuration, or every problem found.
pub fn validate(file: &FileConfig) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();
    let mut server = listeners::server(file, &mut issues);
    let sessions = super::sessions::validate(
        file.sessions.as_ref(),
        file.session_keys.as_ref(),
        &mut issues,
    );
    if let Some(server) = server.as_mut() {
        server.sessions = sessions;
    }
    let admin = listeners::admin(file, &mut issues);
    let tracing = super::traces::validate(file.tracing.as_ref(), &mut issues);
    let tools = super::tools::validate(file.tools.as_ref(), file.tools_lock.as_ref(), &mut issues);
    let separator = server
        .as_ref()
        .map_or("__", |s| s.separator.as_str())
        .to_owned();
    if file.backends.is_empty() {
        issues.push("backends", "at least one backend is required");
    }
    let backends: Vec<_> = file
        .backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| backend(i, b, &separator, &mut issues))
        .collect();
    cross_backend(&backends, &separator, &mut issues);
    let certificates = file
        .auth
        .as_ref()
        .is_some_and(|a| !a.certificates.is_empty());
    let client_ca = file
        .server
        .tls
        .as_ref()
        .is_some_and(|t| t.client_ca.is_some());
    if certificates && !client_ca {
        issues.push(
            "auth.certificates",
            "needs `server.tls.client_ca`: without it no client certificate is asked for",
        );
    }
    for name in file.admin.required_backends.iter().flatten() {
        if !backends.iter().any(|b| &b.name == name) {
            issues.push(
                "admin.required_backends",
                format!("`{name}` is not a configured backend"),
            );
        }
    }
    let auth = super::auth::auth(
        file.auth.as_ref(),
        server.as_ref().map(|s| s.bind),
        &mut issues,
    );
    let mut auth = auth;
    auth.parents = parents(file, &mut issues);
    let mut backends = backends;
    actors(file, &mut backends, &mut issues);
    let authz = super::authz::authz(file, &mut issues);
    let audit = super::audit::audit(file.audit.as_ref(), &mut issues);
    let (limits, problems) = crate::governance::config::validate(file.limits.as_ref());
    for (path, message) in problems {
        issues.push(path, message);
    }
    let guards = file.guards.clone().unwrap_or_default();
    if let Err(problems) = crate::governance::guards::Guards::build(&guards.global, &guards.tools) {
        for (path, message) in problems {
            issues.push(path, message);
        }
    }
    match (server, admin) {
        (Some(server), Some(admin)) if issues.0.is_empty() => Ok(Config {
            server,
            admin,
            backends,
            auth,
            authz,
            audit,
            limits,
            guards,
            tracing,
            tools,
        }),
        _ => Err(ConfigError { issues: issues.0 }),
    }
}

/// `[[auth.parents]]`, their keys read by the loader.
fn parents(
    file: &FileConfig,
    issues: &mut Issues,
) -> Vec<std::sync::Arc<crate::federation::Parent>> {
    let sections = file.auth.iter().flat_map(|a| a.parents.iter());
    let mut out = Vec::new();
    // A configuration made from a string reads no files: a parent without its key would
    // be silently no parent.
    for i in file.parent_keys.len()..sections.clone().count() {
        issues.push(
            format!("auth.parents[{i}].public_key"),
            "not read: give the configuration as a file",
        );
    }
    for (i, (section, key)) in sections.zip(&file.parent_keys).enumerate() {
        if section.principal.is_empty() {
            issues.push(format!("auth.parents[{i}].principal"), "is empty");
            continue;
        }
        match crate::federation::Parent::new(section.principal.clone(), &key.text) {
            Ok(parent) => out.push(std::sync::Arc::new(parent)),
            Err(e) => issues.push(
                format!("auth.parents[{i}].public_key"),
                format!("{}: {e}", key.file),
            ),
        }
    }
    out
}

/// Backends with `actor = true` get the `[federation]` signer.
fn actors(file: &FileConfig, backends: &mut [BackendSettings], issues: &mut Issues) {
    let signer =
        file.federation_key.as_ref().and_then(
            |key| match crate::federation::ActorSigner::from_skey(&key.text) {
                Ok(s) => Some(std::sync::Arc::new(s)),
                Err(e) => {
                    issues.push("federation.signing_key", format!("{}: {e}", key.file));
                    None
                }
            },
        );
    for (i, section) in file.backends.iter().enumerate() {
        if section.actor != Some(true) {
            continue;
        }
        let at = format!("backends[{i}].actor");
        if section.url.is_none() {
            issues.push(&at, "needs an HTTP backend (`url`): a child mcp-warden");
        } else if file.federation_key.is_none() {
            issues.push(
                &at,
                "needs `[federation] signing_key` (read from a file: give the configuration as one)",
            );
        } else if let Some(b) = backends
            .iter_mut()
            .find(|b| Some(&b.name) == section.name.as_ref())
        {
            b.actor = signer.clone();
        }
    }
}

pub(super) fn name_char(c: char) -> bool {
    NAME_CHARS.contains(c)
}

/// Backend names and namespaces: no `.` (it may appear in tool names) and no `+` (it
/// separates the namespace in rewritten resource URIs).
fn valid_backend_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn backend(
    i: usize,
    b: &BackendSection,
    separator: &str,
    issues: &mut Issues,
) -> Option<BackendSettings> {
    let at = |field: &str| format!("backends[{i}].{field}");
    let before = issues.0.len();
    let name = b.name.clone().unwrap_or_default();
    if !valid_backend_name(&name) {
        issues.push(
            at("name"),
            format!("`{name}` must be 1 to 64 characters from `A-Z a-z 0-9 _ -`"),
        );
    } else if name.contains(separator) {
        issues.push(
            at("name"),
            format!("`{name}` contains the separator `{separator}`"),
        );
    }
    let namespace = b.namespace.clone().unwrap_or_else(|| name.clone());
    if b.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
        if !valid_backend_name(&namespace) {
            issues.push(
                at("namespace"),
                format!("`{namespace}` must be 1 to 64 characters from `A-Z a-z 0-9 _ -`"),
            );
        } else if namespace.contains(separator) {
            issues.push(
                at("namespace"),
                format!("`{namespace}` contains the separator `{separator}`"),
            );
        }
    }
    let transport = transport(b, &at, issues);
    let connect_timeout = timeout(
        b.connect_timeout_ms,
        30_000,
        &at("connect_timeout_ms"),
        issues,
    );
    let request_timeout = timeout(
        b.request_timeout_ms,
        300_000,
        &at("request_timeout_ms"),
        issues,
    );
    let expose = b
        .expose
        .as_ref()
        .map(|globs| glob_set(globs, &at("expose"), issues));
    let hide = (!b.hide.is_empty()).then(|| glob_set(&b.hide, &at("hide"), issues));
    for (from, to) in &b.aliases {
        if to.is_empty() || to.len() > MAX_NAME_LEN || !to.chars().all(name_char) {
            issues.push(
                at(&format!("aliases.{from}")),
                format!("`{to}` must be 1 to {MAX_NAME_LEN} characters from `A-Z a-z 0-9 _ - .`"),
            );
        }
    }
    let protocol = match b.protocol.as_deref() {
        None | Some("initialize") => BackendProtocol::Initialize,
        Some("auto") => BackendProtocol::Auto,
        Some(other) => {
            issues.push(
                at("protocol"),
                format!("`{other}` must be `initialize` or `auto`"),
            );
            BackendProtocol::Initialize
        }
    };
    let no_cache = b.limits.as_ref().and_then(|l| l.no_cache).unwrap_or(false);
    for (tool, t) in &b.tools {
        if t.retries.is_some_and(|n| n > 0) && t.idempotent != Some(true) {
            issues.push(
                at(&format!("tools.{tool}.retries")),
                "only calls of tools marked `idempotent = true` are retried",
            );
        }
        if t.timeout_ms == Some(0) {
            issues.push(
                at(&format!("tools.{tool}.timeout_ms")),
                "must be at least 1",
            );
        }
        match t.cache_ttl_secs {
            Some(0) => issues.push(
                at(&format!("tools.{tool}.cache_ttl_secs")),
                "must be at least 1",
            ),
            Some(_) if no_cache => issues.push(
                at(&format!("tools.{tool}.cache_ttl_secs")),
                "this backend is `no_cache`: its results are never cached",
            ),
            _ => {}
        }
    }
    let per_session = per_session(b, &at, issues);
    let mut tenants = b.tenants.clone().unwrap_or_default();
    if b.tenants.as_ref().is_some_and(Vec::is_empty) {
        issues.push(
            at("tenants"),
            "is empty: leave it out for a backend every tenant shares",
        );
    }
    for t in &tenants {
        if t.is_empty() || t.chars().any(char::is_control) {
            issues.push(at("tenants"), format!("`{t}` is not a tenant name"));
        }
    }
    tenants.sort();
    let before_dedup = tenants.len();
    tenants.dedup();
    if tenants.len() != before_dedup {
        issues.push(at("tenants"), "names a tenant twice");
    }
    if let Some(l) = &b.limits {
        for (problem_at, message) in crate::governance::config::check_backend_limits(l) {
            issues.push(at(&format!("limits.{problem_at}")), message);
        }
    }
    if issues.0.len() != before {
        return None;
    }
    Some(BackendSettings {
        name,
        namespace,
        transport: transport?,
        connect_timeout,
        request_timeout,
        filter: NameFilter::new(expose.flatten(), hide.flatten())
            .with_patterns(b.expose.as_deref().unwrap_or_default(), &b.hide),
        aliases: b.aliases.clone(),
        optional: b.optional.unwrap_or(true),
        protocol,
        hints: b.hints.clone(),
        trust_hints: b.trust_hints.unwrap_or(false),
        refuse_undeclared: (!b.refuse_undeclared_arguments.is_empty())
            .then(|| {
                glob_set(
                    &b.refuse_undeclared_arguments,
                    &at("refuse_undeclared_arguments"),
                    issues,
                )
            })
            .flatten(),
        limits: b.limits.clone(),
        tools: b.tools.clone(),
        per_session,
        tenants,
        actor: None,
    })
}

/// `per_session`, `max_children`, `child_idle_timeout_s`: stdio only, and the last two
/// only with the first.
fn per_session(
    b: &BackendSection,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<PerSession> {
    let on = b.per_session.unwrap_or(false);
    if on && b.command.is_none() {
        issues.push(
            at("per_session"),
            "only for `command` backends (an HTTP backend's requests come on the stream of the call they belong to)",
        );
    }
    for (field, set) in [
        ("max_children", b.max_children.is_some()),
        ("child_idle_timeout_s", b.child_idle_timeout_s.is_some()),
    ] {
        if set && !on {
            issues.push(at(field), "only with `per_session = true`");
        }
    }
    if b.max_children == Some(0) {
        issues.push(at("max_children"), "must be at least 1");
    }
    if b.child_idle_timeout_s == Some(0) {
        issues.push(at("child_idle_timeout_s"), "must be at least 1");
    }
    on.then(|| PerSession {
        max_children: b.max_children.unwrap_or(16),
        idle_timeout: Duration::from_secs(b.child_idle_timeout_s.unwrap_or(300)),
    })
}

fn transport(
    b: &BackendSection,
    at: &dyn Fn(&str) -> String,
    issues: &mut Issues,
) -> Option<Transport> {
    match (&b.command, &b.url) {
        (Some(command), None) => {
            if command.trim().is_empty() {
                issues.push(at("command"), "must not be empty");
            }
            if !b.headers.is_empty() {
                issues.push(at("headers"), "only for `url` backends");
            }
            let env_allow = b
                .env_allow
                .clone()
                .unwrap_or_else(|| DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect());
            Some(Transport::Stdio {
                command: command.clone(),
                args: b.args.clone(),
                env: b.env.clone(),
                env_allow,
                cwd: b.cwd.as_ref().map(PathBuf::from),
            })
        }
        (None, Some(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                issues.push(
                    at("url"),
                    format!("`{url}` must be an http:// or https:// URL"),
                );
            }
            for (field, set) in [
                ("args", !b.args.is_empty()),
                ("env", !b.env.is_empty()),
                ("env_allow", b.env_allow.is_some()),
                ("cwd", b.cwd.is_some()),
            ] {
                if set {
                    issues.push(at(field), "only for `command` backends");
                }
            }
            for (header, value) in &b.headers {
                if http::HeaderName::try_from(header.as_str()).is_err()
                    || http::HeaderValue::try_from(value.as_str()).is_err()
                {
                    issues.push(
                        at(&format!("headers.{header}")),
                        "is not a valid HTTP header",
                    );
                }
            }
            Some(Transport::Http {
                url: url.clone(),
                headers: b.headers.clone(),
                keep_alive: b.keep_alive.unwrap_or(true),
            })
        }
        (Some(_), Some(_)) => {
            issues.push(
                at("url"),
                "set either `command` (stdio) or `url` (http), not both",
            );
            None
        }
        (None, None) => {
            issues.push(at("command"), "set `command` (stdio) or `url` (http)");
            None
        }
    }
}

fn timeout(ms: Option<u64>, default: u64, path: &str, issues: &mut Issues) -> Duration {
    let ms = ms.unwrap_or(default);
    if ms == 0 {
        issues.push(path, "must be greater than 0");
    }
    Duration::from_millis(ms)
}

pub(super) fn glob_set(globs: &[String], path: &str, issues: &mut Issues) -> Option<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for (j, glob) in globs.iter().enumerate() {
        match Glob::new(glob) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => issues.push(format!("{path}[{j}]"), format!("`{glob}`: {}", e.kind())),
        }
    }
    builder.build().ok()
}

/// Rules across backends: unique names; namespaces that can never produce the same exposed
/// name (`a` + `__` is a prefix of `a_` + `__`, so `a___x` would be ambiguous); aliases
/// that do not collide with each other nor lie in another backend's namespace; at most one
/// unprefixed backend (two could both list a name, and which one served it would depend on
/// which was up). The catalog leaves out an unprefixed backend's names that lie in a
/// namespace or equal an alias, so no exposed name ever depends on which backend is up.
/// The backends of `file` alone, each checked as [`validate`] checks it.
pub(super) fn backends_of(file: &FileConfig) -> Result<Vec<BackendSettings>, ConfigError> {
    let mut issues = Issues::default();
    let backends: Vec<_> = file
        .backends
        .iter()
        .enumerate()
        .filter_map(|(i, b)| backend(i, b, "__", &mut issues))
        .collect();
    match issues.0.is_empty() {
        true => Ok(backends),
        false => Err(ConfigError { issues: issues.0 }),
    }
}

/// The rules between backends (unique names and namespaces, one unprefixed backend,
/// aliases outside other namespaces), for a set an application put together in code.
pub fn check_backends(backends: &[BackendSettings], separator: &str) -> Result<(), ConfigError> {
    let mut issues = Issues::default();
    for (i, b) in backends.iter().enumerate() {
        // Entries built in code were checked with the default separator.
        for (field, value) in [("name", &b.name), ("namespace", &b.namespace)] {
            if value.contains(separator) {
                issues.push(
                    format!("backends[{i}].{field}"),
                    format!("`{value}` contains the separator `{separator}`"),
                );
            }
        }
    }
    cross_backend(backends, separator, &mut issues);
    match issues.0.is_empty() {
        true => Ok(()),
        false => Err(ConfigError { issues: issues.0 }),
    }
}

fn cross_backend(backends: &[BackendSettings], separator: &str, issues: &mut Issues) {
    let mut names = BTreeSet::new();
    let mut aliases = BTreeSet::new();
    let mut unprefixed = None;
    for (i, b) in backends.iter().enumerate() {
        if b.namespace.is_empty() {
            if let Some(first) = unprefixed {
                issues.push(
                    format!("backends[{i}].namespace"),
                    format!(
                        "only one backend may have `namespace = \"\"` (backends[{first}] has it): \
                         both could expose the same name"
                    ),
                );
            }
            unprefixed.get_or_insert(i);
        }
        for (from, to) in &b.aliases {
            if let Some(other) = backends.iter().find(|o| {
                o.name != b.name
                    && !o.namespace.is_empty()
                    && to.starts_with(&format!("{}{separator}", o.namespace))
            }) {
                issues.push(
                    format!("backends[{i}].aliases.{from}"),
                    format!("`{to}` lies in the namespace of backend `{}`", other.name),
                );
            }
        }
        if !names.insert(b.name.as_str()) {
            issues.push(
                format!("backends[{i}].name"),
                format!("`{}` is used twice", b.name),
            );
        }
        for to in b.aliases.values() {
            if !aliases.insert(to.as_str()) {
                issues.push(
                    format!("backends[{i}].aliases"),
                    format!("alias `{to}` is used twice"),
                );
            }
        }
        if b.namespace.is_empty() {
            continue;
        }
        let mine = format!("{}{separator}", b.namespace);
        for (j, other) in backends.iter().enumerate().skip(i + 1) {
            if other.namespace.is_empty() {
                continue;
            }
            let theirs = format!("{}{separator}", other.namespace);
            if mine.starts_with(&theirs) || theirs.starts_with(&mine) {
                issues.push(
                    format!("backends[{j}].namespace"),
                    format!(
                        "`{}` and `{}` (backends[{i}]) could expose the same name with separator `{separator}`",
                        other.namespace, b.namespace
                    ),
                );
            }
        }
    }
}

mod listeners;
pub(super) use listeners::parse_net;
#[cfg(test)]
mod tests;

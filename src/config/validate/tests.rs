use super::*;
use crate::config::Config;

const ANON: &str =
    "[auth]\nanonymous = true\n[authz]\npolicy = \"permit(principal, action, resource);\"\n";

fn ok(toml: &str) -> Config {
    Config::from_toml_str(&format!("{ANON}{toml}")).unwrap()
}

fn errors(toml: &str) -> Vec<String> {
    Config::from_toml_str(toml)
        .unwrap_err()
        .issues
        .into_iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect()
}

#[test]
fn minimal_stdio_backend_gets_defaults() {
    let config = ok("[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n");
    assert_eq!(config.server.bind.to_string(), "127.0.0.1:8808");
    assert_eq!(config.server.separator, "__");
    let b = &config.backends[0];
    assert_eq!(b.namespace, "demo");
    assert!(
        matches!(&b.transport, Transport::Stdio { env_allow, .. } if env_allow.contains(&"PATH".to_owned()))
    );
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    let errs = errors(
        r#"
[server]
bind = "nowhere"
separator = "::"
[[backends]]
name = "a b"
command = "x"
url = "http://y"
[[backends]]
name = "ok"
url = "ftp://z"
hide = ["[unclosed"]
args = ["--no"]
"#,
    );
    let joined = errors_joined(&errs);
    for expected in [
        "server.bind:",
        "server.separator:",
        "backends[0].name:",
        "backends[0].url: set either",
        "backends[1].url:",
        "backends[1].hide[0]:",
        "backends[1].args: only for `command` backends",
    ] {
        assert!(
            joined.contains(expected),
            "missing `{expected}` in:\n{joined}"
        );
    }
}

fn errors_joined(errs: &[String]) -> String {
    errs.join("\n")
}

#[test]
fn names_containing_the_separator_are_rejected() {
    let errs = errors("[[backends]]\nname = \"git__hub\"\ncommand = \"x\"\n");
    assert!(errs[0].contains("contains the separator"), "{errs:?}");
}

#[test]
fn namespaces_that_could_collide_are_rejected() {
    let errs = errors(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\n[[backends]]\nname = \"a_\"\ncommand = \"y\"\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("could expose the same name")),
        "{errs:?}"
    );
}

#[test]
fn duplicate_names_and_aliases_are_rejected() {
    let errs = errors(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\naliases = { t = \"same\" }\n\
         [[backends]]\nname = \"a\"\nnamespace = \"b\"\ncommand = \"y\"\naliases = { u = \"same\" }\n",
    );
    assert!(errs.iter().any(|e| e.contains("is used twice")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("alias `same`")), "{errs:?}");
}

#[test]
fn unknown_keys_and_missing_backends_are_errors() {
    assert!(errors("[server]\nbindd = \"x\"\n")[0].contains("unknown field"));
    assert!(errors("")[0].contains("at least one backend"));
}

#[test]
fn filters_apply_hide_over_expose() {
    let config = ok(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\nexpose = [\"read_*\", \"list\"]\nhide = [\"read_secret\"]\n",
    );
    let f = &config.backends[0].filter;
    assert!(f.allows("read_file") && f.allows("list"));
    assert!(!f.allows("read_secret") && !f.allows("write_file"));
}

#[test]
fn empty_namespace_is_allowed() {
    let config = ok("[[backends]]\nname = \"a\"\nnamespace = \"\"\ncommand = \"x\"\n");
    assert_eq!(config.backends[0].namespace, "");
}

#[test]
fn auth_is_required_and_anonymous_only_on_loopback() {
    let backend = "[[backends]]\nname = \"a\"\ncommand = \"x\"\n";
    assert!(
        errors(backend)
            .iter()
            .any(|e| e.starts_with("auth: required"))
    );
    let public = format!("[server]\nbind = \"0.0.0.0:8808\"\n{ANON}{backend}");
    let errs: Vec<_> = Config::from_toml_str(&public)
        .unwrap_err()
        .issues
        .into_iter()
        .map(|i| i.path)
        .collect();
    assert_eq!(errs, ["auth.anonymous", "auth.resource"]);
}

#[test]
fn issuers_and_tokens_are_checked_with_paths() {
    let text = r#"
[auth]
attributes = { email = "string", level = "float" }
[[auth.issuers]]
issuer = "https://idp"
jwks_url = "http://idp.example/keys"
claims = { undeclared = "x" }
[[auth.tokens]]
sha256 = "abc"
[[backends]]
name = "a"
command = "x"
"#;
    let errs = Config::from_toml_str(text).unwrap_err().issues;
    let paths: Vec<_> = errs.iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "auth.attributes.level",
        "auth.issuers[0].audiences",
        "auth.issuers[0].jwks_url",
        "auth.issuers[0].claims.undeclared",
        "auth.tokens[0].sha256",
        "auth.tokens[0].id",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn governance_settings_are_checked_with_paths() {
    let errs = errors(&format!(
        r#"{ANON}
[limits]
redis = "http://cache:6379"
breaker = {{ failure_ratio = 2.0 }}
[[limits.rate]]
id = "a"
per_second = 1
per_minute = 60
[[limits.rate]]
id = "b"
[[backends]]
name = "s"
command = "x"
limits = {{ no_cache = true, concurrency = 0 }}
tools.t = {{ cache_ttl_secs = 5, retries = 2 }}
tools.u = {{ timeout_ms = 0 }}
"#
    ));
    for want in [
        "limits.redis: `http://cache:6379` is not a redis:// URL",
        "limits.breaker.failure_ratio: must be in (0, 1]",
        "limits.rate[0]: set exactly one of per_second, per_minute, per_hour",
        "limits.rate[1]: set exactly one of per_second, per_minute, per_hour",
        "backends[0].limits.concurrency: must be at least 1",
        "backends[0].tools.t.cache_ttl_secs: this backend is `no_cache`: its results are never cached",
        "backends[0].tools.t.retries: only calls of tools marked `idempotent = true` are retried",
        "backends[0].tools.u.timeout_ms: must be at least 1",
    ] {
        assert!(
            errs.iter().any(|e| e == want),
            "missing `{want}` in {errs:#?}"
        );
    }
}

#[test]
fn governance_settings_resolve_per_backend_and_tool() {
    let config = ok(r#"
[limits]
concurrency = 10
[[limits.rate]]
id = "tenant-tool"
by = ["tenant", "tool"]
per_minute = 600
burst = 50
tools = ["trading__*"]
[[backends]]
name = "trading"
command = "x"
limits = { concurrency = 2, breaker = { consecutive_failures = 3 } }
tools.quote = { cache_ttl_secs = 30, timeout_ms = 500, idempotent = true }
"#);
    let b = crate::governance::BackendGovernance::new(&config.limits, &config.backends[0]);
    assert_eq!(b.cache_ttl["quote"], std::time::Duration::from_secs(30));
    assert!(b.coalesce.contains("quote"), "cacheable implies coalesced");
    assert_eq!(b.retries["quote"], 2);
    assert_eq!(
        b.tool_timeouts["quote"],
        std::time::Duration::from_millis(500)
    );
    let rule = &config.limits.rate[0];
    assert_eq!(rule.period, std::time::Duration::from_millis(100));
    assert_eq!(rule.burst.get(), 50);
}

#[test]
fn the_group_commit_window_is_bounded_and_async_only() {
    let audit = |extra: &str| {
        format!(
            "[audit]\nstore = \"memory://\"\n{extra}\n[[backends]]\nname = \"a\"\ncommand = \"x\"\n"
        )
    };
    let config = ok(&audit("durability = \"async\""));
    let settings = config.audit.unwrap();
    assert_eq!(settings.group_commit, std::time::Duration::from_millis(1));
    let config = ok(&audit("durability = \"async\"\ngroup_commit_us = 0"));
    assert!(config.audit.unwrap().group_commit.is_zero());
    let errs = errors(&audit("durability = \"async\"\ngroup_commit_us = 2001"));
    assert!(
        errs.iter().any(|e| e.contains("audit.group_commit_us")),
        "{errs:?}"
    );
    let errs = errors(&audit("group_commit_us = 500"));
    assert!(
        errs.iter()
            .any(|e| e.contains("applies to `durability = \"async\"` only")),
        "{errs:?}"
    );
}

#[test]
fn connection_bounds_have_secure_defaults_and_are_checked_with_paths() {
    let config = ok("[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n");
    assert_eq!(
        config.server.connections,
        crate::config::ConnectionLimits::default()
    );
    assert_eq!(config.server.connections.max_header_bytes, 32 * 1024);
    assert_eq!(config.admin.bind.to_string(), "127.0.0.1:8809");
    assert!(config.server.trusted_proxies.is_empty());
    let config = ok(r#"
[server]
max_connections = 10
header_read_timeout_ms = 500
body_read_timeout_ms = 700
write_timeout_ms = 900
max_header_bytes = 16384
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "fd00::/8"]
[admin]
bind = "[::1]:9000"
[[backends]]
name = "demo"
command = "demo-server"
"#);
    assert_eq!(config.server.connections.max_connections, 10);
    assert_eq!(
        config.server.connections.body_read_timeout,
        Duration::from_millis(700)
    );
    assert_eq!(
        config.server.connections.write_timeout,
        Duration::from_millis(900)
    );
    assert_eq!(config.server.trusted_proxies.len(), 3);
    assert_eq!(config.admin.bind.to_string(), "[::1]:9000");
    let errs = errors(&format!(
        "{ANON}{}",
        r#"
[server]
max_connections = 0
header_read_timeout_ms = 0
body_read_timeout_ms = 0
write_timeout_ms = 0
max_header_bytes = 100
trusted_proxies = ["10.0.0.0/33", "proxy.example"]
[admin]
bind = "0.0.0.0:8809"
[[backends]]
name = "demo"
command = "demo-server"
"#
    ));
    let joined = errors_joined(&errs);
    for expected in [
        "server.max_connections:",
        "server.header_read_timeout_ms:",
        "server.body_read_timeout_ms:",
        "server.write_timeout_ms:",
        "server.max_header_bytes:",
        "server.trusted_proxies[0]:",
        "server.trusted_proxies[1]:",
        "admin.bind: `0.0.0.0:8809` must be a loopback address",
    ] {
        assert!(joined.contains(expected), "missing {expected} in {joined}");
    }
}

#[test]
fn a_public_bind_needs_the_resource_url_and_failures_are_limited() {
    let tokens = "[[auth.tokens]]\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nid = \"t\"\n[authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n";
    let errs = errors(&format!(
        "[server]\nbind = \"0.0.0.0:8443\"\n[auth]\nfailures_per_minute = 0\n{tokens}"
    ));
    let joined = errors_joined(&errs);
    assert!(joined.contains("auth.resource: required when"), "{joined}");
    assert!(joined.contains("auth.failures_per_minute:"), "{joined}");
    let config = Config::from_toml_str(&format!(
        "[server]\nbind = \"0.0.0.0:8443\"\n[auth]\nresource = \"https://mcp.example.com/mcp\"\n{tokens}"
    ))
    .unwrap();
    assert_eq!(config.auth.failures_per_minute, 60);
    // Loopback without it: the resource is the endpoint on the listening address.
    let config = Config::from_toml_str(&format!("[auth]\n{tokens}")).unwrap();
    assert_eq!(config.auth.resource, None);
}

#[test]
fn issuers_must_not_share_a_namespace_of_principals() {
    let issuer = |iss: &str, prefix: Option<&str>| {
        format!(
            "[[auth.issuers]]\nissuer = \"{iss}\"\naudiences = [\"a\"]\njwks_file = \"k.json\"\n{}",
            prefix
                .map(|p| format!("principal_prefix = \"{p}\"\n"))
                .unwrap_or_default()
        )
    };
    let token = |id: &str| {
        format!(
            "[[auth.tokens]]\nsha256 = \"{}\"\nid = \"{id}\"\n",
            "ab".repeat(32)
        )
    };
    let tail = "[authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"d\"\ncommand = \"x\"\n";
    let with = |auth: String| format!("[auth]\n{auth}{tail}");
    // One source may go without a prefix; the others need theirs.
    Config::from_toml_str(&with(issuer("https://a", None))).unwrap();
    Config::from_toml_str(&with(
        issuer("https://a", None) + &issuer("https://b", Some("b")),
    ))
    .unwrap();
    let config = Config::from_toml_str(&with(
        issuer("https://a", Some("a")) + &issuer("https://b", Some("b")) + &token("ci"),
    ))
    .unwrap();
    assert!(config.auth.issuers[0].reserved_prefixes.is_empty());
    let config = Config::from_toml_str(&with(
        issuer("https://a", None) + &issuer("https://b", Some("b")),
    ))
    .unwrap();
    assert_eq!(config.auth.issuers[0].reserved_prefixes, ["b"]);
    let errs = errors(&with(issuer("https://a", None) + &token("ci")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("auth.issuers[0].principal_prefix: required")),
        "{errs:?}"
    );
    let errs = errors(&with(
        issuer("https://a", None) + &issuer("https://b", None),
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("auth.issuers[1].principal_prefix: required")),
        "{errs:?}"
    );
    let errs = errors(&with(
        issuer("https://a", Some("p")) + &issuer("https://b", Some("p")),
    ));
    assert!(
        errs.iter()
            .any(|e| e
                .starts_with("auth.issuers[1].principal_prefix: `p` is the prefix of an earlier")),
        "{errs:?}"
    );
    let errs = errors(&with(issuer("https://a", Some("a/b")) + &token("ci")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("auth.issuers[0].principal_prefix: `a/b` must be")),
        "{errs:?}"
    );
    let errs = errors(&with(
        issuer("https://a", Some("partner")) + &token("partner/admin"),
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("auth.tokens[0]: `partner/admin` lies in the namespace")),
        "{errs:?}"
    );
}

#[test]
fn exposed_names_cannot_depend_on_which_backend_is_up() {
    let errs = errors(
        r#"
[auth]
anonymous = true
[authz]
policy = "permit(principal, action, resource);"
[[backends]]
name = "pay"
command = "x"
[[backends]]
name = "a"
namespace = ""
command = "x"
aliases = { send = "pay__send" }
[[backends]]
name = "b"
namespace = ""
command = "x"
"#,
    );
    let joined = errors_joined(&errs);
    assert!(
        joined.contains("backends[2].namespace: only one backend may have `namespace = \"\"`"),
        "{joined}"
    );
    assert!(
        joined.contains(
            "backends[1].aliases.send: `pay__send` lies in the namespace of backend `pay`"
        ),
        "{joined}"
    );
}

#[test]
fn a_toml_error_is_reported_at_its_line_and_column() {
    let error = Config::from_toml_str("[server]\nbind = \"127.0.0.1:1\"\nbogus = 1\n").unwrap_err();
    assert_eq!(error.issues[0].path, "line 3, column 1", "{error}");
    let error = Config::from_toml_str("[server]\n  page_size = \"x\"\n").unwrap_err();
    assert!(
        error.issues[0].path.starts_with("line 2, column "),
        "{error}"
    );
}

#[test]
fn the_admin_listener_leaves_loopback_only_when_asked_and_readiness_names_real_backends() {
    let backend = "[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n";
    let remote = ok(&format!(
        "[admin]\nbind = \"0.0.0.0:8809\"\nallow_remote = true\nrequired_backends = [\"demo\"]\n{backend}"
    ));
    assert!(remote.admin.allow_remote);
    assert_eq!(remote.admin.bind.to_string(), "0.0.0.0:8809");
    assert_eq!(
        remote.admin.required_backends.as_deref(),
        Some(&["demo".to_owned()][..])
    );
    let refused = errors_joined(&errors(&format!(
        "{ANON}[admin]\nbind = \"0.0.0.0:8809\"\nrequired_backends = [\"gone\"]\n{backend}"
    )));
    assert!(refused.contains("allow_remote = true"), "{refused}");
    assert!(
        refused.contains("admin.required_backends: `gone` is not a configured backend"),
        "{refused}"
    );
}

const BACKEND: &str = "[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n";

#[cfg(feature = "otel")]
#[test]
fn tracing_settings_are_checked_at_their_paths() {
    let config = ok(&format!(
        "{BACKEND}[tracing]\notlp_endpoint = \"http://collector:4318\"\ntrust_traceparent_from = [\"10.0.0.0/8\", \"::1\"]\n"
    ));
    assert_eq!(
        config.tracing.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(config.tracing.sample_ratio, 1.0);
    assert_eq!(config.tracing.trust_traceparent_from.len(), 2);
    let errs = errors(&format!(
        "{ANON}{BACKEND}[tracing]\notlp_endpoint = \"collector:4318\"\nsample_ratio = 1.5\nservice_name = \"\"\ntrust_traceparent_from = [\"everyone\"]\n"
    ));
    assert_eq!(
        errs,
        [
            "tracing.otlp_endpoint: `collector:4318` is not an http(s) URL such as `http://otel-collector:4318`",
            "tracing.sample_ratio: must be between 0 and 1",
            "tracing.service_name: must not be empty",
            "tracing.trust_traceparent_from[0]: `everyone` is not an address or CIDR such as `10.0.0.0/8`",
        ]
    );
}

/// A build without export refuses a file that asks for it instead of not tracing.
#[cfg(not(feature = "otel"))]
#[test]
fn tracing_needs_a_build_with_export() {
    let errs = errors(&format!(
        "{ANON}{BACKEND}[tracing]\notlp_endpoint = \"http://collector:4318\"\n"
    ));
    assert_eq!(
        errs,
        [
            "tracing: this build has no OpenTelemetry export: build with `--features otel` (the container image has it)"
        ]
    );
    // Sampling alone asks for nothing this build lacks.
    ok(&format!("{BACKEND}[tracing]\nsample_ratio = 0.5\n"));
}

#[test]
fn a_backend_belongs_to_tenants_or_is_shared() {
    let config = ok(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\ntenants = [\"globex\", \"acme\"]\n[[backends]]\nname = \"b\"\ncommand = \"x\"\n",
    );
    assert_eq!(config.backends[0].tenants, ["acme", "globex"]);
    assert!(config.backends[1].tenants.is_empty());
    for (tenants, error) in [
        ("[]", "is empty: leave it out"),
        ("[\"acme\", \"acme\"]", "names a tenant twice"),
        ("[\"\"]", "is not a tenant name"),
        ("[\"a\\u0000b\"]", "is not a tenant name"),
    ] {
        let errs = errors(&format!(
            "{ANON}[[backends]]\nname = \"a\"\ncommand = \"x\"\ntenants = {tenants}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("backends[0].tenants") && e.contains(error)),
            "{tenants}: {errs:?}"
        );
    }
}

#[test]
fn breakers_take_thresholds_by_subscription_tier() {
    let config = ok(
        "[limits.breaker]\nconsecutive_failures = 5\n[limits.breaker.tiers.tier-free]\nconsecutive_failures = 2\nopen_ms = 60000\n[[backends]]\nname = \"a\"\ncommand = \"x\"\n",
    );
    let tier = &config.limits.breaker.tiers["tier-free"];
    assert_eq!(tier.consecutive_failures, Some(2));
    let resolved = config.limits.breaker.for_tier(tier);
    assert_eq!(
        (resolved.consecutive_failures, resolved.open_ms),
        (2, 60_000)
    );
    assert_eq!(resolved.window, config.limits.breaker.window);
    let errs = errors(&format!(
        "{ANON}[limits.breaker.tiers.free]\nfailure_ratio = 2.0\n[[backends]]\nname = \"a\"\ncommand = \"x\"\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("limits.breaker.tiers.free.failure_ratio")),
        "{errs:?}"
    );
}

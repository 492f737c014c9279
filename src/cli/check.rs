//! `mcp-warden check`: a configuration validated as `serve` would take it, without serving.
//! The configuration's own rules (`config::validate`, shared with startup), the files it
//! names, and the policies built the one way startup builds them
//! (`hub::build_for_start`) against the saved catalog. `--live` goes further: it starts
//! the backends (not the audit log, which belongs to the proxy that may be running) exactly
//! as `serve` does, and every setting that names nothing a backend lists, every quarantined
//! tool and every backend that did not list is an error.

use std::process::ExitCode;

use mcp_warden::Config;
use mcp_warden::authz::placeholder_tools;
use mcp_warden::hub::{attribute_decls, build_for_start, describe_policy_errors, policy_sources};

/// Runs the check; prints what it found; exit 0 valid, 1 not.
pub async fn run(config: Config, files: bool, live: bool) -> ExitCode {
    let result = match (files.then(|| files_exist(&config)).transpose(), live) {
        (Err(missing), _) => Err(missing),
        (Ok(_), false) => offline(&config),
        (Ok(_), true) => self::live(config.clone()).await,
    };
    match result {
        Ok(notes) => {
            out!(
                "configuration is valid: {} backend(s)",
                config.backends.len()
            );
            for note in notes {
                out!("{note}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            err!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// The files a configuration names and startup reads: each one must be there (`check`
/// passed configs whose key files did not exist, and `serve` then failed).
fn files_exist(config: &Config) -> Result<(), String> {
    let mut missing = Vec::new();
    for (i, issuer) in config.auth.issuers.iter().enumerate() {
        if let mcp_warden::config::KeySource::File(path) = &issuer.keys
            && !path.is_file()
        {
            missing.push(format!(
                "auth.issuers[{i}].jwks_file: `{}` does not exist",
                path.display()
            ));
        }
    }
    if let Some(audit) = &config.audit {
        for (field, path) in [
            ("audit.signing_key", &audit.signing_key),
            ("audit.pseudonym_key", &audit.pseudonym_key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                missing.push(format!("{field}: `{}` does not exist", path.display()));
            }
        }
    }
    if let Some(tls) = &config.server.tls {
        let files = [("server.tls.cert", &tls.cert), ("server.tls.key", &tls.key)];
        for (field, path) in files.into_iter().chain(
            tls.client_ca
                .as_ref()
                .map(|ca| ("server.tls.client_ca", ca)),
        ) {
            if !path.is_file() {
                missing.push(format!("{field}: `{}` does not exist", path.display()));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

/// The policies against the saved catalog, built as startup builds them. With a catalog,
/// they must validate strictly (a typo in a condition is an error here, where startup would
/// quarantine the tool); without one, against stand-ins for the tools they name: what does
/// not depend on the real tools (an attribute missing from the schema, a syntax error) is
/// an error, and the rest waits for the backends' tools.
fn offline(config: &Config) -> Result<Vec<String>, String> {
    let (policies, attributes) = (policy_sources(config), attribute_decls(config));
    let tools = match &config.authz.catalog {
        Some(catalog) => mcp_warden::hub::saved_tools(config, &catalog.text)
            .map_err(|e| format!("{}: {e}", catalog.file))?,
        None => {
            let backends: Vec<String> = config.backends.iter().map(|b| b.name.clone()).collect();
            placeholder_tools(&policies, &backends, |name| backend_of(config, name))
        }
    };
    let tenancy = mcp_warden::hub::tenancy(config);
    let started = build_for_start(&policies, &tools, &attributes, &tenancy)
        .map_err(|errors| describe_policy_errors(&errors))?;
    let count = started.engine.policy_count();
    match (&config.authz.catalog, started.strict_errors.is_empty()) {
        (Some(_), true) => Ok(vec![format!(
            "policies: {count} valid against {} tools",
            tools.len()
        )]),
        (Some(_), false) => Err(describe_policy_errors(&started.strict_errors)),
        (None, _) => Ok(vec![format!(
            "policies: {count} parse and fit the schema; no `authz.tools` catalog, so the tools they name are checked at start against the backends' tools (`check --live` does that now, `mcp-warden tools export` writes a catalog)"
        )]),
    }
}

/// The backend an exposed tool name would belong to: the one whose alias it is, else the
/// one whose namespace prefixes it, else the backend without a namespace.
fn backend_of(config: &Config, exposed: &str) -> String {
    let separator = &config.server.separator;
    let owner = config
        .backends
        .iter()
        .find(|b| b.aliases.values().any(|to| to == exposed))
        .or_else(|| {
            config.backends.iter().find(|b| {
                !b.namespace.is_empty()
                    && exposed.starts_with(&format!("{}{separator}", b.namespace))
            })
        })
        .or_else(|| config.backends.iter().find(|b| b.namespace.is_empty()));
    owner.map(|b| b.name.clone()).unwrap_or_default()
}

/// Starts everything `serve` starts but the audit log and the listeners, then reports what
/// would only be a warning in the log of a running proxy.
async fn live(mut config: Config) -> Result<Vec<String>, String> {
    config.audit = None;
    let names: Vec<String> = config.backends.iter().map(|b| b.name.clone()).collect();
    let proxy = mcp_warden::Proxy::from_config(config)
        .await
        .map_err(|e| e.to_string())?;
    let handle = proxy.handle();
    let up = handle.backends_up();
    let mut errors: Vec<String> = names
        .iter()
        .filter(|n| !up.contains(n))
        .map(|n| format!("backend `{n}` did not list its tools: its settings cannot be checked"))
        .collect();
    errors.extend(handle.unmatched_settings());
    errors.extend(
        handle
            .quarantined()
            .into_iter()
            .map(|(tool, why)| format!("tool `{tool}` would be quarantined: {why}")),
    );
    let tools = handle.tool_names().len();
    handle.shutdown().await;
    if errors.is_empty() {
        Ok(vec![format!(
            "live: every backend listed ({tools} tools); policies valid against them, every setting matches"
        )])
    } else {
        Err(errors.join("\n"))
    }
}

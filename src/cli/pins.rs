//! `mcp-warden tools pin` and `tools diff`: the lock file of reviewed tool definitions,
//! written from what the configured backends serve, or compared with it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use mcp_warden::{
    Config,
    pinning::{Definition, Finding, Integrity, LockFile, Mode, names},
};

use super::tools::with_backends;

/// The lock file: the option, else `[tools] lock`.
fn lock_path(config: &Config, lock: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    lock.or_else(|| config.tools.lock_file.as_ref().map(PathBuf::from))
        .context("no lock file: set `[tools] lock` or pass `--lock FILE`")
}

/// The lock file at `path`, if there is one.
fn read_lock(path: &Path) -> anyhow::Result<Option<LockFile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => LockFile::parse(&text)
            .map(Some)
            .with_context(|| format!("{}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// What the backends of `config` serve now.
async fn served(config: &Config) -> anyhow::Result<Vec<Definition>> {
    with_backends(config.clone(), |handle| handle.tool_definitions())
        .await
        .context("the backends' tools could not all be read")
}

/// The integrity of `config` with `lock` in place of its own, in at least `warn` mode.
fn integrity(config: &Config, lock: Option<LockFile>) -> Integrity {
    Integrity {
        mode: Mode::Warn,
        lock,
        rules: config.tools.integrity.rules.clone(),
    }
}

/// Pairs of look-alike names, as lines.
fn confusables(defs: &[Definition]) -> Vec<String> {
    names::confusable(
        defs.iter()
            .map(|d| (d.exposed.as_str(), d.backend.as_str())),
    )
    .into_iter()
    .map(|(a, b)| format!("`{}` ({}) and `{}` ({}) look alike", a.0, a.1, b.0, b.1))
    .collect()
}

pub async fn pin(config: Config, lock: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = lock_path(&config, lock)?;
    let previous = read_lock(&path)?;
    let defs = served(&config).await?;
    let refs: Vec<&Definition> = defs.iter().collect();
    let changed = previous
        .as_ref()
        .map(|p| {
            integrity(&config, Some(p.clone()))
                .examine(&refs, &config.server.separator)
                .into_iter()
                .filter(|e| {
                    e.findings
                        .iter()
                        .any(|f| !matches!(f, Finding::Suspicious { .. }))
                })
                .count()
        })
        .unwrap_or(0);
    let pinned = LockFile::of(&refs, previous.as_ref());
    mcp_warden::files::replace(&path, pinned.to_text().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    err!(
        "pinned {} tools of {} backend(s) to {}{}",
        defs.len(),
        pinned.backends.len(),
        path.display(),
        if previous.is_some() {
            format!(" ({changed} new or changed since the previous pin)")
        } else {
            String::new()
        }
    );
    let found = integrity(&config, Some(pinned)).examine(&refs, &config.server.separator);
    for e in &found {
        for f in &e.findings {
            if let Finding::Suspicious { rule, .. } = f {
                err!(
                    "finding: {}: {} — with pinning enforced it stays held until its reviewer adds \"{rule}\" to its `accept` list in the lock file",
                    e.exposed,
                    f.describe()
                );
            }
        }
    }
    for line in confusables(&defs) {
        err!("finding: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A part's value as short text for a diff line.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    if text.chars().count() > 400 {
        format!("{}…", text.chars().take(400).collect::<String>())
    } else {
        text
    }
}

pub async fn diff(
    config: Config,
    lock: Option<PathBuf>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let path = lock_path(&config, lock)?;
    let lock = read_lock(&path)?.with_context(|| {
        format!(
            "{} does not exist: write it with `mcp-warden tools pin`",
            path.display()
        )
    })?;
    let defs = served(&config).await?;
    let refs: Vec<&Definition> = defs.iter().collect();
    let found = integrity(&config, Some(lock.clone())).examine(&refs, &config.server.separator);
    let removed: Vec<(String, String)> = lock
        .backends
        .iter()
        .flat_map(|(b, tools)| tools.keys().map(move |t| (b.clone(), t.clone())))
        .filter(|(b, t)| !defs.iter().any(|d| &d.backend == b && &d.name == t))
        .collect();
    let looks = confusables(&defs);
    let mut report = Vec::new();
    for e in &found {
        let def = defs.iter().find(|d| d.exposed == e.exposed);
        let pin = lock.pin(&e.backend, &e.name);
        let findings: Vec<Value> = e
            .findings
            .iter()
            .map(|f| match (f, def, pin) {
                (Finding::Changed { parts, .. }, Some(def), Some(pin)) => {
                    let was = serde_json::to_value(pin).unwrap_or(Value::Null);
                    let changes: Vec<Value> = parts
                        .iter()
                        .map(|p| json!({"part": p, "pinned": was[p.as_str()], "now": def.parts[p.as_str()]}))
                        .collect();
                    json!({"kind": "changed", "changes": changes})
                }
                (Finding::Suspicious { rule, place, matched }, _, _) => {
                    json!({"kind": "suspicious", "rule": rule, "place": place, "matched": matched})
                }
                (f, _, _) => json!({"kind": f.kind()}),
            })
            .collect();
        report.push(
            json!({"tool": e.exposed, "backend": e.backend, "name": e.name, "findings": findings}),
        );
    }
    let differs = !found.is_empty() || !removed.is_empty() || !looks.is_empty();
    if as_json {
        let removed: Vec<Value> = removed
            .iter()
            .map(|(b, t)| json!({"backend": b, "name": t}))
            .collect();
        out!(
            "{}",
            json!({"lock": path.display().to_string(), "tools": report, "removed": removed, "confusable": looks, "differs": differs})
        );
    } else {
        for tool in &report {
            out!(
                "{} ({}):",
                tool["tool"].as_str().unwrap_or(""),
                tool["backend"].as_str().unwrap_or("")
            );
            for f in tool["findings"].as_array().into_iter().flatten() {
                match f["kind"].as_str() {
                    Some("changed") => {
                        for c in f["changes"].as_array().into_iter().flatten() {
                            out!("  changed {}:", c["part"].as_str().unwrap_or(""));
                            out!("    - {}", shown(&c["pinned"]));
                            out!("    + {}", shown(&c["now"]));
                        }
                    }
                    Some("unpinned") => out!("  not pinned: new since the lock file was written"),
                    Some("suspicious") => out!(
                        "  rule `{}` matched its {}: {:?}",
                        f["rule"].as_str().unwrap_or(""),
                        f["place"].as_str().unwrap_or(""),
                        f["matched"].as_str().unwrap_or("")
                    ),
                    _ => {}
                }
            }
        }
        for (b, t) in &removed {
            out!("{t} ({b}): pinned, no longer served");
        }
        for line in &looks {
            out!("{line}");
        }
        if !differs {
            err!("the backends serve exactly what {} pins", path.display());
        }
    }
    Ok(if differs {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

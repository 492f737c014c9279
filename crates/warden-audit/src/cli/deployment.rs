//! `audit verify-deployment`: every replica of a deployment writes a chain of its own (its
//! own origin and signing key) under one store, each under a prefix of its own
//! (`s3://bucket/audit/<replica>/`). This verifies each chain in full with the key named
//! after its origin and reports them as one record set: one line per replica, the
//! findings of each, and the deployment's status (the worst of theirs).
//!
//! A replica that stopped writing shows as its chain's findings do: a chain that ends in a
//! `stop` record ended cleanly (scaled down); one that went silent without one (killed, cut
//! off) is incomplete from its last heartbeat on. A key given for which no chain exists is
//! reported too: a replica expected to write, whose log is missing.

use std::path::PathBuf;

use anyhow::Context;
use object_store::ObjectStoreExt;
use serde_json::json;

use super::{StoreArgs, load_key, moment};
use crate::verify;
use crate::{NoteVerifier, Store};

/// The keys in `paths`: `.pub` files, or directories of them.
fn keys(paths: &[PathBuf]) -> anyhow::Result<Vec<NoteVerifier>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| path.display().to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            files.sort();
            for file in files {
                out.push(load_key(&file)?);
            }
        } else {
            out.push(load_key(path)?);
        }
    }
    anyhow::ensure!(!out.is_empty(), "no public key given (`--public-key`)");
    Ok(out)
}

/// The origin a chain's checkpoints name (the first line of its first checkpoint).
async fn origin(store: &Store) -> Option<String> {
    let listing = verify::listing::list(store).await.ok()?;
    let first = listing.checkpoints.first()?;
    let bytes = store.inner.get(&first.key).await.ok()?.bytes().await.ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    text.lines().next().map(str::to_owned)
}

/// Tampered first, then could not verify, then incomplete (as one log's report orders them).
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        1 => 3,
        3 => 2,
        2 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

struct Replica {
    name: String,
    origin: Option<String>,
    code: u8,
    report: Option<verify::Report>,
    why: Option<String>,
}

pub async fn verify_deployment(
    store: &StoreArgs,
    public_keys: &[PathBuf],
    json: bool,
    at: Option<&str>,
) -> u8 {
    let setup = async {
        let keys = keys(public_keys)?;
        let now_us = moment(at)?;
        let root = store.open()?;
        let logs = root.logs_below().await?;
        anyhow::ensure!(
            !logs.is_empty(),
            "no replica's log under {} (each replica writes under a prefix of its own, e.g. `s3://bucket/audit/<replica>`)",
            root.url()
        );
        Ok::<_, anyhow::Error>((keys, now_us, logs))
    };
    let (keys, now_us, logs) = match setup.await {
        Ok(setup) => setup,
        Err(e) => {
            err!("could not verify: {e:#}");
            return 3;
        }
    };
    let mut replicas = Vec::new();
    let mut used = vec![false; keys.len()];
    for (name, log) in logs {
        let origin = origin(&log).await;
        let key = origin
            .as_deref()
            .and_then(|o| keys.iter().position(|k| k.name() == o));
        let replica = match (key, &origin) {
            (Some(i), _) => {
                used[i] = true;
                let report =
                    verify::verify_with(&log, &keys[i], None, now_us, Default::default()).await;
                Replica {
                    code: report.exit_code(),
                    name,
                    origin,
                    report: Some(report),
                    why: None,
                }
            }
            (None, Some(o)) => Replica {
                name,
                code: 3,
                why: Some(format!("no public key is named `{o}`")),
                origin,
                report: None,
            },
            (None, None) => Replica {
                name,
                origin,
                code: 3,
                why: Some("no signed checkpoint names the log's origin".to_owned()),
                report: None,
            },
        };
        replicas.push(replica);
    }
    let missing: Vec<&str> = keys
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(k, _)| k.name())
        .collect();
    let mut code = replicas.iter().fold(0, |code, r| worse(code, r.code));
    if !missing.is_empty() {
        code = worse(code, 2);
    }
    let records: u64 = replicas
        .iter()
        .filter_map(|r| r.report.as_ref())
        .map(|r| r.records)
        .sum();
    if json {
        let each: Vec<serde_json::Value> = replicas
            .iter()
            .map(|r| {
                let mut value = match &r.report {
                    Some(report) => super::check::json_report(report, r.code, false),
                    None => json!({"status": super::check::status(r.code), "exit_code": r.code,
                                   "origin": r.origin, "error": r.why}),
                };
                value["replica"] = json!(r.name);
                value
            })
            .collect();
        out!(
            "{}",
            json!({
                "status": super::check::status(code),
                "exit_code": code,
                "records": records,
                "replicas": each,
                "keys_without_a_log": missing,
            })
        );
    } else {
        for r in &replicas {
            let origin = r.origin.as_deref().unwrap_or("?");
            match &r.report {
                Some(report) => {
                    out!(
                        "replica {} ({origin}): {}",
                        r.name,
                        super::check::summary(report, r.code)
                    );
                    for finding in &report.findings {
                        out!("  {finding}");
                    }
                }
                None => out!(
                    "replica {} ({origin}): could not verify: {}",
                    r.name,
                    r.why.as_deref().unwrap_or("")
                ),
            }
        }
        for name in &missing {
            out!(
                "key `{name}`: no log under the store is signed with it (a replica that never wrote, or whose log is elsewhere)"
            );
        }
        let count = |c: u8| replicas.iter().filter(|r| r.code == c).count();
        out!(
            "deployment {}: {} replicas, {records} records: {} verified, {} tampered, {} incomplete, {} could not verify{}",
            super::check::status(code),
            replicas.len(),
            count(0),
            count(1),
            count(2),
            count(3),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; {} keys without a log", missing.len())
            }
        );
    }
    code
}

#[cfg(test)]
mod tests {
    use super::worse;

    #[test]
    fn the_deployment_is_as_bad_as_its_worst_replica() {
        assert_eq!([0, 2, 0].into_iter().fold(0, worse), 2);
        assert_eq!([2, 3, 0].into_iter().fold(0, worse), 3);
        assert_eq!([3, 1, 2].into_iter().fold(0, worse), 1);
        assert_eq!([0, 0].into_iter().fold(0, worse), 0);
    }

    #[test]
    fn keys_come_from_files_and_directories() {
        let dir = std::env::temp_dir().join(format!("warden-deploy-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a", "b"] {
            let (_, _, vkey) = crate::NoteSigner::generate(&format!("example.com/{name}")).unwrap();
            std::fs::write(dir.join(format!("{name}.pub")), vkey).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not a key").unwrap();
        let keys = super::keys(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<&str> = keys.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["example.com/a", "example.com/b"]);
        assert!(super::keys(&[]).is_err());
        assert!(super::keys(&[dir.join("notes.txt")]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

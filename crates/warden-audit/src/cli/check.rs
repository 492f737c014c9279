//! The checking subcommands' output: `audit verify` (findings, summary, JSON, state
//! update) and `audit verify-proof`, with their exit statuses.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use crate::NoteVerifier;
use crate::proof::{self, DisclosureFile, ProofFile};
use crate::verify::{self, Class, Report, State};
use anyhow::Context;
use serde_json::json;

use super::{StoreArgs, load_key, moment};

/// `audit verify --witness`: the witnesses' keys and how many must have cosigned.
pub struct Witnessing {
    pub keys: Vec<std::path::PathBuf>,
    pub needed: Option<usize>,
}

/// `audit verify`: every failure to start is "could not verify" (3), never 1 or 0.
pub async fn verify_log(
    store: &StoreArgs,
    public_key: &Path,
    state_path: Option<&Path>,
    incremental: bool,
    json: bool,
    at: Option<&str>,
    witnessing: &Witnessing,
) -> u8 {
    let setup = async {
        let key = load_key(public_key)?;
        let now_us = moment(at)?;
        let state = state_path.map(State::load).transpose()?.flatten();
        Ok::<_, anyhow::Error>((store.open()?, key, now_us, state))
    };
    let (store, key, now_us, state) = match setup.await {
        Ok(setup) => setup,
        Err(e) => {
            err!("could not verify: {e:#}");
            return 3;
        }
    };
    let bar = (!json && std::io::stderr().is_terminal()).then(Bar::new);
    let options = verify::Options {
        incremental,
        progress: bar.as_ref().map(|b| b as &(dyn verify::Progress + Sync)),
    };
    let report = verify::verify_with(&store, &key, state.as_ref(), now_us, options).await;
    if let Some(bar) = bar {
        bar.0.finish();
    }
    if let Some(why) = &report.full_because {
        err!("read the whole log: {why}");
    }
    let mut code = report.exit_code();
    let mut saved = None;
    if let (Some(path), Some(new)) = (state_path, report.state()) {
        match new.save(path) {
            Ok(()) => saved = Some(path),
            Err(e) => {
                err!("could not verify: the log verified but {e}");
                code = 3;
            }
        }
    }
    let mut witnessed = None;
    if !witnessing.keys.is_empty() {
        let verifiers: Result<Vec<_>, _> = witnessing
            .keys
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
                crate::witness::WitnessVerifier::from_vkey(&text)
                    .with_context(|| format!("{} is not a witness key", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>();
        let verifiers = match verifiers {
            Ok(v) => v,
            Err(e) => {
                err!("could not verify: {e:#}");
                return 3;
            }
        };
        let needed = witnessing.needed.unwrap_or(verifiers.len());
        match crate::witness::witnessed(&store, &key, &verifiers, needed).await {
            Ok(Some((size, names))) => {
                witnessed = Some(json!({"size": size, "by": names}));
                if !json {
                    out!(
                        "witnessed: the checkpoint of {size} records is cosigned by {} ({} needed)",
                        names.join(", "),
                        needed
                    );
                }
            }
            Ok(None) => {
                if !json {
                    out!(
                        "not witnessed: no checkpoint carries {needed} valid cosignatures of the given witnesses"
                    );
                }
                if code == 0 {
                    code = 2;
                }
            }
            Err(e) => {
                err!("could not verify the cosignatures: {e}");
                code = 3;
            }
        }
    }
    if json {
        let mut value = json_report(&report, code, saved.is_some());
        if !witnessing.keys.is_empty() {
            value["witnessed"] = witnessed.unwrap_or(serde_json::Value::Null);
        }
        out!("{value}");
    } else {
        for finding in &report.findings {
            out!("{finding}");
        }
        out!("{}", summary(&report, code));
        if let Some(path) = saved {
            out!("state saved to {}", path.display());
        }
    }
    code
}

/// The progress bar on standard error (only on a terminal, never with `--json`).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed:>4} [{bar:30}] {pos}/{len} segments, {msg} records",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bar(bar)
    }
}

impl verify::Progress for Bar {
    fn segments(&self, total: u64) {
        self.0.set_length(total);
    }

    fn advanced(&self, records: u64) {
        self.0.inc(1);
        self.0.set_message(records.to_string());
    }
}

pub(super) fn status(code: u8) -> &'static str {
    match code {
        0 => "verified",
        1 => "tampered",
        2 => "incomplete",
        _ => "could not verify",
    }
}

pub(super) fn summary(report: &Report, code: u8) -> String {
    let mut line = if report.resumed_from > 0 {
        format!(
            "{}: {} new records in {} segments after the {} verified before, {} checkpoints",
            status(code),
            report.records,
            report.segments,
            report.resumed_from,
            report.checkpoints
        )
    } else {
        format!(
            "{}: {} records in {} segments, {} checkpoints",
            status(code),
            report.records,
            report.segments,
            report.checkpoints
        )
    };
    if let Some((c, _)) = &report.newest {
        line.push_str(&format!("; newest signed checkpoint: {} records", c.size));
    }
    if !report.findings.is_empty() {
        line.push_str(&format!(
            "; findings: {} tampered, {} incomplete, {} could not verify",
            report.count(Class::Tampered),
            report.count(Class::Incomplete),
            report.count(Class::CouldNotVerify)
        ));
    }
    line
}

pub(super) fn json_report(report: &Report, code: u8, state_saved: bool) -> serde_json::Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            v["class"] = serde_json::to_value(f.class()).unwrap_or_default();
            v
        })
        .collect();
    serde_json::json!({
        "status": status(code),
        "exit_code": code,
        "origin": report.origin,
        "records": report.records,
        "resumed_from": report.resumed_from,
        "full_because": report.full_because,
        "segments": report.segments,
        "checkpoints": report.checkpoints,
        "newest": report.newest.as_ref().map(|(c, _)| serde_json::json!({
            "size": c.size,
            "root": b64.encode(c.root),
        })),
        "counts": {
            "tampered": report.count(Class::Tampered),
            "incomplete": report.count(Class::Incomplete),
            "could_not_verify": report.count(Class::CouldNotVerify),
        },
        "findings": findings,
        "state_saved": state_saved,
    })
}

/// `audit verify-proof`: 0 valid, 1 invalid, 3 unreadable.
pub fn verify_proof(file: &Path, public_key: &Path) -> ExitCode {
    let read = || -> anyhow::Result<(NoteVerifier, serde_json::Value)> {
        let key = load_key(public_key)?;
        let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        Ok((key, value))
    };
    let (key, value) = match read() {
        Ok(read) => read,
        Err(e) => {
            err!("could not verify: {e:#}");
            return ExitCode::from(3);
        }
    };
    let result = if value.get("consistency").is_some() {
        serde_json::from_value::<crate::consistency::ConsistencyFile>(value)
            .map_err(|e| format!("not a consistency proof: {e}"))
            .and_then(|c| {
                crate::consistency::check_consistency(&c, &key).map_err(|e| e.to_string())?;
                Ok(format!(
                    "valid: the newer checkpoint of {} extends the older one",
                    c.origin
                ))
            })
    } else if value.get("path").is_some() {
        serde_json::from_value::<DisclosureFile>(value)
            .map_err(|e| format!("not a disclosure file: {e}"))
            .and_then(|d| {
                proof::check_disclosure(&d, &key).map_err(|e| e.to_string())?;
                Ok(format!(
                    "valid: record {} of {} is in a signed checkpoint, and its argument `{}` was {}",
                    d.proof.index, d.proof.origin, d.path, d.value
                ))
            })
    } else {
        serde_json::from_value::<ProofFile>(value)
            .map_err(|e| format!("not a proof file: {e}"))
            .and_then(|p| {
                proof::check_proof(&p, &key).map_err(|e| e.to_string())?;
                Ok(format!(
                    "valid: record {} of {} is in a signed checkpoint",
                    p.index, p.origin
                ))
            })
    };
    match result {
        Ok(message) => {
            out!("{message}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            out!("invalid: {why}");
            ExitCode::from(1)
        }
    }
}

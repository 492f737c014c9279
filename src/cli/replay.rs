//! `mcp-warden policy replay`: verify the audit log, then decide every recorded request
//! again under the candidate policy set and report what would change (`mcp_warden::replay`).
//!
//! Exit status: 0 nothing would change, 1 some decision would change, 2 nothing would change
//! but some records could not be decided on what they hold, 3 the log could not be
//! verified (tampered, unreadable) or the policies could not be loaded.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use mcp_warden::audit::verify::{self, Class, listing};
use mcp_warden::replay::{Options, Replayer};

use super::policy::PolicySet;
use warden_audit::cli::{StoreArgs, load_key, parse_time};

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    set: PolicySet,
    #[command(flatten)]
    store: StoreArgs,
    /// The checkpoint verifier key (a `.pub` file)
    #[arg(long)]
    public_key: PathBuf,
    /// Only records of the last DURATION (`7d`, `36h`) or since a time (RFC 3339 or epoch
    /// seconds); earlier records still give sessions their history
    #[arg(long)]
    since: Option<String>,
    /// Only this principal id (in a pseudonymised log, the pseudonym)
    #[arg(long)]
    principal: Option<String>,
    /// Only this exposed tool
    #[arg(long)]
    tool: Option<String>,
    /// The log's pseudonym key: principals the policies name are recognised
    #[arg(long)]
    pseudonym_key: Option<PathBuf>,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

/// `--since`: a duration back from now, or a moment; as µs since the epoch.
fn since_us(text: &str, now_us: u64) -> anyhow::Result<u64> {
    match humantime::parse_duration(text) {
        Ok(back) => Ok(now_us.saturating_sub(back.as_micros() as u64)),
        Err(_) => parse_time(text).with_context(|| {
            format!("`--since {text}`: give a duration (`7d`, `36h`) or a time (RFC 3339)")
        }),
    }
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64;
    let since_us = args
        .since
        .as_deref()
        .map(|s| since_us(s, now_us))
        .transpose()?;
    let loaded = args.set.load().await?;
    let engine = match super::policy::build(&loaded) {
        Ok(e) => e,
        Err(_) => return Ok(ExitCode::from(3)),
    };
    let config = loaded.config.as_ref();
    let options = Options {
        since_us,
        principal: args.principal,
        tool: args.tool,
        pseudonym_key: args
            .pseudonym_key
            .as_deref()
            .map(mcp_warden::audit::read_pseudonym_key)
            .transpose()?,
        issuer_prefixes: config.map(|c| {
            c.auth
                .issuers
                .iter()
                .filter_map(|i| Some((i.issuer.clone(), i.principal_prefix.clone()?)))
                .collect()
        }),
        history_window_s: config.map_or(3_600, |c| c.tools.history_window.as_secs()),
        // The proxy's default without a configuration.
        session_idle_s: Some(config.map_or(300, |c| c.server.session_idle_timeout.as_secs())),
    };

    let key = load_key(&args.public_key)?;
    let store = args.store.open()?;
    let report = verify::verify(&store, &key, None, now_us).await;
    if matches!(
        report.worst(),
        Some(Class::Tampered | Class::CouldNotVerify)
    ) {
        for finding in &report.findings {
            err!("{finding}");
        }
        err!(
            "not replayed: the log does not verify (run `mcp-warden audit verify` for the whole report)"
        );
        return Ok(ExitCode::from(3));
    }
    // Only records a signed checkpoint covers: the rest could still be rewritten.
    let covered = report.newest.as_ref().map_or(0, |(c, _)| c.size);
    for finding in &report.findings {
        err!("note: {finding}");
    }

    let mut replayer = Replayer::new(&engine, options);
    let listing = listing::list(&store).await?;
    let keys = listing.segments.into_iter().map(|s| s.key).collect();
    let mut reads = listing::read_each(&store, keys, 4);
    let mut seen = 0u64;
    'segments: while let Some(data) = reads.next().await {
        let data = data?;
        for line in data
            .as_ref()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            if seen == covered {
                break 'segments;
            }
            seen += 1;
            let record: serde_json::Value =
                serde_json::from_slice(line).context("a verified record is not JSON")?;
            replayer.record(&record);
        }
    }
    if report.records > covered {
        err!(
            "note: {} records after the newest signed checkpoint were not replayed",
            report.records - covered
        );
    }
    let outcome = replayer.finish();
    if args.json {
        let mut value = serde_json::to_value(&outcome)?;
        value["exit_code"] = outcome.exit_code().into();
        value["disclose"] = serde_json::to_value(outcome.disclosure_hints())?;
        value["policy_set_hash"] = format!("sha256:{}", engine.policy_set_hash()).into();
        out!("{value}");
    } else {
        out!("{outcome}");
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

//! `warden-audit keygen|verify|verify-deployment|show|pseudonym|prove|verify-proof|disclose` (the same as
//! `mcp-warden audit ...`): the auditor's tools.
//! They read the log straight from its object store (the proxy need not run) and check it
//! against the checkpoint key alone, as audit/FORMAT.md §7–8 describe.
//!
//! `verify` exits 0 verified, 1 tampered, 2 incomplete, 3 could not verify; it never exits
//! 0 for a log it could not check completely. `verify-proof` exits 0 valid, 1 invalid,
//! 3 when the file or key cannot be read.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::proof;
use crate::show::{self, Filter, Format, ShowError};
use crate::{NoteSigner, NoteVerifier, Store, write_private};
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

mod check;
mod deployment;
pub mod output;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Generate a checkpoint signing key: PATH.key (secret, mode 0600) and PATH.pub
    Keygen {
        /// The key name (by convention the log's origin)
        #[arg(long)]
        name: String,
        /// Where to write the key files, without extension
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a whole log: exit 0 verified, 1 tampered, 2 incomplete, 3 could not verify
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The checkpoint verifier key (a `.pub` file)
        #[arg(long)]
        public_key: PathBuf,
        /// The auditor's state file: checked against, and updated when the log verifies
        #[arg(long)]
        state: Option<PathBuf>,
        /// Read only what is new since the saved state (its last record must be unchanged;
        /// older records are not read again)
        #[arg(long, requires = "state")]
        incremental: bool,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        /// Judge staleness at this moment (RFC 3339 or epoch seconds) instead of now
        #[arg(long)]
        at: Option<String>,
        /// A witness's public key (`.pub`); repeatable: a checkpoint cosigned by enough of
        /// them is required (else exit 2)
        #[arg(long = "witness")]
        witnesses: Vec<PathBuf>,
        /// How many of the `--witness` keys must have cosigned (default: all)
        #[arg(long, requires = "witnesses")]
        witnesses_needed: Option<usize>,
    },
    /// Verify every replica's log of a deployment: each under a prefix of its own below
    /// `--store`, with the key named after its origin; exit as the worst of them
    VerifyDeployment {
        #[command(flatten)]
        store: StoreArgs,
        /// A replica's checkpoint verifier key (`.pub`), or a directory of them; repeatable
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<PathBuf>,
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        /// Judge staleness at this moment (RFC 3339 or epoch seconds) instead of now
        #[arg(long)]
        at: Option<String>,
    },
    /// Print records, oldest first (reads only; `verify` checks them)
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Records at or after this time (RFC 3339 or epoch seconds)
        #[arg(long)]
        from: Option<String>,
        /// Records before this time (RFC 3339 or epoch seconds)
        #[arg(long)]
        to: Option<String>,
        /// Only this principal id (in a log with pseudonyms: the pseudonym, or the id
        /// with --pseudonym-key)
        #[arg(long)]
        principal: Option<String>,
        /// The log's pseudonym key: --principal is then the id in clear
        #[arg(long, requires = "principal")]
        pseudonym_key: Option<PathBuf>,
        /// Only principals of this tenant
        #[arg(long)]
        tenant: Option<String>,
        /// Only this exposed tool (or prompt, or resource URI)
        #[arg(long)]
        tool: Option<String>,
        /// Only this decision
        #[arg(long)]
        decision: Option<Decision>,
        /// Only decisions this policy determined (its id)
        #[arg(long)]
        policy: Option<String>,
        /// Only this outcome
        #[arg(long)]
        outcome: Option<Outcome>,
        /// Only this kind of record: request, auth_failure, start, stop, policy or config
        #[arg(long, value_parser = record_kind)]
        kind: Option<String>,
        /// table (long values shortened), jsonl (the records as stored), json (one array)
        /// or csv (every value in full)
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
        /// The same as --format jsonl
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Print the pseudonym a log with `pseudonym_key` records for each principal id
    Pseudonym {
        /// The log's pseudonym key file
        #[arg(long)]
        key: PathBuf,
        /// Principal ids in clear
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Write an inclusion proof of one record against the newest checkpoint covering it
    Prove {
        #[command(flatten)]
        store: StoreArgs,
        /// The record's index
        #[arg(long)]
        index: u64,
        /// Use only checkpoints that verify with this key
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Write the proof here instead of to standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Stream the log as it grows, verified: each record once a signed checkpoint covers it
    /// and it checks, one JSON line each (the record, or an OCSF event); resumes from
    /// `--position`; stops with exit 1 at anything that does not verify
    Follow {
        #[command(flatten)]
        store: StoreArgs,
        /// The checkpoint verifier key (a `.pub` file)
        #[arg(long)]
        public_key: PathBuf,
        /// Where the position is kept (an auditor's state file), resumed from when present
        #[arg(long)]
        position: Option<PathBuf>,
        /// `jsonl`: the records as stored; `ocsf`: OCSF API Activity events; `cef`: ArcSight
        /// Common Event Format lines (the record in full in `cs6`)
        #[arg(long, value_enum, default_value = "jsonl")]
        format: FollowFormat,
        /// Seconds between looks at the store
        #[arg(long, default_value_t = 2)]
        interval: u64,
        /// Stop once caught up (exit 0) instead of waiting for more
        #[arg(long)]
        once: bool,
    },
    /// Prove that the log's newer checkpoint extends an older one (RFC 9162 consistency):
    /// exit 0 and the proof, 1 when the log does not extend it (a fork), 3 unreadable
    Consistency {
        #[command(flatten)]
        store: StoreArgs,
        /// The checkpoint verifier key (a `.pub` file)
        #[arg(long)]
        public_key: PathBuf,
        /// The older checkpoint: a signed checkpoint note, or an auditor's state file
        /// (`verify --state`)
        #[arg(long)]
        from: PathBuf,
        /// The newer checkpoint, the same way (default: the store's newest signed one)
        #[arg(long)]
        to: Option<PathBuf>,
        /// Write the proof here instead of to standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a proof or disclosure file offline: exit 0 valid, 1 invalid, 3 unreadable
    VerifyProof {
        /// The proof or disclosure file
        file: PathBuf,
        /// The checkpoint verifier key (a `.pub` file)
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Disclose one argument value of a record, with the proof that it was committed to
    Disclose {
        #[command(flatten)]
        store: StoreArgs,
        /// The record's index
        #[arg(long)]
        index: u64,
        /// The argument's RFC 6901 path, e.g. `/amount` (`""` for the whole arguments)
        #[arg(long, allow_hyphen_values = true)]
        field: String,
        /// The writer's openings directory (`<state_dir>/openings`)
        #[arg(long)]
        openings: PathBuf,
        /// Use only checkpoints that verify with this key
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Write the disclosure here instead of to standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct StoreArgs {
    /// The log's store: a directory (a path, or file:///dir), s3://bucket/prefix
    #[arg(long)]
    store: String,
    /// A store option (S3: endpoint, region, allow_http, ...), repeatable
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = key_value)]
    store_option: Vec<(String, String)>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FollowFormat {
    Jsonl,
    Ocsf,
    Cef,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Decision {
    Allow,
    Deny,
}

/// `outcome.status` values (audit/FORMAT.md §2).
#[derive(Clone, Copy, ValueEnum)]
pub enum Outcome {
    Ok,
    Error,
    Denied,
    RateLimited,
    Blocked,
    Unauthenticated,
    Unavailable,
}

/// A record kind as the log writes it (the record's own `Kind`; `auth-failure` is taken
/// for `auth_failure`).
fn record_kind(text: &str) -> Result<String, String> {
    let name = text.replace('-', "_");
    serde_json::from_value::<crate::Kind>(serde_json::Value::String(name.clone()))
        .map(|_| name)
        .map_err(|_| format!("`{text}`: one of request, auth_failure, start, stop, policy, config"))
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Table,
    Jsonl,
    Json,
    Csv,
}

/// A value enum's name as clap spells it (`rate_limited` is `rate-limited` there).
fn recorded_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().replace('-', "_"))
        .unwrap_or_default()
}

impl StoreArgs {
    /// Opens the store for reading: a `file://` store must already exist (opening one
    /// would otherwise create an empty directory and report an empty log).
    pub fn open(&self) -> anyhow::Result<Store> {
        let store = self.url()?;
        if let Ok(url) = url::Url::parse(&store)
            && url.scheme() == "file"
        {
            let dir = url
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("`{}` is not an absolute local path", self.store))?;
            if !dir.is_dir() {
                bail!("the audit store {} is not a directory", dir.display());
            }
        }
        let options: BTreeMap<String, String> = self.store_option.iter().cloned().collect();
        Ok(Store::open(&store, &options)?)
    }

    /// The store as a URL: a plain path (no `scheme://`) is the local directory it names.
    fn url(&self) -> anyhow::Result<String> {
        if self.store.contains("://") {
            return Ok(self.store.clone());
        }
        let dir = std::path::absolute(&self.store)
            .with_context(|| format!("`{}` is not a usable path", self.store))?;
        url::Url::from_directory_path(&dir)
            .map(String::from)
            .map_err(|()| anyhow::anyhow!("`{}` is not a usable path", dir.display()))
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Keygen { name, out } => keygen(&name, &out),
        AuditCommand::Verify {
            store,
            public_key,
            state,
            incremental,
            json,
            at,
            witnesses,
            witnesses_needed,
        } => Ok(ExitCode::from(
            check::verify_log(
                &store,
                &public_key,
                state.as_deref(),
                incremental,
                json,
                at.as_deref(),
                &check::Witnessing {
                    keys: witnesses,
                    needed: witnesses_needed,
                },
            )
            .await,
        )),
        AuditCommand::VerifyDeployment {
            store,
            public_keys,
            json,
            at,
        } => Ok(ExitCode::from(
            deployment::verify_deployment(&store, &public_keys, json, at.as_deref()).await,
        )),
        AuditCommand::Show {
            store,
            from,
            to,
            principal,
            pseudonym_key,
            tenant,
            tool,
            decision,
            policy,
            outcome,
            kind,
            format,
            json,
        } => {
            let key = pseudonym_key
                .as_deref()
                .map(crate::read_pseudonym_key)
                .transpose()?;
            let filter = Filter {
                from_us: from.as_deref().map(parse_time).transpose()?,
                to_us: to.as_deref().map(parse_time).transpose()?,
                principal: match (&principal, &key) {
                    (Some(id), Some(key)) => Some(crate::pseudonym(key, id)),
                    _ => principal.clone(),
                },
                tenant,
                tool,
                decision: decision.map(recorded_name),
                policy,
                outcome: outcome.map(recorded_name),
                kind,
            };
            let format = match (json, format) {
                (true, _) | (_, ShowFormat::Jsonl) => Format::JsonLines,
                (_, ShowFormat::Table) => Format::Table,
                (_, ShowFormat::Json) => Format::Json,
                (_, ShowFormat::Csv) => Format::Csv,
            };
            let store = store.open()?;
            let mut stdout = std::io::stdout().lock();
            let shown = match show::show(&store, &filter, format, &mut stdout).await {
                Ok(shown) => shown,
                // The reader went away (`| head`): not an error.
                Err(ShowError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e.into()),
            };
            if shown.skipped > 0 {
                err!(
                    "warning: {} lines are not records; run `mcp-warden audit verify`",
                    shown.skipped
                );
            }
            if shown.matched == 0 {
                err!("no record matched ({} records read)", shown.read);
                if let Some(id) = &principal {
                    principal_hint(id, key.is_some(), &shown);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Pseudonym { key, ids } => {
            let key = crate::read_pseudonym_key(&key)?;
            for id in ids {
                out!("{}  {}", crate::pseudonym(&key, &id), id);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prove {
            store,
            index,
            public_key,
            out,
        } => {
            let key = public_key.as_deref().map(load_key).transpose()?;
            let file = proof::prove(&store.open()?, key.as_ref(), index).await?;
            write_json(&file, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Disclose {
            store,
            index,
            field,
            openings,
            public_key,
            out,
        } => {
            let key = public_key.as_deref().map(load_key).transpose()?;
            let file = proof::prove(&store.open()?, key.as_ref(), index).await?;
            let file = proof::disclose(file, &openings, &field)?;
            write_json(&file, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Follow {
            store,
            public_key,
            position,
            format,
            interval,
            once,
        } => {
            follow(
                &store,
                &public_key,
                position.as_deref(),
                format,
                interval,
                once,
            )
            .await
        }
        AuditCommand::Consistency {
            store,
            public_key,
            from,
            to,
            out,
        } => {
            let key = load_key(&public_key)?;
            let old = checkpoint_note(&from)?;
            let new = to.as_deref().map(checkpoint_note).transpose()?;
            let store = store.open()?;
            match crate::consistency::prove_consistency(&store, &key, &old, new.as_deref()).await {
                Ok(file) => {
                    write_json(&file, out.as_deref())?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(
                    e @ (crate::consistency::ConsistencyError::Fork { .. }
                    | crate::consistency::ConsistencyError::Inconsistent(_)),
                ) => {
                    err!("{e}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    err!("could not prove: {e}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        AuditCommand::VerifyProof { file, public_key } => {
            Ok(check::verify_proof(&file, &public_key))
        }
    }
}

/// Why a principal filter matched nothing, when the log says why: its principals are
/// pseudonyms and the filter is an id in clear, or the other way round.
fn principal_hint(id: &str, pseudonymised: bool, shown: &show::Shown) {
    let pseudonym = id.starts_with(show::PSEUDONYM_PREFIX);
    if !pseudonymised && !pseudonym && shown.pseudonymous > 0 {
        err!(
            "this log records principals as pseudonyms ({}…): pass the log's key with \
             --pseudonym-key FILE to match `{id}`, or compute its pseudonym with \
             `mcp-warden audit pseudonym --key FILE {id}`",
            show::PSEUDONYM_PREFIX
        );
    } else if (pseudonymised || pseudonym) && shown.pseudonymous == 0 && shown.read > 0 {
        err!("this log records principal ids in clear, not pseudonyms: give the id itself");
    }
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let (_, skey, vkey) = NoteSigner::generate(name)?;
    write_key_pair(out, &skey, &vkey)
}

/// Writes a key pair as `OUT.key` (secret, mode 0600) and `OUT.pub`, refusing to overwrite
/// either, and prints the public key.
pub fn write_key_pair(out: &Path, skey: &str, vkey: &str) -> anyhow::Result<ExitCode> {
    let with = |ext: &str| {
        let mut path = OsString::from(out.as_os_str());
        path.push(ext);
        PathBuf::from(path)
    };
    let (secret, public) = (with(".key"), with(".pub"));
    for path in [&secret, &public] {
        if path.exists() {
            bail!("{} exists; refusing to overwrite a key", path.display());
        }
    }
    write_private(&secret, skey).with_context(|| secret.display().to_string())?;
    write_new(&public, &format!("{vkey}\n")).with_context(|| public.display().to_string())?;
    out!(
        "wrote {} (keep it secret) and {}",
        secret.display(),
        public.display()
    );
    out!("{vkey}");
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// `audit follow`: 0 caught up (`--once`) or the reader went away, 1 something did not
/// verify, 3 the store or the position could not be read.
async fn follow(
    store: &StoreArgs,
    public_key: &Path,
    position: Option<&Path>,
    format: FollowFormat,
    interval: u64,
    once: bool,
) -> anyhow::Result<ExitCode> {
    use crate::follow::{FollowError, Follower};
    let key = load_key(public_key)?;
    let store = store.open()?;
    let saved = position
        .map(crate::verify::State::load)
        .transpose()?
        .flatten();
    let mut follower = match Follower::new(saved.as_ref()) {
        Ok(f) => f,
        Err(e) => {
            err!("could not follow: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    loop {
        match follower.next_batch(&store, &key).await {
            Ok(batch) => {
                for line in &batch {
                    match format {
                        FollowFormat::Jsonl => out!("{}", String::from_utf8_lossy(line)),
                        FollowFormat::Ocsf => {
                            let record: serde_json::Value = serde_json::from_slice(line)?;
                            out!("{}", crate::siem::ocsf(&record));
                        }
                        FollowFormat::Cef => {
                            let record: serde_json::Value = serde_json::from_slice(line)?;
                            let text = String::from_utf8_lossy(line);
                            out!("{}", crate::siem::cef(&record, &text));
                        }
                    }
                }
                // Saved after the lines are out: a restart may repeat a batch (each line
                // names its origin and index), never skip one.
                if let (Some(path), false, Some(state)) =
                    (position, batch.is_empty(), follower.position())
                {
                    state.save(path)?;
                }
                if !batch.is_empty() {
                    // Caught up with the newest checkpoint: look again at once.
                    continue;
                }
                if once {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(e @ FollowError::Tampered(_)) => {
                err!("stopped: {e}");
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                err!("stopped: {e}");
                return Ok(ExitCode::from(3));
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
    }
}

/// A signed checkpoint note from a file holding one, or from an auditor's state file.
fn checkpoint_note(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let state: crate::verify::State = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an auditor's state file", path.display()))?;
        return Ok(state.checkpoint);
    }
    Ok(text)
}

pub fn load_key(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    NoteVerifier::from_vkey(&text)
        .with_context(|| format!("{} is not a verifier key", path.display()))
}

/// When staleness is judged: `--at` (as [`parse_time`] reads it), else now; µs.
pub fn moment(at: Option<&str>) -> anyhow::Result<u64> {
    match at {
        Some(at) => parse_time(at),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)),
    }
}

/// Seconds since the epoch, or RFC 3339 (fractions of a second are dropped), as µs.
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    let seconds = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().context("epoch seconds out of range")?
    } else {
        let s = chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| {
                format!("`{text}` is not an RFC 3339 time (like `2026-11-24T10:00:00Z`)")
            })?
            .timestamp();
        u64::try_from(s).with_context(|| format!("`{text}` is before 1970"))?
    };
    seconds
        .checked_mul(1_000_000)
        .with_context(|| format!("`{text}` is too far in the future"))
}

fn write_json(value: &impl serde::Serialize, out: Option<&Path>) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    match out {
        Some(path) => {
            write_new(path, &text).with_context(|| format!("writing {}", path.display()))?;
            err!("wrote {}", path.display());
        }
        None => out!("{}", text.trim_end_matches('\n')),
    }
    Ok(())
}

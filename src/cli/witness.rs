//! `mcp-warden witness keygen|serve`: a witness for other parties to run — it cosigns an
//! mcp-warden audit log's checkpoints over HTTP (C2SP tlog-witness `POST /add-checkpoint`),
//! each only once it has checked that it extends the last one it cosigned, and refuses a
//! fork, saying so. What it cosigned is kept in `--state` (replaced atomically before it
//! answers), so a restarted witness remembers. The decisions are the audit crate's
//! (`warden_audit::witness`); this is the server around them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::Subcommand;
use warden_audit::NoteVerifier;
use warden_audit::witness::{Refusal, Witness, WitnessSigner, WitnessState};

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Generate a witness key: PATH.key (secret, mode 0600) and PATH.pub
    Keygen {
        /// The witness's name (a URL-like name, e.g. `witness.example.org/w1`)
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve `POST /add-checkpoint` for the logs whose keys are given
    Serve {
        /// The witness's secret key (`witness keygen`)
        #[arg(long)]
        key: PathBuf,
        /// A log's checkpoint verifier key (`.pub`); repeatable
        #[arg(long = "log", required = true)]
        logs: Vec<PathBuf>,
        /// What it cosigned, per log (created when missing)
        #[arg(long)]
        state: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8810")]
        bind: SocketAddr,
    },
}

struct Served {
    witness: Mutex<Witness>,
    state: PathBuf,
}

pub async fn run(command: WitnessCommand) -> anyhow::Result<ExitCode> {
    match command {
        WitnessCommand::Keygen { name, out } => {
            let (_, skey, vkey) = WitnessSigner::generate(&name)?;
            warden_audit::cli::write_key_pair(&out, &skey, &vkey)
        }
        WitnessCommand::Serve {
            key,
            logs,
            state,
            bind,
        } => {
            let read =
                |p: &Path| std::fs::read_to_string(p).with_context(|| p.display().to_string());
            let signer = WitnessSigner::from_skey(&read(&key)?)
                .with_context(|| format!("{} is not a witness key", key.display()))?;
            let logs = logs
                .iter()
                .map(|p| {
                    NoteVerifier::from_vkey(&read(p)?)
                        .with_context(|| format!("{} is not a log's verifier key", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let seen = match std::fs::read(&state) {
                Ok(text) => serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not a witness state", state.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => WitnessState::default(),
                Err(e) => return Err(e).context(state.display().to_string()),
            };
            let served = Arc::new(Served {
                witness: Mutex::new(Witness {
                    signer,
                    logs,
                    state: seen,
                }),
                state,
            });
            let app = Router::new()
                .route("/add-checkpoint", post(add_checkpoint))
                .with_state(served);
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            err!("witness listening on {}", listener.local_addr()?);
            axum::serve(listener, app).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn add_checkpoint(State(served): State<Arc<Served>>, body: String) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut witness = served.witness.lock().unwrap_or_else(|e| e.into_inner());
    let before = witness.state.clone();
    let answer = witness.add_checkpoint(&body, now);
    match answer {
        Ok(line) => {
            // Remembered before the cosignature leaves: a restarted witness never cosigns
            // a different history at a size it already vouched for.
            let text = serde_json::to_vec_pretty(&witness.state).unwrap_or_default();
            if let Err(e) = warden_audit::files::replace(&served.state, &text) {
                witness.state = before;
                err!("cannot save the witness state: {e}");
                return (StatusCode::SERVICE_UNAVAILABLE, "cannot save state\n").into_response();
            }
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response()
        }
        Err(Refusal::Conflict(size)) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response(),
        Err(refusal) => {
            err!("refused: {refusal}");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, format!("{refusal}\n")).into_response()
        }
    }
}

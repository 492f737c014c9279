//! The command line: `serve`, `check` and the built-in demo backend.

/// `println!` that ends quietly when stdout's reader has gone (see `cli::output`).
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::output::line(format_args!($($t)*)) };
}

/// `eprintln!` that never panics (see `cli::output`).
macro_rules! err {
    ($($t:tt)*) => { $crate::cli::output::error_line(format_args!($($t)*)) };
}

mod cli;

use std::{net::SocketAddr, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::source::Source;
use mcp_warden::Proxy;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mcp-warden",
    version,
    about = "A zero-trust gateway for the Model Context Protocol",
    after_help = "Logs go to stderr, coloured only on a terminal and never with NO_COLOR set. \
                  Their level: the MCP_WARDEN_LOG environment variable, else `[server] \
                  log_level` in the configuration, in tracing's filter syntax (e.g. `debug`, \
                  `info,mcp_warden::backend=debug`; default `info,rmcp=warn`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: cli::logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (with no config: the built-in demo backend on 127.0.0.1:8808)
    Serve {
        #[command(flatten)]
        source: Source,
        /// Serve one client over stdin/stdout instead of HTTP
        #[arg(long)]
        stdio: bool,
        /// Listen address, overriding `server.bind`
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Admin listener (`/metrics`, `/readyz`), overriding `admin.bind`; loopback unless
        /// `[admin] allow_remote = true`
        #[arg(long)]
        admin_bind: Option<SocketAddr>,
        /// Do not reload when the configuration or a policy file changes on disk (SIGHUP
        /// and the admin API still reload)
        #[arg(long)]
        no_watch: bool,
    },
    /// Validate a configuration exactly as `serve` would, without serving (`--live` starts
    /// the backends)
    Check {
        #[command(flatten)]
        source: Source,
        /// Do not look for the files the configuration names (key files, a JWKS file):
        /// for checking a deployment's configuration away from its host
        #[arg(long)]
        no_file_checks: bool,
        /// Also start the backends (never the audit log) as `serve` does: a backend that does
        /// not list, a quarantined tool, or a `hide`/`expose` glob or alias that names
        /// nothing is an error
        #[arg(long)]
        live: bool,
    },
    /// Validate, test, explain and print Cedar policies
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Read and change a running proxy through its admin API: backends, tools, the kill
    /// switch, breakers, the cache
    Admin(cli::admin::AdminArgs),
    /// Export the tools the configured backends serve, for the policy commands to read offline
    #[command(subcommand)]
    Tools(cli::tools::ToolsCommand),
    /// Verify the audit log, show its records, prove and disclose them, make signing keys
    #[command(subcommand)]
    Audit(warden_audit::cli::AuditCommand),
    /// Cosign other parties' audit logs as a witness (keys, and the HTTP server)
    #[command(subcommand)]
    Witness(cli::witness::WitnessCommand),
    /// Keys of `[sessions] key_file`, which let any replica serve any session
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Print the SHA-256 of a bearer token read from stdin, for `[[auth.tokens]] sha256`
    HashToken,
    /// Print a shell completion script (e.g. `mcp-warden completions bash >
    /// /etc/bash_completion.d/mcp-warden`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; e.g. `mcp-warden man > /usr/local/share/man/man1/mcp-warden.1`)
    Man,
    /// Run the built-in demo MCP server over stdio, or over streamable HTTP at `/mcp`
    #[command(hide = true)]
    DemoServer {
        /// Serve streamable HTTP on this address instead of stdio
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
}

#[derive(clap::Subcommand)]
enum SessionsCommand {
    /// Print a new random key, one line of a `[sessions] key_file` (the file's first key
    /// seals new session ids, every key opens them)
    Keygen,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `audit verify` reserves exit 2 for "incomplete": a usage error there is 3,
        // "could not verify", never anything that reads like a verdict.
        Err(e) if e.use_stderr() && std::env::args().nth(1).as_deref() == Some("audit") => {
            let _ = e.print();
            return ExitCode::from(3);
        }
        Err(e) => e.exit(),
    };
    // Logs go to stderr: stdout belongs to the MCP stream in stdio modes. The demo backend
    // logs little: its stderr ends up in the proxy's log.
    let default = if matches!(cli.command, Command::DemoServer { .. }) {
        "warn"
    } else {
        "info,rmcp=warn"
    };
    let logging = cli::logging::init(cli.log_format, default);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let outcome = runtime.block_on(run(cli, &logging));
    // The last spans leave while the runtime still runs.
    logging.shutdown();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            err!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, logging: &cli::logging::Logging) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check {
            source,
            no_file_checks,
            live,
        } => Ok(cli::check::run(source.load()?, !no_file_checks, live).await),
        Command::Policy(command) => cli::policy::run(command).await,
        Command::Audit(command) => warden_audit::cli::run(command).await,
        Command::Witness(command) => cli::witness::run(command).await,
        Command::Tools(command) => cli::tools::run(command).await,
        Command::Admin(args) => cli::admin::run(args).await,
        Command::Sessions(SessionsCommand::Keygen) => {
            out!("{}", mcp_warden::config::SessionKeys::generate_line());
            Ok(ExitCode::SUCCESS)
        }
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token)?;
            let token = token.trim();
            anyhow::ensure!(!token.is_empty(), "no token on stdin");
            out!("{}", mcp_warden::authn::token_hash_hex(token));
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "mcp-warden", &mut out);
            out!("{}", String::from_utf8_lossy(&out).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(command).render(&mut out)?;
            out!("{}", String::from_utf8_lossy(&out).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoServer { http: None } => {
            mcp_warden::demo::run_stdio().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoServer { http: Some(addr) } => {
            use axum::serve::ListenerExt;
            // Answers go out in several small writes: without TCP_NODELAY each would wait
            // for the client's delayed ACK.
            let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, mcp_warden::demo::router()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            source,
            stdio,
            bind,
            admin_bind,
            no_watch,
        } => {
            // First of all: SIGHUP's default action would kill the proxy with no drain and no
            // stop record (terminals and supervisors send it freely). Once serving, it
            // reloads.
            let hangup = hold_hangup();
            let mut config = source.load()?;
            logging.apply(&config)?;
            let watch = (!no_watch)
                .then(|| source.path().map(|p| (p.to_owned(), config.clone())))
                .flatten();
            if let Some(bind) = bind {
                config.server.bind = bind;
            }
            if let Some(bind) = admin_bind {
                config.admin.bind = bind;
            }
            anyhow::ensure!(
                !config.auth.anonymous || config.server.bind.ip().is_loopback(),
                "auth.anonymous: only allowed when binding a loopback address, not {}",
                config.server.bind
            );
            if config.auth.resource.is_none()
                && let Err(message) = mcp_warden::config::resource_needed(config.server.bind)
            {
                anyhow::bail!("auth.resource: {message}");
            }
            anyhow::ensure!(
                config.admin.bind.ip().is_loopback() || config.admin.allow_remote,
                "admin.bind: must be a loopback address (its /metrics and /readyz are not authenticated), not {} (`[admin] allow_remote = true` allows it)",
                config.admin.bind
            );
            if !config.admin.bind.ip().is_loopback() {
                tracing::warn!(bind = %config.admin.bind, "the admin listener is off loopback (allow_remote): /metrics and /readyz answer whoever reaches it; the admin API still authenticates");
            }
            let admin_addr = config.admin.bind;
            let addr = config.server.bind;
            let path = config.server.path.clone();
            let tls = config.server.tls.is_some();
            let proxy = Proxy::from_config(config).await?;
            let handle = proxy.handle();
            handle.set_config_source(move || {
                let mut config = source.load().map_err(|e| format!("{e:#}"))?;
                // What the command line overrode stays overridden.
                if let Some(bind) = bind {
                    config.server.bind = bind;
                }
                if let Some(bind) = admin_bind {
                    config.admin.bind = bind;
                }
                Ok(config)
            });
            reload_on_hangup(hangup, handle.clone());
            if let Some((path, config)) = watch {
                cli::watch::spawn(handle.clone(), path, &config);
            }
            // Registered before the proxy says it listens: a SIGTERM right after that line
            // must drain, not kill.
            let terminate = Terminate::register();
            tokio::spawn({
                let handle = handle.clone();
                async move {
                    terminate.wait().await;
                    tracing::info!("shutting down");
                    handle.shutdown().await;
                }
            });
            if stdio {
                proxy.serve_stdio().await?;
            } else {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let admin = tokio::net::TcpListener::bind(admin_addr)
                    .await
                    .with_context(|| format!("cannot listen on {admin_addr} (admin.bind)"))?;
                let local = listener.local_addr()?;
                tracing::info!(
                    "admin (metrics, readiness) on http://{}",
                    admin.local_addr()?
                );
                let scheme = if tls { "https" } else { "http" };
                tracing::info!(
                    tools = handle.tool_names().len(),
                    "mcp-warden listening on {scheme}://{local}{path}"
                );
                proxy.serve_with_admin(listener, Some(admin)).await?;
            }
            handle.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SIGHUP is logged and otherwise ignored: the proxy keeps serving on the configuration it
/// started with (there is no reload yet). Never dies on it.
/// Takes SIGHUP from its default action (ending the process) at once; what it does is
/// decided once the proxy serves ([`reload_on_hangup`]).
#[cfg(unix)]
fn hold_hangup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot handle SIGHUP"))
        .ok()
}

#[cfg(not(unix))]
fn hold_hangup() -> Option<()> {
    None
}

/// SIGHUP reloads the configuration.
#[cfg(unix)]
fn reload_on_hangup(hangup: Option<tokio::signal::unix::Signal>, handle: mcp_warden::ProxyHandle) {
    let Some(mut hangup) = hangup else { return };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            handle.reload("signal").await;
        }
    });
}

#[cfg(not(unix))]
fn reload_on_hangup(_: Option<()>, _: mcp_warden::ProxyHandle) {}

/// SIGTERM (unix) or Ctrl-C: the signal to shut down gracefully.
struct Terminate {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Terminate {
    fn register() -> Terminate {
        Terminate {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some(mut term) = self.term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! `warden-audit`: the auditor's commands on their own — verify a log, show its records,
//! prove one and check the proof, disclose a committed argument, keys and pseudonyms —
//! built from this crate alone, without the proxy (the same commands as `mcp-warden
//! audit ...`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "warden-audit",
    version,
    about = "Check an mcp-warden audit log without the proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: warden_audit::cli::AuditCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            warden_audit::cli::output::error_line(format_args!("error: {e}"));
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(warden_audit::cli::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            warden_audit::cli::output::error_line(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

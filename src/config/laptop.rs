//! The audit log of a laptop when no configuration names one (the embedded default, an
//! `mcpServers` file): in the platform's state directory — `$XDG_STATE_HOME/mcp-warden`
//! (`~/.local/state/mcp-warden`) on Linux, `~/Library/Application Support/mcp-warden` on
//! macOS, `%LOCALAPPDATA%\mcp-warden` on Windows — never in the directory the proxy was
//! started from (a desktop client starts it in every project, or in `/`). The directory
//! holds signing keys: it is made readable by its owner alone. Each place the proxy is
//! started from, with each file it serves, has a log of its own there (one process owns a
//! log, and two projects' clients each start one), named by a digest of the two and
//! described in its `for.txt`.

use std::path::{Path, PathBuf};

use super::audit::AuditSection;

/// The state directory, made if need be (mode 0700 on Unix). Without a home directory (a
/// container with no `HOME`), `.mcp-warden` in the directory the proxy was started from,
/// said in the log.
pub fn state_home() -> std::io::Result<PathBuf> {
    let dir = match directories::ProjectDirs::from("", "", "mcp-warden") {
        Some(d) => d.state_dir().unwrap_or(d.data_local_dir()).to_path_buf(),
        None => {
            let dir = std::env::current_dir()?.join(".mcp-warden");
            tracing::warn!(dir = %dir.display(), "no home directory: the audit log is kept here");
            dir
        }
    };
    make_private(&dir)?;
    Ok(dir)
}

fn make_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The directory of the proxy started here serving `source` (a file's path, or what it
/// serves when there is none), made if need be.
pub fn instance_home(source: &str) -> std::io::Result<PathBuf> {
    use sha2::Digest;
    let home = state_home()?;
    let started_in = std::env::current_dir().unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{}\0{source}", started_in.display()));
    let dir = home.join(&crate::audit::record::hex(&digest)[..16]);
    make_private(&dir)?;
    std::fs::write(
        dir.join("for.txt"),
        format!("started in: {}\nserving: {source}\n", started_in.display()),
    )?;
    Ok(dir)
}

/// The `[audit]` section of a laptop: a local log under `home`.
pub fn audit_section(home: &Path) -> AuditSection {
    let store = url::Url::from_directory_path(home.join("audit-log"))
        .map(String::from)
        .unwrap_or_else(|()| format!("file://{}", home.join("audit-log").display()));
    AuditSection {
        origin: Some("mcp-warden.local/audit".to_owned()),
        store: Some(store),
        state_dir: Some(home.join("audit-state").display().to_string()),
        ..Default::default()
    }
}

//! `serve`'s file watch: an edit to the configuration file, a policy file (or a new
//! `.cedar` file beside them), the saved tool catalog or the `mcpServers` file served
//! reloads the proxy, once the edits have settled (editors write a file in several steps).
//! The watch is on the directories, so a file an editor replaces by renaming is still seen.
//!
//! A file reached through symlinks is watched under its real name too, and a change of
//! where its links lead counts as a change: a Kubernetes ConfigMap is updated by writing a
//! new directory, swapping the `..data` link to it and removing the old one, so the files
//! the proxy read never change in place. Where the links led is taken before each reload,
//! so a swap during a reload, or after a refused one, is not missed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_warden::{Config, ProxyHandle};
use notify::{RecursiveMode, Watcher};

/// Quiet time after the last change before reloading.
const SETTLE: Duration = Duration::from_millis(300);
/// However busy the files are, a reload happens this long after the first change.
const MAX_SETTLE: Duration = Duration::from_secs(3);

/// What to watch: the files a configuration was read from.
struct Watched {
    files: BTreeSet<PathBuf>,
    /// Directories holding policy files: a new `.cedar` file there counts too.
    policy_dirs: BTreeSet<PathBuf>,
    /// Each file as the configuration names it, and its real path when last looked at.
    targets: BTreeMap<PathBuf, Option<PathBuf>>,
}

impl Watched {
    fn of(source: &Path, config: &Config) -> Watched {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let mut files = BTreeSet::new();
        let mut targets = BTreeMap::new();
        // Symlinked files (a mounted configuration) are watched under their real names too.
        let mut add = |path: PathBuf| {
            let real = std::fs::canonicalize(&path).ok();
            files.extend(real.clone());
            files.insert(path.clone());
            targets.insert(path, real);
        };
        add(absolute(source));
        let mut policy_dirs = BTreeSet::new();
        let named = config
            .authz
            .policies
            .iter()
            .chain(config.authz.catalog.iter())
            .map(|p| PathBuf::from(&p.file))
            .filter(|p| p.is_file());
        for path in named {
            let path = absolute(&path);
            if path.extension().is_some_and(|e| e == "cedar")
                && let Some(dir) = path.parent()
            {
                policy_dirs.insert(dir.to_owned());
            }
            add(path);
        }
        Watched {
            files,
            policy_dirs,
            targets,
        }
    }

    /// Where each named file's links lead now.
    fn look(&self) -> BTreeMap<PathBuf, Option<PathBuf>> {
        let names = self.targets.keys();
        names
            .map(|n| (n.clone(), std::fs::canonicalize(n).ok()))
            .collect()
    }

    /// Takes `targets` (from [`Watched::look`]) as what was read, and watches the real
    /// files they lead to.
    fn settle_on(&mut self, targets: BTreeMap<PathBuf, Option<PathBuf>>) {
        for (name, real) in targets {
            self.files.extend(real.clone());
            if self.targets.contains_key(&name) {
                self.targets.insert(name, real);
            }
        }
    }

    /// Whether a named file's links now lead elsewhere than when last looked at.
    fn retargeted(&self) -> bool {
        self.look() != self.targets
    }

    fn dirs(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .chain(self.policy_dirs.iter().cloned())
            .collect()
    }

    fn wants(&self, path: &Path) -> bool {
        // A file reached through a symlink changes under its real name.
        let real = std::fs::canonicalize(path).ok();
        self.files.contains(path)
            || real.as_ref().is_some_and(|r| self.files.contains(r))
            || (path.extension().is_some_and(|e| e == "cedar")
                && path.parent().is_some_and(|d| self.policy_dirs.contains(d)))
            || self.retargeted()
    }
}

/// Watches what `config` was read from (`source`) and reloads `handle` on a change, until
/// the proxy stops. A watch that cannot be set up is a warning: SIGHUP and the admin API
/// still reload.
pub fn spawn(handle: ProxyHandle, source: PathBuf, config: &Config) {
    let mut watched = Watched::of(&source, config);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration files; reload with SIGHUP or the admin API");
            return;
        }
    };
    let mut dirs = BTreeSet::new();
    let mut watch_new = move |watcher: &mut notify::RecommendedWatcher, watched: &Watched| {
        // A directory removed (a ConfigMap's old version) took its watch with it.
        dirs.retain(|d: &PathBuf| d.is_dir());
        for dir in watched.dirs() {
            if !dirs.contains(&dir) {
                match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        dirs.insert(dir);
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a configuration directory")
                    }
                }
            }
        }
    };
    watch_new(&mut watcher, &watched);
    tracing::info!(
        files = watched.files.len(),
        "watching the configuration for changes"
    );
    tokio::spawn(async move {
        while let Some(path) = rx.recv().await {
            if handle.is_stopping() {
                break;
            }
            if !watched.wants(&path) {
                continue;
            }
            // Let the edit settle: a further change to a watched file restarts the wait
            // (other files in the same directories do not), for at most `MAX_SETTLE`.
            let deadline = tokio::time::Instant::now() + MAX_SETTLE;
            let mut quiet_until = tokio::time::Instant::now() + SETTLE;
            loop {
                match tokio::time::timeout_at(quiet_until.min(deadline), rx.recv()).await {
                    Ok(Some(more)) if watched.wants(&more) => {
                        quiet_until = tokio::time::Instant::now() + SETTLE;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            tracing::info!(file = %path.display(), "configuration changed on disk");
            // Where the links lead as the reload reads the files: a swap from here on is a
            // change still to come.
            let read = watched.look();
            let report = handle.reload("file").await;
            if report.outcome == mcp_warden::hub::reload::Outcome::Applied
                && let Ok(config) = Config::from_path(&source)
            {
                // New policy files or directories are watched from now on.
                watched = Watched::of(&source, &config);
            }
            // Applied or refused, the files now read are the ones to watch: a refused edit
            // is followed by its fix.
            watched.settle_on(read);
            watch_new(&mut watcher, &watched);
        }
    });
}

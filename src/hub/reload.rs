//! Reloading while serving. A reload reads the configuration again from where it came
//! from (the file `serve --config` named, the `mcpServers` file, or what the embedding
//! application hands over), validates it exactly as startup does, and swaps in what can
//! change without dropping a session: the policies and the saved tool catalog, built into a
//! new engine as startup builds one (`build_for_start`) against every tool known now. A call
//! decides on the engine it took at its start; the next call sees the new one. A bad edit
//! changes nothing: the running configuration keeps serving and the reason is in the log,
//! the `mcp_warden_reloads{outcome="refused"}` metric and the admin API's generation.
//! Sections that need a restart to take effect (backends, listeners, `[auth]`, `[audit]`,
//! limits, guards) are named in the report and the log, never half applied. Every reload
//! that changes the policies is a `policy` record in the audit log with the old and new
//! hashes and what triggered it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Hub, backends};
use crate::config::Config;
use crate::sync::Locked;

/// Where a reload reads the configuration from.
pub type Source = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// New policies or catalog are in force.
    Applied,
    /// Nothing that can change while serving changed.
    Unchanged,
    /// The new configuration is invalid: the running one keeps serving.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Refused => "refused",
        }
    }
}

/// One reload, as the admin API and `ProxyHandle::reload` report it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The generation in force afterwards.
    pub generation: u64,
    /// RFC 3339.
    pub at: String,
    /// `signal`, `file`, `admin:<principal>`, `library`.
    pub trigger: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Sections that changed but take effect only after a restart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
    /// The policy set in force afterwards.
    pub policy_hash: String,
    /// Backends added, removed or changed (restarted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<String>,
}

/// The configuration in force and how it got there.
pub struct Generations {
    source: std::sync::Mutex<Option<Source>>,
    /// One reload at a time.
    one: tokio::sync::Mutex<()>,
    state: std::sync::Mutex<State>,
}

struct State {
    number: u64,
    loaded_at: String,
    /// The configuration in force: what started, with every reload's policies.
    config: Arc<Config>,
    last: Option<ReloadReport>,
}

impl Generations {
    pub fn new(config: &Config) -> Generations {
        Generations {
            source: std::sync::Mutex::new(None),
            one: tokio::sync::Mutex::new(()),
            state: std::sync::Mutex::new(State {
                number: 1,
                loaded_at: now(),
                config: Arc::new(config.clone()),
                last: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }
}

/// The generation in force, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationInfo {
    pub number: u64,
    pub loaded_at: String,
    pub policy_hash: Option<String>,
    pub schema_hash: Option<String>,
    pub quarantined: Vec<String>,
    pub last_reload: Option<ReloadReport>,
}

fn now() -> String {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    crate::audit::show::rfc3339(us)
}

/// A digest of a configuration as the proxy understood it (every section prints as plain
/// data), for the record of a reload.
fn config_hash(config: &Config) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(format!("{config:?}").as_bytes()))
    )
}

/// The sections of `new` that differ from `old` and cannot change while serving.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    // Settings are compared as they print: every section derives `Debug` over plain data.
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut sections = Vec::new();
    for (name, changed) in [
        ("server", differs(&old.server, &new.server)),
        ("admin", differs(&old.admin, &new.admin)),
        ("auth", differs(&old.auth, &new.auth)),
        ("audit", differs(&old.audit, &new.audit)),
        ("limits", differs(&old.limits, &new.limits)),
        ("guards", differs(&old.guards, &new.guards)),
        ("tracing", differs(&old.tracing, &new.tracing)),
    ] {
        if changed {
            sections.push(name.to_owned());
        }
    }
    sections
}

impl Hub {
    /// Where [`Hub::reload`] reads the configuration from.
    pub fn set_config_source(&self, source: Source) {
        *self.generations.source.locked() = Some(source);
    }

    /// Reads the configuration again from its source and applies it.
    pub async fn reload(self: &Arc<Self>, trigger: &str) -> ReloadReport {
        let source = self.generations.source.locked().clone();
        let config = match source {
            Some(source) => {
                // Reading may block (files): off the async threads.
                tokio::task::spawn_blocking(move || source())
                    .await
                    .unwrap_or_else(|e| Err(format!("reading the configuration failed: {e}")))
            }
            None => Err("this proxy has no configuration source to read again".to_owned()),
        };
        self.reload_with(config, trigger).await
    }

    /// Applies `config` (already read) as a reload.
    pub async fn reload_with(
        self: &Arc<Self>,
        config: Result<Config, String>,
        trigger: &str,
    ) -> ReloadReport {
        self.reload_edit(|_| config, trigger).await
    }

    /// Adds a backend to the configuration in force (its name must be new), as a reload.
    pub async fn add_backend(
        self: &Arc<Self>,
        backend: crate::config::BackendSettings,
        trigger: &str,
    ) -> ReloadReport {
        let edit = |old: &Config| {
            let mut new = old.clone();
            new.backends.push(backend);
            crate::config::check_backends(&new.backends, &new.server.separator)
                .map_err(|e| e.to_string())?;
            Ok(new)
        };
        self.reload_edit(edit, trigger).await
    }

    /// Removes backend `name` from the configuration in force, as a reload.
    pub async fn remove_backend(self: &Arc<Self>, name: &str, trigger: &str) -> ReloadReport {
        let edit = |old: &Config| {
            let mut new = old.clone();
            new.backends.retain(|b| b.name != name);
            if new.backends.len() == old.backends.len() {
                return Err(format!("no backend `{name}` is configured"));
            }
            Ok(new)
        };
        self.reload_edit(edit, trigger).await
    }

    /// A reload to the configuration `edit` makes of the one in force.
    async fn reload_edit(
        self: &Arc<Self>,
        edit: impl FnOnce(&Config) -> Result<Config, String>,
        trigger: &str,
    ) -> ReloadReport {
        let _one = self.generations.one.lock().await;
        let old = self.generations.state().config.clone();
        let config = edit(&old);
        let old_hash = self.authz().map(|e| e.policy_set_hash().to_owned());
        let report =
            |outcome, error, restart_needed: Vec<String>, hash: Option<String>| ReloadReport {
                generation: self.generations.state().number,
                at: now(),
                trigger: trigger.to_owned(),
                outcome,
                error,
                restart_needed,
                policy_hash: hash.map(|h| format!("sha256:{h}")).unwrap_or_default(),
                backends: Vec::new(),
            };
        let new = match config {
            Ok(new) => new,
            Err(e) => return self.finish(report(Outcome::Refused, Some(e), Vec::new(), old_hash)),
        };
        let restart = restart_needed(&old, &new);
        let table = self.backends();
        let plan = backends::Plan::new(&table, &new.backends);
        let backends_change = plan.changes(&table);
        let same =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
        if !backends_change && same(&old.authz, &new.authz) && same(&old.tools, &new.tools) {
            return self.finish(report(Outcome::Unchanged, None, restart, old_hash));
        }
        // New backends start before anything changes: their tools are known to the policies
        // and callable the moment the new generation is in force.
        let new_table = match self.start_planned(&plan).await {
            Ok(table) => table,
            Err(e) => return self.finish(report(Outcome::Refused, Some(e), restart, old_hash)),
        };
        let started: Vec<_> = new_table
            .iter()
            .filter(|b| table.get(b.id).is_none())
            .cloned()
            .collect();
        let new_table = Arc::new(new_table);
        let live = backends_change.then(|| {
            let candidate = self.catalog_of(new_table.clone());
            let stays = |name: &str| {
                plan.order
                    .iter()
                    .any(|s| matches!(s, backends::Slot::Stays(b) if b.name() == name))
            };
            self.authz.live_with(&candidate, stays)
        });
        let pending = match self.authz.replace(&new, live) {
            Ok(replaced) => replaced,
            Err(errors) => {
                self.stop_unused(&started);
                return self.finish(report(
                    Outcome::Refused,
                    Some(super::authz::describe(&errors)),
                    restart,
                    old_hash,
                ));
            }
        };
        let new_hash = pending.engine.policy_set_hash().to_owned();
        let mut detail = BTreeMap::from([
            ("trigger".to_owned(), trigger.to_owned()),
            (
                "previous_policy_hash".to_owned(),
                old_hash
                    .as_ref()
                    .map(|h| format!("sha256:{h}"))
                    .unwrap_or_default(),
            ),
            ("previous_config_hash".to_owned(), config_hash(&old)),
            ("config_hash".to_owned(), config_hash(&new)),
        ]);
        if !restart.is_empty() {
            detail.insert("restart_needed".to_owned(), restart.join("; "));
        }
        if backends_change {
            detail.insert("backends".to_owned(), plan.describe().join("; "));
        }
        let kind = if old_hash.as_deref() == Some(new_hash.as_str()) {
            crate::audit::Kind::Config
        } else {
            crate::audit::Kind::Policy
        };
        // Recorded before it is in force: a configuration the log cannot account for never
        // serves a call.
        if let Err(e) = self
            .record_lifecycle_as(kind, detail, Some(&pending.engine))
            .await
        {
            self.stop_unused(&started);
            return self.finish(report(
                Outcome::Refused,
                Some(format!(
                    "the reload could not be recorded in the audit log: {e}"
                )),
                restart,
                old_hash,
            ));
        }
        // The new engine and (when they changed) the new backends, in force together.
        self.install(pending, backends_change.then_some(new_table));
        if backends_change {
            self.retire(plan.leaving.clone());
        }
        {
            let mut state = self.generations.state();
            let mut running = Config::clone(&state.config);
            running.authz = new.authz.clone();
            running.backends = new.backends.clone();
            running.tools = new.tools.clone();
            state.config = Arc::new(running);
            state.number += 1;
            state.loaded_at = now();
        }
        // What each principal may see may have changed.
        self.announce_all_lists().await;
        self.record_integrity().await;
        let mut done = report(Outcome::Applied, None, restart, Some(new_hash));
        done.backends = plan.describe();
        self.finish(done)
    }

    fn finish(&self, report: ReloadReport) -> ReloadReport {
        self.metrics
            .reloads
            .get_or_create(&crate::telemetry::ReloadLabels {
                outcome: report.outcome.as_str(),
            })
            .inc();
        match report.outcome {
            Outcome::Refused => tracing::error!(
                trigger = %report.trigger,
                error = report.error.as_deref().unwrap_or(""),
                "reload refused: still serving generation {}",
                report.generation
            ),
            outcome => tracing::info!(
                trigger = %report.trigger,
                generation = report.generation,
                policy_hash = %report.policy_hash,
                "reload {}",
                outcome.as_str()
            ),
        }
        if !report.restart_needed.is_empty() {
            tracing::warn!(sections = %report.restart_needed.join("; "), "changed in the configuration, in force only after a restart");
        }
        self.generations.state().last = Some(report.clone());
        report
    }

    /// The generation in force.
    pub fn generation(&self) -> GenerationInfo {
        let engine = self.authz();
        let state = self.generations.state();
        GenerationInfo {
            number: state.number,
            loaded_at: state.loaded_at.clone(),
            policy_hash: engine
                .as_ref()
                .map(|e| format!("sha256:{}", e.policy_set_hash())),
            schema_hash: engine
                .as_ref()
                .map(|e| format!("sha256:{}", e.schema_hash())),
            quarantined: engine
                .map(|e| e.quarantined().iter().map(|(t, _)| t.clone()).collect())
                .unwrap_or_default(),
            last_reload: state.last.clone(),
        }
    }
}

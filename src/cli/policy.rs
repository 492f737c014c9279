//! `mcp-warden policy validate|test|explain|schema`: the compliance team's tools. They work
//! offline from a policy directory and a saved tool catalog (`mcp-warden tools export`
//! writes one), or from a configuration file (its `[authz]` policies and catalog, its
//! `[auth]` attributes; `--live` reads the tool lists from the backends instead). Without
//! any catalog they refuse rather than check against zero tools.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mcp_warden::{
    authn::Principal,
    authz::{AttributeDecl, BuildMode, Engine, PolicySource, TableFile, ToolInfo, parse_catalog},
    config::Config,
    hub::{attribute_decls, policy_sources},
};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate the policies strictly against the base schema and the tools' generated schema
    Validate(PolicySet),
    /// Run the decision tables (`<policies>/tests/*.toml` unless `--tables`)
    Test {
        #[command(flatten)]
        set: PolicySet,
        #[arg(long)]
        tables: Option<PathBuf>,
        /// Also report the policies no case exercised (decided, or satisfied as a shadow);
        /// any such policy fails the run
        #[arg(long)]
        coverage: bool,
    },
    /// Decide one request and say why (any operation: a tool call, a list, a resource
    /// read, an admin action, ...)
    Explain(Box<super::explain::ExplainArgs>),
    /// Format policy files with Cedar's formatter (in place, or `--check`: exit 1 when a
    /// file would change)
    Format {
        /// `.cedar` files, or directories of them
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted
        #[arg(long)]
        check: bool,
    },
    /// Print the full generated Cedar schema
    Schema(PolicySet),
    /// Decide every request of a verified audit log again under these policies and report
    /// each decision that would change: exit 0 none, 1 some, 2 some undetermined, 3 the log
    /// does not verify
    Replay(Box<super::replay::ReplayArgs>),
}

#[derive(Args)]
pub struct PolicySet {
    /// A proxy configuration: its `[authz]` policies and catalog and `[auth]` attributes
    #[arg(long, conflicts_with = "policies")]
    config: Option<PathBuf>,
    /// A directory of `.cedar` files
    #[arg(long)]
    policies: Option<PathBuf>,
    /// A saved tool catalog (JSON); default `<policies>/tools.json` when it exists
    #[arg(long)]
    tools: Option<PathBuf>,
    /// Read the tools from the configuration's backends, started for the purpose
    #[arg(long, requires = "config")]
    live: bool,
}

pub(crate) struct Loaded {
    policies: Vec<PolicySource>,
    tools: Vec<ToolInfo>,
    attributes: Vec<AttributeDecl>,
    pub(crate) config: Option<Config>,
    dir: Option<PathBuf>,
}

impl PolicySet {
    pub(crate) async fn load(&self) -> anyhow::Result<Loaded> {
        if let Some(path) = &self.config {
            let config = Config::from_path(path)?;
            let (policies, attributes) = (policy_sources(&config), attribute_decls(&config));
            let tools = if self.live {
                live_tools(&config).await?
            } else if let Some(path) = &self.tools {
                catalog(path)?
            } else if let Some(catalog) = &config.authz.catalog {
                mcp_warden::hub::saved_tools(&config, &catalog.text)
                    .with_context(|| catalog.file.clone())?
            } else if config.backends.is_empty() {
                Vec::new()
            } else {
                bail!(
                    "no tool catalog: checked against zero tools, every policy that names a tool would fail.\n\
                     Export the backends' tools once, then work offline:\n  \
                     mcp-warden tools export --config {0} --out tools.json\n  \
                     mcp-warden policy validate --config {0} --tools tools.json\n\
                     (or set `[authz] tools = \"tools.json\"`; `--live` reads them from the backends each time)",
                    path.display()
                )
            };
            return Ok(Loaded {
                policies,
                tools,
                attributes,
                config: Some(config),
                dir: None,
            });
        }
        let Some(dir) = &self.policies else {
            bail!("give `--policies DIR` or `--config FILE`")
        };
        let policies = files_with_extension(dir, "cedar")?
            .into_iter()
            .map(|(file, text)| PolicySource { file, text })
            .collect();
        let default_catalog = dir.join("tools.json");
        let tools = match (&self.tools, default_catalog.exists()) {
            (Some(path), _) => catalog(path)?,
            (None, true) => catalog(&default_catalog)?,
            (None, false) => bail!(
                "no tool catalog: give `--tools FILE` or put `tools.json` in {} (checked against zero tools, every policy that names a tool would fail); export one with `mcp-warden tools export --config FILE --out {}`",
                dir.display(),
                default_catalog.display()
            ),
        };
        Ok(Loaded {
            policies,
            tools,
            attributes: Vec::new(),
            config: None,
            dir: Some(dir.clone()),
        })
    }
}

/// Every `*.<extension>` file of a directory, in name order: (path, text).
fn files_with_extension(
    dir: &std::path::Path,
    extension: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            Ok((
                p.display().to_string(),
                std::fs::read_to_string(p).with_context(|| p.display().to_string())?,
            ))
        })
        .collect()
}

fn catalog(path: &PathBuf) -> anyhow::Result<Vec<ToolInfo>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    parse_catalog(&text).with_context(|| path.display().to_string())
}

/// The tools the configured backends serve now.
async fn live_tools(config: &Config) -> anyhow::Result<Vec<ToolInfo>> {
    super::tools::with_backends(config.clone(), |handle| handle.tool_infos()).await
}

pub(crate) fn build(loaded: &Loaded) -> Result<Engine, ExitCode> {
    Engine::build(
        &loaded.policies,
        &loaded.tools,
        &loaded.attributes,
        BuildMode::Strict,
    )
    .map_err(|errors| {
        for e in &errors {
            err!("{e}");
        }
        err!("{} error(s)", errors.len());
        ExitCode::FAILURE
    })
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Replay(args) => super::replay::run(*args).await,
        PolicyCommand::Validate(set) => {
            let loaded = set.load().await?;
            let engine = match build(&loaded) {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            for (arg, why) in engine.untyped() {
                out!("note: `{arg}` has no Cedar type ({why}); policies cannot use it");
            }
            out!(
                "{} policies valid against {} tools",
                engine.policy_count(),
                loaded.tools.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Schema(set) => {
            let loaded = set.load().await?;
            match build(&loaded) {
                Ok(engine) => {
                    out!("{}", engine.schema_text());
                    Ok(ExitCode::SUCCESS)
                }
                Err(code) => Ok(code),
            }
        }
        PolicyCommand::Test {
            set,
            tables,
            coverage,
        } => {
            let loaded = set.load().await?;
            let engine = match build(&loaded) {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let dir = tables
                .or_else(|| loaded.dir.as_ref().map(|d| d.join("tests")))
                .context("give `--tables DIR`")?;
            let files: Vec<_> = files_with_extension(&dir, "toml")?
                .into_iter()
                .map(|(file, text)| TableFile { file, text })
                .collect();
            if files.is_empty() {
                bail!("no decision tables in `{}`", dir.display());
            }
            let report = mcp_warden::authz::run_tables(&engine, &files);
            out!("{report}");
            let covered = if coverage {
                let coverage = report.coverage(&engine);
                out!("{coverage}");
                coverage.missed.is_empty()
            } else {
                true
            };
            Ok(if report.failed() == 0 && covered {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Explain(args) => super::explain::run(*args).await,
        PolicyCommand::Format { paths, check } => format(&paths, check),
    }
}

pub(crate) fn parse_principal(json: &str) -> anyhow::Result<Principal> {
    #[derive(serde::Deserialize)]
    struct Given {
        id: String,
        #[serde(default = "user")]
        kind: mcp_warden::authn::PrincipalKind,
        #[serde(default)]
        roles: Vec<String>,
        tenant: Option<String>,
        /// The issuer's `principal_prefix` (`id` already carries it).
        namespace: Option<String>,
        #[serde(default)]
        attributes: std::collections::BTreeMap<String, mcp_warden::authn::AttrValue>,
    }
    fn user() -> mcp_warden::authn::PrincipalKind {
        mcp_warden::authn::PrincipalKind::User
    }
    let g: Given = serde_json::from_str(json)
        .context("`--principal` must be JSON like {\"id\": \"alice\", \"roles\": [\"trader\"]}")?;
    Ok(Principal {
        id: g.id,
        kind: g.kind,
        roles: g.roles,
        tenant: g.tenant,
        issuer: None,
        namespace: g.namespace,
        attributes: g.attributes,
    })
}

/// `policy format`: each file formatted in place, or listed (`--check`); a file that does
/// not parse is reported like `policy validate` reports it.
fn format(paths: &[PathBuf], check: bool) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(files_with_extension(path, "cedar")?);
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    let (mut unformatted, mut broken) = (0, 0);
    for (file, text) in files {
        let source = PolicySource { file, text };
        match mcp_warden::authz::format_policies(&source) {
            Ok(pretty) if pretty == source.text => {}
            Ok(_) if check => {
                unformatted += 1;
                out!("{}: not formatted", source.file);
            }
            Ok(pretty) => {
                mcp_warden::files::replace(std::path::Path::new(&source.file), pretty.as_bytes())
                    .with_context(|| format!("cannot write `{}`", source.file))?;
                out!("{}: formatted", source.file);
            }
            Err(errors) => {
                broken += errors.len();
                for e in &errors {
                    err!("{e}");
                }
            }
        }
    }
    if broken > 0 {
        err!("{broken} error(s)");
    }
    Ok(if broken > 0 || unformatted > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

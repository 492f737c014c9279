//! A saved tool catalog (`tools.json`): what `mcp-warden policy test` and `policy validate`
//! check policies against without starting any backend. The format is a JSON array of MCP
//! tool objects with their backend: `{name, backend, inputSchema, annotations}`; other MCP
//! fields (`description`, `outputSchema`, ...) may be present and are ignored.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::types::{Hints, ToolInfo};

/// Why a catalog file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the tool catalog is not valid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tool `{0}`: `inputSchema` must be an object")]
    InputSchema(String),
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    backend: String,
    #[serde(rename = "inputSchema", default)]
    input_schema: Option<Value>,
    #[serde(default)]
    annotations: Annotations,
    /// The `[tools.groups]` it is in, for policy sets checked offline (a configuration's
    /// own groups apply when the policy commands are given `--config`).
    #[serde(default)]
    groups: Vec<String>,
    /// The tenants its backend belongs to (empty: shared), for policy sets checked
    /// offline (a configuration's own backends' `tenants` apply with `--config`).
    #[serde(default)]
    tenants: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Annotations {
    read_only_hint: Option<bool>,
    destructive_hint: Option<bool>,
    idempotent_hint: Option<bool>,
    open_world_hint: Option<bool>,
}

/// Parses a saved catalog into the engine's tool list.
pub fn parse_catalog(text: &str) -> Result<Vec<ToolInfo>, CatalogError> {
    let entries: Vec<Entry> = serde_json::from_str(text)?;
    entries
        .into_iter()
        .map(|e| {
            let input_schema = match e.input_schema {
                None => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err(CatalogError::InputSchema(e.name)),
            };
            Ok(ToolInfo {
                exposed: e.name,
                backend: e.backend,
                input_schema,
                hints: Hints {
                    read_only: e.annotations.read_only_hint,
                    destructive: e.annotations.destructive_hint,
                    idempotent: e.annotations.idempotent_hint,
                    open_world: e.annotations.open_world_hint,
                },
                refuse_undeclared: false,
                definition: None,
                groups: e.groups,
                tenants: e.tenants,
                held: None,
            })
        })
        .collect()
}

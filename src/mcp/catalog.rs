//! The catalog: the ONE place that maps a backend's own names to the names clients see
//! (namespaces, aliases, expose/hide filters) and back. `tools/list` and `tools/call` (and
//! the prompt and resource equivalents) both go through it, so a name that is not listed
//! cannot be called, and a hidden name reads exactly like an unknown one.
//!
//! A catalog is an immutable snapshot rebuilt whenever a backend comes up, goes down or
//! announces `list_changed`; readers hold an `Arc` to the snapshot they started with.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool, ToolAnnotations};

use crate::backend::{Backend, Table};
use crate::config::BackendSettings;

/// What one backend currently offers, as it reported it.
#[derive(Debug, Default, Clone)]
pub struct BackendLists {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
}

/// An exposed item: which backend serves it, under which of its own names.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub backend: usize,
    pub original: String,
    pub item: T,
}

/// Where an exposed name or URI leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub backend: usize,
    pub name: String,
}

/// An item left out while building, and why: a name in another backend's namespace or
/// taken by an alias (decided by configuration alone, whichever backends are up), a name
/// the same backend lists twice, or one too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub kind: &'static str,
    pub exposed: String,
    pub backend: String,
    pub reason: &'static str,
}

/// The names configuration reserves, whichever backends are up: every configured
/// namespace's prefix (`pay__`, and `pay+` for URIs) and every alias.
#[derive(Default)]
struct Reserved {
    /// `<namespace><separator>` of every prefixed backend.
    names: Vec<String>,
    /// `<namespace>+` of every prefixed backend.
    uris: Vec<String>,
    /// Alias -> (backend, the backend's own tool name).
    aliases: BTreeMap<String, (usize, String)>,
}

impl Reserved {
    fn new(sources: &[(usize, &BackendSettings, Option<&BackendLists>)], separator: &str) -> Self {
        let mut reserved = Reserved::default();
        for &(i, b, _) in sources {
            if !b.namespace.is_empty() {
                reserved.names.push(format!("{}{separator}", b.namespace));
                reserved.uris.push(format!("{}+", b.namespace));
            }
            for (from, to) in &b.aliases {
                reserved.aliases.insert(to.clone(), (i, from.clone()));
            }
        }
        reserved
    }

    /// Why an unprefixed backend may not expose `name` (its own, unaliased name), if so.
    fn name(&self, backend: usize, name: &str, tool: bool) -> Option<&'static str> {
        if self.names.iter().any(|p| name.starts_with(p.as_str())) {
            return Some("in the namespace of another backend");
        }
        match self.aliases.get(name) {
            Some((b, from)) if tool && (*b != backend || from != name) => {
                Some("an alias of another tool")
            }
            _ => None,
        }
    }

    /// Why an unprefixed backend may not expose `uri`, if so.
    fn uri(&self, uri: &str) -> Option<&'static str> {
        self.uris
            .iter()
            .any(|p| uri.starts_with(p.as_str()))
            .then_some("in the namespace of another backend")
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    tools: BTreeMap<String, Entry<Tool>>,
    prompts: BTreeMap<String, Entry<Prompt>>,
    resources: BTreeMap<String, Entry<Resource>>,
    templates: BTreeMap<String, Entry<ResourceTemplate>>,
    /// Namespace -> backend index, for prefixed backends.
    namespaces: BTreeMap<String, usize>,
    /// Backends exposed without a namespace, in config order.
    unprefixed: Vec<usize>,
    separator: String,
    pub collisions: Vec<Collision>,
    /// The backends it was built from: a call resolves its backend here, in the snapshot
    /// it took at its start.
    backends: Arc<Table>,
}

/// One page of a list and the cursor of the next, if any.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A cursor that this catalog did not issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCursor;

impl Catalog {
    /// Builds the exposed view of `backends` (ids are positions; the backends are built
    /// but never started). `lists[i]` is `None` while backend `i` is down: its items drop
    /// out until it is back.
    pub fn build(
        backends: &[BackendSettings],
        lists: &[Option<BackendLists>],
        separator: &str,
    ) -> Self {
        let table = Arc::new(Table::detached(backends));
        let lists = lists
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((i, l.clone()?)))
            .collect();
        Catalog::of(table, &lists, separator)
    }

    /// The catalog of the backends in `table` (configuration order), each with what it
    /// listed (`lists` by backend id; absent while it is down).
    pub fn of(
        table: Arc<Table>,
        lists: &std::collections::HashMap<usize, BackendLists>,
        separator: &str,
    ) -> Self {
        let sources: Vec<_> = table
            .iter()
            .map(|b| (b.id, &b.settings, lists.get(&b.id)))
            .collect();
        let mut catalog = Catalog::from_sources(&sources, separator);
        catalog.backends = table;
        catalog
    }

    fn from_sources(
        sources: &[(usize, &BackendSettings, Option<&BackendLists>)],
        separator: &str,
    ) -> Self {
        let mut catalog = Catalog {
            separator: separator.to_owned(),
            ..Default::default()
        };
        for &(i, b, _) in sources {
            if b.namespace.is_empty() {
                catalog.unprefixed.push(i);
            } else {
                catalog.namespaces.insert(b.namespace.clone(), i);
            }
        }
        // What may be exposed is decided by configuration, never by which backends are up:
        // an unprefixed backend's `pay__transfer` is never served as `pay`'s, even while
        // `pay` is down.
        let reserved = Reserved::new(sources, separator);
        let mut refused = Vec::new();
        for &(i, b, lists) in sources {
            let Some(lists) = lists else { continue };
            let unprefixed = b.namespace.is_empty();
            let mut left_out = |kind, exposed: &str, reason: Option<&'static str>| match reason {
                Some(reason) if unprefixed => {
                    refused.push((kind, exposed.to_owned(), b.name.clone(), reason));
                    true
                }
                _ => false,
            };
            for tool in &lists.tools {
                if !b.filter.allows(&tool.name) {
                    continue;
                }
                let exposed = match b.aliases.get(tool.name.as_ref()) {
                    Some(alias) => alias.clone(),
                    None if left_out("tool", &tool.name, reserved.name(i, &tool.name, true)) => {
                        continue;
                    }
                    None => prefixed(&b.namespace, separator, &tool.name),
                };
                let mut item = tool.clone();
                item.name = exposed.clone().into();
                item.annotations = vetted_annotations(item.annotations.take(), b, &tool.name);
                insert(
                    &mut catalog.tools,
                    &mut catalog.collisions,
                    "tool",
                    exposed,
                    b,
                    Entry {
                        backend: i,
                        original: tool.name.to_string(),
                        item,
                    },
                );
            }
            for prompt in &lists.prompts {
                if !b.filter.allows(&prompt.name)
                    || left_out(
                        "prompt",
                        &prompt.name,
                        reserved.name(i, &prompt.name, false),
                    )
                {
                    continue;
                }
                let exposed = prefixed(&b.namespace, separator, &prompt.name);
                let mut item = prompt.clone();
                item.name = exposed.clone();
                insert(
                    &mut catalog.prompts,
                    &mut catalog.collisions,
                    "prompt",
                    exposed,
                    b,
                    Entry {
                        backend: i,
                        original: prompt.name.clone(),
                        item,
                    },
                );
            }
            for resource in &lists.resources {
                if left_out("resource", &resource.uri, reserved.uri(&resource.uri)) {
                    continue;
                }
                let exposed = expose_uri(&b.namespace, &resource.uri);
                let mut item = resource.clone();
                item.uri = exposed.clone();
                insert(
                    &mut catalog.resources,
                    &mut catalog.collisions,
                    "resource",
                    exposed,
                    b,
                    Entry {
                        backend: i,
                        original: resource.uri.clone(),
                        item,
                    },
                );
            }
            for template in &lists.templates {
                if left_out(
                    "resource template",
                    &template.uri_template,
                    reserved.uri(&template.uri_template),
                ) {
                    continue;
                }
                let exposed = expose_uri(&b.namespace, &template.uri_template);
                let mut item = template.clone();
                item.uri_template = exposed.clone();
                insert(
                    &mut catalog.templates,
                    &mut catalog.collisions,
                    "resource template",
                    exposed,
                    b,
                    Entry {
                        backend: i,
                        original: template.uri_template.clone(),
                        item,
                    },
                );
            }
        }
        for (kind, exposed, backend, reason) in refused {
            catalog.collisions.push(Collision {
                kind,
                exposed,
                backend,
                reason,
            });
        }
        catalog
    }

    /// Backend `id` of the table this catalog was built from.
    pub fn backend(&self, id: usize) -> Option<&Arc<Backend>> {
        self.backends.get(id)
    }

    /// The name of backend `id` (empty when it is not in this catalog's table).
    pub fn backend_name(&self, id: usize) -> &str {
        self.backend(id).map_or("", |b| b.name())
    }

    /// The backends this catalog was built from, in configuration order.
    pub fn backends(&self) -> &Arc<Table> {
        &self.backends
    }

    pub fn tool(&self, exposed: &str) -> Option<&Entry<Tool>> {
        self.tools.get(exposed)
    }

    pub fn prompt(&self, exposed: &str) -> Option<&Entry<Prompt>> {
        self.prompts.get(exposed)
    }

    pub fn tools(&self) -> impl Iterator<Item = &Entry<Tool>> {
        self.tools.values()
    }

    pub fn tools_page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&Entry<Tool>) -> bool,
    ) -> Result<Page<Tool>, BadCursor> {
        page(&self.tools, cursor, size, visible)
    }

    pub fn prompts_page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&Entry<Prompt>) -> bool,
    ) -> Result<Page<Prompt>, BadCursor> {
        page(&self.prompts, cursor, size, visible)
    }

    pub fn resources_page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&Entry<Resource>) -> bool,
    ) -> Result<Page<Resource>, BadCursor> {
        page(&self.resources, cursor, size, visible)
    }

    pub fn templates_page(
        &self,
        cursor: Option<&str>,
        size: usize,
        visible: impl Fn(&Entry<ResourceTemplate>) -> bool,
    ) -> Result<Page<ResourceTemplate>, BadCursor> {
        page(&self.templates, cursor, size, visible)
    }

    /// Where a resource URI (or URI template) a client sent leads. A URI of a prefixed
    /// backend reads `<namespace>+<backend's uri>`; any other URI belongs to an unprefixed
    /// backend (the one listing it, else the first).
    pub fn resolve_uri(&self, exposed: &str) -> Option<Target> {
        if let Some(entry) = self.resources.get(exposed) {
            return Some(Target {
                backend: entry.backend,
                name: entry.original.clone(),
            });
        }
        if let Some(entry) = self.templates.get(exposed) {
            return Some(Target {
                backend: entry.backend,
                name: entry.original.clone(),
            });
        }
        if let Some((ns, rest)) = exposed.split_once('+')
            && let Some(&backend) = self.namespaces.get(ns)
        {
            // In a namespace: that backend's, or nothing (never the unprefixed backend's).
            return (!rest.is_empty()).then(|| Target {
                backend,
                name: rest.to_owned(),
            });
        }
        self.unprefixed.first().map(|&backend| Target {
            backend,
            name: exposed.to_owned(),
        })
    }

    /// The URI a client sees for backend `backend`'s `uri`.
    pub fn expose_uri(&self, backend: usize, uri: &str) -> String {
        match self.namespaces.iter().find(|(_, b)| **b == backend) {
            Some((ns, _)) => expose_uri(ns, uri),
            None => uri.to_owned(),
        }
    }

    /// The exposed name of backend `backend`'s prompt (for completion references).
    pub fn resolve_prompt(&self, exposed: &str) -> Option<Target> {
        self.prompts.get(exposed).map(|e| Target {
            backend: e.backend,
            name: e.original.clone(),
        })
    }

    pub fn separator(&self) -> &str {
        &self.separator
    }
}

/// The annotations clients see are the ones policies see: a backend's hints only where the
/// operator trusts that backend, the operator's own per tool (a client may auto-approve a
/// tool it believes read-only, so a backend's unconfirmed claim is not passed on).
fn vetted_annotations(
    claimed: Option<ToolAnnotations>,
    backend: &BackendSettings,
    original: &str,
) -> Option<ToolAnnotations> {
    let mut a = claimed.unwrap_or_default();
    let hints = crate::hub::vetted(
        crate::authz::Hints {
            read_only: a.read_only_hint,
            destructive: a.destructive_hint,
            idempotent: a.idempotent_hint,
            open_world: a.open_world_hint,
        },
        backend,
        original,
    );
    a.read_only_hint = hints.read_only;
    a.destructive_hint = hints.destructive;
    a.idempotent_hint = hints.idempotent;
    a.open_world_hint = hints.open_world;
    (a != ToolAnnotations::default()).then_some(a)
}

fn prefixed(namespace: &str, separator: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}{separator}{name}")
    }
}

fn expose_uri(namespace: &str, uri: &str) -> String {
    if namespace.is_empty() {
        uri.to_owned()
    } else {
        format!("{namespace}+{uri}")
    }
}

fn insert<T>(
    map: &mut BTreeMap<String, Entry<T>>,
    collisions: &mut Vec<Collision>,
    kind: &'static str,
    exposed: String,
    backend: &BackendSettings,
    entry: Entry<T>,
) {
    use std::collections::btree_map::Entry as Slot;
    let too_long = kind == "tool" && exposed.len() > crate::config::MAX_NAME_LEN;
    let reason = if exposed.is_empty() || too_long {
        "empty or too long"
    } else {
        match map.entry(exposed.clone()) {
            Slot::Vacant(slot) => {
                slot.insert(entry);
                return;
            }
            // Configuration rules out collisions between backends (namespaces that cannot
            // overlap, at most one unprefixed backend, reserved names above): this is one
            // backend listing a name twice.
            Slot::Occupied(_) => "listed twice",
        }
    };
    collisions.push(Collision {
        kind,
        exposed,
        backend: backend.name.clone(),
        reason,
    });
}

/// Cursors name the last key of the previous page, so a page boundary stays correct when
/// a backend's items appear or disappear between pages: nothing is repeated, and nothing
/// that existed during the whole walk is skipped.
fn page<T: Clone>(
    map: &BTreeMap<String, Entry<T>>,
    cursor: Option<&str>,
    size: usize,
    visible: impl Fn(&Entry<T>) -> bool,
) -> Result<Page<T>, BadCursor> {
    use std::ops::Bound;
    let after = match cursor {
        None => None,
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| BadCursor)?;
            let key = String::from_utf8(bytes).map_err(|_| BadCursor)?;
            Some(key.strip_prefix("after:").ok_or(BadCursor)?.to_owned())
        }
    };
    let range = match &after {
        Some(key) => map.range::<String, _>((Bound::Excluded(key), Bound::Unbounded)),
        None => map.range::<String, _>(..),
    };
    let mut items = Vec::with_capacity(size.min(map.len()));
    let mut last = None;
    let mut more = false;
    for (key, entry) in range.filter(|(_, e)| visible(e)) {
        if items.len() == size {
            more = true;
            break;
        }
        items.push(entry.item.clone());
        last = Some(key);
    }
    let next_cursor = match (more, last) {
        (true, Some(key)) => Some(URL_SAFE_NO_PAD.encode(format!("after:{key}"))),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

#[cfg(test)]
mod tests;

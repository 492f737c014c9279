//! Stand-ins for the tools a policy set names when no catalog says what they are (`check`
//! without `authz.tools`): each named tool becomes a tool with no declared arguments, and
//! each backend (configured, or named as a `backend:<name>` group) gets one such tool of
//! its own, so that the tool entity types exist and validation can still judge
//! everything that does not depend on the real tools. What does depend on them (a condition
//! on an argument) fails on the stand-in and is quarantined, as at startup with a backend
//! down; the rest fails as it would against any tools.

use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::{ActionConstraint, PolicySet};

use super::build::BUILTIN_ACTIONS;
use super::schema::{BACKEND_GROUP_PREFIX, GROUPS};
use super::types::{Hints, PolicySource, ToolInfo};

/// Stand-in tools for the actions `policies` name that are neither built-in actions nor
/// groups, and one for each of `backends`; `backend_of` says which backend an exposed name
/// would belong to.
pub fn placeholder_tools(
    policies: &[PolicySource],
    backends: &[String],
    backend_of: impl Fn(&str) -> String,
) -> Vec<ToolInfo> {
    let mut names = BTreeSet::new();
    for source in policies {
        // A source that does not parse is reported by the build itself.
        let Ok(set) = PolicySet::from_str(&source.text) else {
            continue;
        };
        for policy in set.policies() {
            let uids = match policy.action_constraint() {
                ActionConstraint::Eq(uid) => vec![uid],
                ActionConstraint::In(uids) => uids,
                _ => Vec::new(),
            };
            names.extend(uids.into_iter().map(|uid| uid.id().unescaped().to_owned()));
        }
    }
    let mut owners: BTreeSet<String> = backends.iter().cloned().collect();
    let mut tools = Vec::new();
    for name in names {
        if GROUPS.contains(&name.as_str()) || BUILTIN_ACTIONS.iter().any(|(b, _)| *b == name) {
            continue;
        }
        match name.strip_prefix(BACKEND_GROUP_PREFIX) {
            Some(backend) => {
                owners.insert(backend.to_owned());
            }
            None => {
                let backend = backend_of(&name);
                tools.push(stand_in(name, backend));
            }
        }
    }
    tools.extend(
        owners
            .into_iter()
            .map(|backend| stand_in(format!("{backend}:(any tool)"), backend)),
    );
    tools
}

fn stand_in(exposed: String, backend: String) -> ToolInfo {
    ToolInfo {
        exposed,
        backend,
        input_schema: serde_json::Map::new(),
        hints: Hints::default(),
        refuse_undeclared: false,
        definition: None,
        groups: Vec::new(),
        tenants: Vec::new(),
        held: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_tools_and_every_backend_get_a_stand_in() {
        let policies = [PolicySource {
            file: "p.cedar".into(),
            text: r#"permit(principal, action == Mcp::Action::"s__slow", resource);
                permit(principal, action in [Mcp::Action::"read", Mcp::Action::"backend:db",
                    Mcp::Action::"say"], resource);"#
                .into(),
        }];
        let tools = placeholder_tools(&policies, &["s".into(), "web".into()], |name| {
            if name.starts_with("s__") { "s" } else { "web" }.to_owned()
        });
        let got: Vec<(&str, &str)> = tools
            .iter()
            .map(|t| (t.exposed.as_str(), t.backend.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("s__slow", "s"),
                ("say", "web"),
                ("db:(any tool)", "db"),
                ("s:(any tool)", "s"),
                ("web:(any tool)", "web"),
            ]
        );
        assert!(tools.iter().all(|t| t.input_schema.is_empty()));
    }
}

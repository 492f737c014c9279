use serde_json::json;

use super::super::testkit::{call, engine, facts, principal, with_attr};
use super::super::{Effect, Engine, Operation};
use crate::authn::principal::AttrValue;

const TRADING: &str = r#"
@id("trade-limit")
permit(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount < 500 };

@id("no-big-trades")
forbid(principal, action == Mcp::Action::"trading__execute_trade", resource)
  when { context.arguments.amount > 1000 };

@id("traders-all")
permit(principal in Mcp::Role::"bulk", action == Mcp::Action::"trading__execute_trade", resource);
"#;

#[test]
fn permit_below_the_limit_names_its_policy() {
    let e = engine(TRADING);
    let d = call(
        &e,
        &principal("alice", &["trader"]),
        "trading__execute_trade",
        json!({"amount": 400, "symbol": "ACME"}),
    );
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.determining, vec!["trade-limit"]);
    assert_eq!(d.reason, "allowed by policy `trade-limit`");
    assert!(d.errors.is_empty());
}

#[test]
fn nothing_permits_means_deny_by_default() {
    let e = engine(TRADING);
    let d = call(
        &e,
        &principal("alice", &["trader"]),
        "trading__execute_trade",
        json!({"amount": 700, "symbol": "ACME"}),
    );
    assert!(!d.allowed);
    assert!(d.determining.is_empty());
    assert_eq!(d.reason, "no policy permits this request");
}

#[test]
fn forbid_wins_over_permit() {
    let e = engine(TRADING);
    let d = call(
        &e,
        &principal("bob", &["bulk"]),
        "trading__execute_trade",
        json!({"amount": 5000, "symbol": "ACME"}),
    );
    assert!(!d.allowed);
    assert_eq!(d.determining, vec!["no-big-trades"]);
    assert_eq!(d.reason, "denied by policy `no-big-trades`");
}

#[test]
fn evaluation_error_in_a_forbid_denies() {
    let e = engine(
        r#"
        @id("everyone")
        permit(principal, action == Mcp::Action::"trading__execute_trade", resource);
        @id("overflowing")
        forbid(principal, action == Mcp::Action::"trading__execute_trade", resource)
          when { context.arguments.amount + 9223372036854775807 > 0 };
        "#,
    );
    let d = call(
        &e,
        &principal("alice", &[]),
        "trading__execute_trade",
        json!({"amount": 5, "symbol": "A"}),
    );
    assert!(
        !d.allowed,
        "an erroring forbid must not turn into an allow: {d:?}"
    );
    assert_eq!(d.determining, vec!["overflowing"]);
    assert_eq!(d.errors.len(), 1);
    assert!(d.errors[0].contains("overflow"), "{:?}", d.errors);
    assert_eq!(d.reason, "policy `overflowing` could not be evaluated");
    // Without the overflow the forbid evaluates (to false) and the permit applies.
    let d = call(
        &e,
        &principal("alice", &[]),
        "trading__execute_trade",
        json!({"amount": -9223372036854775807i64, "symbol": "A"}),
    );
    assert!(d.allowed);
}

#[test]
fn evaluation_error_in_a_permit_denies_too() {
    let e = engine(
        r#"
        @id("everyone")
        permit(principal, action == Mcp::Action::"trading__execute_trade", resource);
        @id("overflowing-permit")
        permit(principal, action == Mcp::Action::"trading__execute_trade", resource)
          when { context.arguments.amount * 9223372036854775807 > 0 };
        "#,
    );
    let d = call(
        &e,
        &principal("alice", &[]),
        "trading__execute_trade",
        json!({"amount": 5, "symbol": "A"}),
    );
    assert!(!d.allowed);
    assert_eq!(d.determining, vec!["overflowing-permit"]);
}

#[test]
fn shadow_policies_are_reported_and_change_nothing() {
    let text = format!(
        "{TRADING}\n@id(\"shadow-cap\") @mode(\"shadow\")\nforbid(principal, action == Mcp::Action::\"trading__execute_trade\", resource) when {{ context.arguments.amount > 100 }};\n\
         @id(\"shadow-open\") @mode(\"shadow\")\npermit(principal, action in Mcp::Action::\"call_tool\", resource);\n"
    );
    let e = engine(&text);
    let alice = principal("alice", &["trader"]);
    let d = call(
        &e,
        &alice,
        "trading__execute_trade",
        json!({"amount": 400, "symbol": "A"}),
    );
    assert!(d.allowed, "shadow must not deny: {d:?}");
    assert_eq!(d.determining, vec!["trade-limit"]);
    let ids: Vec<(&str, Effect, bool)> = d
        .shadow
        .iter()
        .map(|s| (s.policy.as_str(), s.effect, s.would_change))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("shadow-cap", Effect::Forbid, true),
            ("shadow-open", Effect::Permit, true)
        ]
    );

    // Below the shadow cap: the shadow permit is satisfied, and enforcing it changes nothing.
    let d = call(
        &e,
        &alice,
        "trading__execute_trade",
        json!({"amount": 50, "symbol": "A"}),
    );
    assert!(d.allowed);
    assert_eq!(d.shadow.len(), 1);
    assert!(!d.shadow[0].would_change);

    // A denied request the shadow permit would allow.
    let d = call(
        &e,
        &principal("carol", &[]),
        "github__create_issue",
        json!({"title": "t"}),
    );
    assert!(!d.allowed, "shadow must not allow: {d:?}");
    assert_eq!(d.shadow.len(), 1);
    assert_eq!(d.shadow[0].effect, Effect::Permit);
    assert!(d.shadow[0].would_change);
}

#[test]
fn action_groups_and_resource_hierarchy_match() {
    let e = engine(
        r#"
        @id("readers") permit(principal, action in Mcp::Action::"read", resource);
        @id("lists") permit(principal, action == Mcp::Action::"list_tools", resource);
        @id("github-writers") permit(principal in Mcp::Role::"dev", action in Mcp::Action::"backend:github", resource in Mcp::Backend::"github");
        @id("no-destructive") forbid(principal, action in Mcp::Action::"write", resource) when { resource.destructive && resource.backend == "trading" };
        "#,
    );
    let p = principal("p", &["dev"]);
    assert!(call(&e, &p, "trading__quote", json!({"symbol": "A"})).allowed);
    assert!(
        call(
            &e,
            &p,
            "github__create_issue",
            json!({"title": "x", "labels": ["a", "b"]})
        )
        .allowed
    );
    let d = call(
        &e,
        &p,
        "trading__execute_trade",
        json!({"amount": 1, "symbol": "A"}),
    );
    assert_eq!(d.determining, vec!["no-destructive"]);
    assert!(e.decide(&p, &Operation::ListTools, &facts()).allowed);
    assert!(!e.decide(&p, &Operation::SetLogLevel, &facts()).allowed);
}

#[test]
fn non_tool_operations_have_their_resources() {
    let e = engine(
        r#"
        @id("docs") permit(principal, action == Mcp::Action::"read_resource", resource in Mcp::Backend::"docs")
          when { resource.uri like "file:///public/*" };
        @id("prompts") permit(principal, action == Mcp::Action::"get_prompt", resource) when { resource.name == "summarize" };
        @id("sampling") permit(principal, action in [Mcp::Action::"create_message", Mcp::Action::"elicit"], resource == Mcp::Backend::"docs");
        @id("admins") permit(principal in Mcp::Role::"admin", action in Mcp::Action::"admin", resource is Mcp::Gateway);
        "#,
    );
    let p = principal("p", &[]);
    let f = facts();
    assert!(
        e.decide(
            &p,
            &Operation::ReadResource {
                backend: "docs",
                uri: "file:///public/a"
            },
            &f
        )
        .allowed
    );
    assert!(
        !e.decide(
            &p,
            &Operation::ReadResource {
                backend: "docs",
                uri: "file:///etc/passwd"
            },
            &f
        )
        .allowed
    );
    assert!(
        !e.decide(
            &p,
            &Operation::ReadResource {
                backend: "other",
                uri: "file:///public/a"
            },
            &f
        )
        .allowed
    );
    assert!(
        !e.decide(
            &p,
            &Operation::Subscribe {
                backend: "docs",
                uri: "file:///public/a"
            },
            &f
        )
        .allowed
    );
    assert!(
        e.decide(
            &p,
            &Operation::GetPrompt {
                backend: "x",
                prompt: "summarize"
            },
            &f
        )
        .allowed
    );
    assert!(
        e.decide(&p, &Operation::CreateMessage { backend: "docs" }, &f)
            .allowed
    );
    assert!(
        e.decide(&p, &Operation::Elicit { backend: "docs" }, &f)
            .allowed
    );
    assert!(
        !e.decide(&p, &Operation::ListRoots { backend: "docs" }, &f)
            .allowed
    );
    assert!(
        !e.decide(&p, &Operation::Complete { backend: "docs" }, &f)
            .allowed
    );
    assert!(
        e.decide(&principal("root", &["admin"]), &Operation::SetLogLevel, &f)
            .allowed
    );
}

#[test]
fn principal_attributes_are_typed() {
    let e = engine(
        r#"
        @id("desk") permit(principal, action == Mcp::Action::"trading__quote", resource)
          when { principal has department && principal.department == "desk" };
        @id("juniors") forbid(principal, action == Mcp::Action::"trading__quote", resource)
          when { principal has level && principal.level < 2 };
        "#,
    );
    let desk = with_attr(
        principal("a", &[]),
        "department",
        AttrValue::String("desk".into()),
    );
    assert!(call(&e, &desk, "trading__quote", json!({"symbol": "A"})).allowed);
    let junior = with_attr(desk.clone(), "level", AttrValue::Long(1));
    assert!(!call(&e, &junior, "trading__quote", json!({"symbol": "A"})).allowed);
    // A claim of the wrong type must not make the forbid vanish.
    let odd = with_attr(desk.clone(), "level", AttrValue::String("1".into()));
    let d = call(&e, &odd, "trading__quote", json!({"symbol": "A"}));
    assert!(!d.allowed);
    assert_eq!(d.reason, "principal attribute `level` must be an integer");
    // Undeclared attributes are ignored.
    let extra = with_attr(desk, "shoe_size", AttrValue::Long(44));
    assert!(call(&e, &extra, "trading__quote", json!({"symbol": "A"})).allowed);
}

#[test]
fn unknown_tools_are_denied_and_hidden() {
    let e = engine("permit(principal, action, resource);");
    let p = principal("p", &[]);
    let d = call(&e, &p, "nope__tool", json!({}));
    assert!(!d.allowed);
    assert_eq!(d.reason, "unknown tool `nope__tool`");
    assert!(!e.tool_visible(&p, "nope__tool", &facts()));
}

#[test]
fn visibility_follows_partial_evaluation() {
    let e = engine(TRADING);
    let f = facts();
    // Depends on the amount: shown.
    assert!(e.tool_visible(
        &principal("alice", &["trader"]),
        "trading__execute_trade",
        &f
    ));
    // Never permitted: hidden.
    assert!(!e.tool_visible(&principal("eve", &[]), "trading__execute_trade", &f));
    assert!(!e.tool_visible(&principal("alice", &["trader"]), "github__create_issue", &f));
    // Always permitted: shown.
    assert!(e.tool_visible(&principal("bob", &["bulk"]), "trading__execute_trade", &f));
}

#[test]
fn visibility_hides_what_a_certain_forbid_blocks() {
    let e = engine(
        r#"
        permit(principal, action in Mcp::Action::"call_tool", resource);
        forbid(principal in Mcp::Role::"intern", action in Mcp::Action::"write", resource);
        "#,
    );
    let intern = principal("i", &["intern"]);
    assert!(!e.tool_visible(&intern, "trading__execute_trade", &facts()));
    assert!(e.tool_visible(&intern, "trading__quote", &facts()));
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
}

#[test]
fn the_entity_memo_never_answers_for_a_changed_principal() {
    // Same subject, same tool: only the roles (then an attribute) differ between calls, and
    // each call must be decided on the principal it presents, not a remembered one.
    let e = engine(TRADING);
    let args = json!({"amount": 700, "symbol": "ACME"});
    let bulk = principal("alice", &["bulk"]);
    let plain = principal("alice", &["trader"]);
    for _ in 0..2 {
        assert!(call(&e, &bulk, "trading__execute_trade", args.clone()).allowed);
        assert!(!call(&e, &plain, "trading__execute_trade", args.clone()).allowed);
    }
    let with_level = with_attr(bulk.clone(), "level", AttrValue::Long(1));
    assert!(call(&e, &with_level, "trading__execute_trade", args.clone()).allowed);
    let wrong_type = with_attr(bulk, "level", AttrValue::String("x".to_owned()));
    assert!(!call(&e, &wrong_type, "trading__execute_trade", args).allowed);
}

/// A tool whose policies read no context is decided once per caller and tool; every later
/// call still has its arguments checked, each caller and each tool is decided on its own,
/// and the answer (policies, reason, shadow outcomes) is the one Cedar gave.
#[test]
fn a_context_free_decision_is_made_once_per_caller_and_still_checks_arguments() {
    let e = engine(
        r#"
@id("traders") permit(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource);
@id("no-quotes") forbid(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__quote", resource);
@id("quotes") permit(principal, action == Mcp::Action::"trading__quote", resource);
@id("watch") @mode("shadow") forbid(principal in Mcp::Role::"trader", action == Mcp::Action::"trading__execute_trade", resource);
"#,
    );
    let trader = principal("alice", &["trader"]);
    let other = principal("alice", &["viewer"]);
    let trade = |p, amount: serde_json::Value| {
        call(
            &e,
            p,
            "trading__execute_trade",
            json!({"amount": amount, "symbol": "ACME"}),
        )
    };
    let first = trade(&trader, json!(1));
    assert!(first.allowed, "{first:?}");
    assert_eq!(first.determining, vec!["traders"]);
    assert_eq!(first.shadow.len(), 1);
    assert!(first.shadow[0].would_change);
    for amount in [json!(2), json!(-7), json!(i64::MAX)] {
        assert_eq!(trade(&trader, amount), first);
    }
    // Arguments that do not fit their types are refused after the allow was remembered.
    for bad in [json!("ten"), json!(1.5), json!(u64::MAX), json!(null)] {
        let d = trade(&trader, bad.clone());
        assert!(!d.allowed && d.invalid_arguments, "{bad}: {d:?}");
    }
    let missing = call(&e, &trader, "trading__execute_trade", json!({"amount": 1}));
    assert!(!missing.allowed && missing.invalid_arguments);
    // Another caller, and another tool of the same caller, are decided on their own.
    for _ in 0..2 {
        let d = trade(&other, json!(1));
        assert!(!d.allowed && !d.invalid_arguments, "{d:?}");
        assert_eq!(d.reason, "no policy permits this request");
        let q = call(&e, &trader, "trading__quote", json!({"symbol": "ACME"}));
        assert!(!q.allowed);
        assert_eq!(q.determining, vec!["no-quotes"]);
        assert!(call(&e, &other, "trading__quote", json!({"symbol": "ACME"})).allowed);
    }
    // The same answers as the whole set gives, on every call.
    let unsliced = e.decide_unsliced(
        &trader,
        &Operation::CallTool {
            tool: "trading__execute_trade",
            arguments: &super::super::testkit::object(json!({"amount": 3, "symbol": "ACME"})),
        },
        &facts(),
    );
    assert_eq!(unsliced, first);
}

/// A partner identity provider's `sub=admin` satisfied `principal == Mcp::User::"admin"`.
/// With each issuer in its own namespace, ids, roles and the issuer group keep them apart.
#[test]
fn a_principal_of_one_issuer_is_never_taken_for_one_of_another() {
    use crate::config::IssuerSettings;
    use std::collections::BTreeMap;
    let issuer = |iss: &str, prefix: &str| IssuerSettings {
        audiences: vec!["warden".to_owned()],
        roles_claim: Some("roles".to_owned()),
        principal_prefix: Some(prefix.to_owned()),
        ..IssuerSettings::for_tests(iss)
    };
    let claims = json!({"sub": "admin", "roles": ["trader"]});
    let corp = crate::authn::principal_from_claims(
        &claims,
        &issuer("https://corp.test", "corp"),
        &BTreeMap::new(),
    )
    .unwrap();
    let partner = crate::authn::principal_from_claims(
        &claims,
        &issuer("https://partner.test", "partner"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(corp.id, "corp/admin");
    assert_eq!(partner.id, "partner/admin");
    assert_eq!(partner.roles, ["partner/trader"]);
    let e = engine(
        r#"
@id("corp-admin")
permit(principal == Mcp::User::"corp/admin", action == Mcp::Action::"trading__execute_trade", resource);
@id("corp-traders")
permit(principal in Mcp::Role::"corp/trader", action == Mcp::Action::"trading__quote", resource);
@id("partners-quote")
permit(principal in Mcp::Issuer::"partner", action == Mcp::Action::"github__create_issue", resource);
@id("bare-admin")
permit(principal == Mcp::User::"admin", action == Mcp::Action::"github__create_issue", resource);
"#,
    );
    let trade = json!({"amount": 10, "symbol": "ACME"});
    assert!(call(&e, &corp, "trading__execute_trade", trade.clone()).allowed);
    let d = call(&e, &partner, "trading__execute_trade", trade);
    assert!(!d.allowed, "a partner's admin is not corp's admin: {d:?}");
    assert!(call(&e, &corp, "trading__quote", json!({"symbol": "A"})).allowed);
    assert!(!call(&e, &partner, "trading__quote", json!({"symbol": "A"})).allowed);
    assert!(call(&e, &partner, "github__create_issue", json!({"title": "t"})).allowed);
    assert!(!call(&e, &corp, "github__create_issue", json!({"title": "t"})).allowed);
}

/// A backend the configuration gives to a tenant is the tenant's even when it lists no
/// tools: its resources, prompts and server requests are kept from other tenants too, and
/// the configuration's word wins over what a (stale) catalog says of a tool.
#[test]
fn a_tenants_backend_is_theirs_whatever_it_lists() {
    use super::super::engine::Tenancy;
    let policies = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/multitenant/policies.cedar"
    ))
    .unwrap();
    let acme = vec!["acme".to_owned()];
    // `github` is acme's; `vault` (no tools at all) too; `trading` stays shared although
    // its tools claimed a tenant.
    let mut tools = super::super::testkit::catalog();
    for t in tools.iter_mut().filter(|t| t.backend == "trading") {
        t.tenants = vec!["globex".to_owned()];
    }
    let tenancy = Tenancy::from_backends([
        ("github", acme.as_slice()),
        ("vault", acme.as_slice()),
        ("trading", &[][..]),
    ]);
    let e = Engine::build_with_tenancy(
        &[super::super::testkit::source(
            "multitenant.cedar",
            &policies,
        )],
        &tools,
        &super::super::testkit::attributes(),
        &tenancy,
        super::super::BuildMode::Strict,
    )
    .unwrap();
    let member = |tenant: Option<&str>| {
        let mut p = principal("p", &["member"]);
        p.tenant = tenant.map(str::to_owned);
        p
    };
    let f = facts();
    let read = |p: &crate::authn::Principal, backend| {
        e.decide(
            p,
            &Operation::ReadResource {
                backend,
                uri: "vault://secret",
            },
            &f,
        )
    };
    assert!(read(&member(Some("acme")), "vault").allowed);
    let d = read(&member(Some("globex")), "vault");
    assert!(!d.allowed);
    assert_eq!(d.determining, vec!["tenant-isolation-resources"]);
    assert!(!read(&member(None), "vault").allowed);
    // A tenant's tools.
    let issue = json!({"title": "t"});
    assert!(
        call(
            &e,
            &member(Some("acme")),
            "github__create_issue",
            issue.clone()
        )
        .allowed
    );
    let d = call(&e, &member(Some("globex")), "github__create_issue", issue);
    assert_eq!(d.determining, vec!["tenant-isolation-tools"]);
    // Shared, as the configuration says.
    let quote = json!({"symbol": "X"});
    assert!(
        call(
            &e,
            &member(Some("initech")),
            "trading__quote",
            quote.clone()
        )
        .allowed
    );
    assert!(call(&e, &member(None), "trading__quote", quote).allowed);
    // And lists: another tenant's tool is hidden.
    assert!(e.tool_visible(&member(Some("acme")), "github__create_issue", &f));
    assert!(!e.tool_visible(&member(Some("globex")), "github__create_issue", &f));
}

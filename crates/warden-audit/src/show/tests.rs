use serde_json::json;

use super::*;

#[test]
fn filters_on_every_condition() {
    let r = json!({"time_us": 5_000_000, "kind": "request", "principal": {"id": "alice", "tenant": "acme"},
        "resource": "t", "decision": {"effect": "deny", "policies": ["p7", "p9"]},
        "outcome": {"status": "denied"}});
    assert!(Filter::default().matches(&r));
    let f = Filter {
        from_us: Some(5_000_000),
        to_us: Some(5_000_001),
        principal: Some("alice".into()),
        tenant: Some("acme".into()),
        tool: Some("t".into()),
        decision: Some("deny".into()),
        policy: Some("p9".into()),
        outcome: Some("denied".into()),
        kind: Some("request".into()),
    };
    assert!(f.matches(&r));
    let not = |g: Filter| assert!(!g.matches(&r));
    not(Filter {
        to_us: Some(5_000_000),
        ..f.clone()
    });
    not(Filter {
        principal: Some("bob".into()),
        ..f.clone()
    });
    not(Filter {
        tenant: Some("globex".into()),
        ..f.clone()
    });
    not(Filter {
        decision: Some("allow".into()),
        ..f.clone()
    });
    not(Filter {
        policy: Some("p".into()),
        ..f.clone()
    });
    not(Filter {
        outcome: Some("ok".into()),
        ..f.clone()
    });
    not(Filter {
        kind: Some("stop".into()),
        ..f
    });
    // A record without the member never matches a condition on it.
    assert!(
        !Filter {
            policy: Some("p7".into()),
            ..Filter::default()
        }
        .matches(&json!({"kind": "start"}))
    );
}

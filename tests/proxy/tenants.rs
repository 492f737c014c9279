//! Tenants that never see each other: two tenants' principals, with real signed JWTs
//! whose `tenant` claim the issuer maps, in front of a backend of each tenant and a shared
//! one, under the shipped `policies/multitenant` set. Neither lists, calls, reads the
//! cache of, nor joins a coalesced call on the other's backend; the audit log is filtered
//! by tenant.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::audit::{audit_section, records, scratch};
use crate::authn::{AUDIENCE, ISSUER, Idp, jwk, now, sign};
use crate::common::*;

fn token(sub: &str, tenant: Option<&str>) -> String {
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 600,
        "nbf": now() - 10, "roles": ["member"]});
    if let Some(tenant) = tenant {
        claims["tenant"] = tenant.into();
    }
    sign("rsa1.pem", Algorithm::RS256, "rsa-1", &claims)
}

async fn tools(client: &Client) -> Vec<String> {
    let mut names = listed_tool_names(client).await;
    names.sort();
    names
}

async fn echo(client: &Client, tool: &str, text: &str) -> Result<String, String> {
    client
        .peer()
        .call_tool(call(tool, json!({ "text": text })))
        .await
        .map(|r| first_text(&r))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tenants_never_see_list_call_or_share_each_others_backends() {
    let idp = Idp::start(vec![jwk("rsa1")]).await;
    let (store, state) = (scratch("tenants-store"), scratch("tenants-state"));
    // The shipped set, as written.
    let policies = std::fs::read_to_string(format!(
        "{}/policies/multitenant/policies.cedar",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // `counted` is cacheable and coalesced on every backend: a result one tenant caused
    // must never reach the other.
    let cached = "tools.counted = { cache_ttl_secs = 60, coalesce = true }\n";
    let toml = format!(
        "[admin]\ntenant_metrics = true\n[auth]\n[[auth.issuers]]\nissuer = {}\naudiences = [{}]\njwks_url = {}\nroles_claim = \"roles\"\ntenant_claim = \"tenant\"\n\
         [authz]\npolicy = {}\n{}{}{}{}",
        lit(ISSUER),
        lit(AUDIENCE),
        lit(&idp.url),
        lit(&policies),
        audit_section(&format!("file://{}", store.display()), &state, ""),
        stdio_backend("acme", &format!("tenants = [\"acme\"]\n{cached}")),
        stdio_backend("globex", &format!("tenants = [\"globex\"]\n{cached}")),
        stdio_backend("docs", cached),
    );
    let proxy = TestProxy::start(&toml).await;
    let (ann, _) = connect_as(&proxy.url, &token("ann", Some("acme"))).await;
    let (gus, _) = connect_as(&proxy.url, &token("gus", Some("globex"))).await;
    let (nobody, _) = connect_as(&proxy.url, &token("ops", None)).await;

    // Lists: one's own backend and the shared one, never the other's.
    let listed = tools(&ann).await;
    assert!(listed.iter().any(|t| t == "acme__echo"), "{listed:?}");
    assert!(listed.iter().any(|t| t == "docs__echo"), "{listed:?}");
    assert!(
        !listed.iter().any(|t| t.starts_with("globex__")),
        "{listed:?}"
    );
    let listed = tools(&gus).await;
    assert!(listed.iter().any(|t| t == "globex__echo"), "{listed:?}");
    assert!(
        !listed.iter().any(|t| t.starts_with("acme__")),
        "{listed:?}"
    );
    let listed = tools(&nobody).await;
    assert!(listed.iter().all(|t| t.starts_with("docs__")), "{listed:?}");

    // Calls: at home and on the shared backend, yes; next door, no.
    assert_eq!(echo(&ann, "acme__echo", "a").await.unwrap(), "a");
    assert_eq!(echo(&gus, "docs__echo", "d").await.unwrap(), "d");
    // Another tenant's tool does not exist for the caller (no oracle of what others
    // have); the record says which policy kept it out.
    for (client, tool) in [
        (&ann, "globex__echo"),
        (&gus, "acme__echo"),
        (&nobody, "acme__echo"),
    ] {
        let e = echo(client, tool, "x").await.unwrap_err();
        assert!(e.contains(&format!("unknown tool `{tool}`")), "{tool}: {e}");
    }

    // The cache and coalescing: a result acme's call put in the cache is not served to
    // globex, whose identical call is denied before the cache; on the shared backend each
    // caller has its own cache entries.
    let count = |client: &Client, tool: &'static str| {
        let peer = client.peer().clone();
        async move {
            peer.call_tool(call(tool, json!({"key": "k"})))
                .await
                .map(|r| first_text(&r))
                .map_err(|e| e.to_string())
        }
    };
    let first = count(&ann, "acme__counted").await.unwrap();
    assert_eq!(count(&ann, "acme__counted").await.unwrap(), first, "cached");
    let denied = count(&gus, "acme__counted").await.unwrap_err();
    assert!(denied.contains("unknown tool"), "{denied}");
    let (a, g) = tokio::join!(count(&ann, "docs__counted"), count(&gus, "docs__counted"));
    assert_ne!(a.unwrap(), g.unwrap(), "each tenant's own call");

    // Metrics by tenant, asked for in `[admin]`.
    let metrics = metrics_text(&proxy.admin).await;
    for line in [
        "mcp_warden_tenant_requests_total{tenant=\"acme\",outcome=\"ok\"}",
        "mcp_warden_tenant_requests_total{tenant=\"globex\",outcome=\"ok\"}",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // The audit log, by tenant.
    ann.cancel().await.unwrap();
    gus.cancel().await.unwrap();
    nobody.cancel().await.unwrap();
    proxy.handle.shutdown().await;
    let all = records(&store, &state);
    let denied: Vec<&Value> = all
        .iter()
        .filter(|r| r["decision"]["effect"] == "deny")
        .collect();
    let kept_out = |tenant: Option<&str>, tool: &str| {
        denied.iter().any(|r| {
            r["principal"]["tenant"].as_str() == tenant
                && r["resource"] == tool
                && r["decision"]["policies"] == json!(["tenant-isolation-tools"])
        })
    };
    assert!(kept_out(Some("globex"), "acme__counted"), "{denied:#?}");
    assert!(kept_out(Some("acme"), "globex__echo"));
    assert!(kept_out(None, "acme__echo"));
    let out = std::process::Command::new(warden_exe())
        .args([
            "audit", "show", "--format", "jsonl", "--tenant", "globex", "--store",
        ])
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|r| r["principal"]["tenant"] == "globex"));
}

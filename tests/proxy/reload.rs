//! Reloading while serving: a policy edit takes effect on the next call, a bad edit changes
//! nothing, sections that need a restart are named, clients hear that lists changed, and
//! twenty reloads under continuous traffic fail no call the new policies permit. Through
//! the library handle here; the file watch, SIGHUP and the admin API in `reload_triggers`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mcp_warden::Config;
use mcp_warden::hub::reload::Outcome;
use serde_json::json;

use crate::common::*;

/// Everything is allowed; `forbid_slow` also forbids `s__slow`.
fn config(forbid_slow: bool, extra_backend: bool) -> Config {
    config_with(forbid_slow, extra_backend, "")
}

/// [`config`] with `alias` (empty: none) as `s`'s alias of `test_simple_text`.
fn config_with(forbid_slow: bool, extra_backend: bool, alias: &str) -> Config {
    let forbid = if forbid_slow {
        "\n@id(\"no-slow\")\nforbid(principal, action == Mcp::Action::\"s__slow\", resource);"
    } else {
        ""
    };
    let policy = format!("@id(\"all\")\npermit(principal, action, resource);{forbid}");
    let aliases = if alias.is_empty() {
        String::new()
    } else {
        format!("aliases = {{ test_simple_text = {} }}", lit(alias))
    };
    let mut toml = format!(
        "[auth]\nanonymous = true\n[authz]\npolicy = {}\n{}",
        lit(&policy),
        stdio_backend("s", &aliases)
    );
    if extra_backend {
        toml.push_str(&stdio_backend("t", ""));
    }
    Config::from_toml_str(&toml).unwrap()
}

fn add() -> rmcp::model::CallToolRequestParams {
    call("s__slow", json!({"ms": 1}))
}

#[tokio::test]
async fn a_policy_edit_applies_on_the_next_call_and_a_bad_one_changes_nothing() {
    let proxy = TestProxy::from_config(config(false, false)).await;
    let (client, seen) = connect(&proxy.url).await;
    client.peer().call_tool(add()).await.unwrap();
    let before = proxy.handle.generation();

    let report = proxy.handle.reload_with(config(true, false)).await;
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    assert_eq!(report.generation, before.number + 1);
    assert_ne!(Some(report.policy_hash.clone()), before.policy_hash);
    let e = client
        .peer()
        .call_tool(add())
        .await
        .unwrap_err()
        .to_string();
    // Forbidden for every argument: hidden, and refused as unknown.
    assert!(e.contains("unknown tool `s__slow`"), "{e}");

    // The same again: nothing to do.
    let same = proxy.handle.reload_with(config(true, false)).await;
    assert_eq!(same.outcome, Outcome::Unchanged);
    assert_eq!(same.generation, report.generation);

    // A configuration that does not validate keeps the running one.
    let mut broken = config(true, false);
    broken.authz.policies[0].text =
        "permit(principal, action == Mcp::Action::\"nope\", resource) when { principal.nope };"
            .into();
    let refused = proxy.handle.reload_with(broken).await;
    assert_eq!(refused.outcome, Outcome::Refused);
    assert!(
        refused.error.as_deref().unwrap_or("").contains("nope"),
        "{refused:?}"
    );
    assert_eq!(refused.generation, report.generation);
    assert!(
        client.peer().call_tool(add()).await.is_err(),
        "still the forbid"
    );
    let generation = proxy.handle.generation();
    assert_eq!(
        generation.last_reload.map(|r| r.outcome),
        Some(Outcome::Refused)
    );

    // A new backend starts, and its tools are callable as soon as the reload returns.
    let grown = proxy.handle.reload_with(config(false, true)).await;
    assert_eq!(grown.outcome, Outcome::Applied, "{grown:?}");
    assert!(grown.restart_needed.is_empty(), "{grown:?}");
    assert_eq!(grown.backends, vec!["backend `t` added".to_owned()]);
    client.peer().call_tool(add()).await.unwrap();
    client
        .peer()
        .call_tool(call("t__echo", json!({"text": "new"})))
        .await
        .unwrap();

    // A section that cannot change while serving is named, never half applied.
    let mut rebound = config(false, true);
    rebound.server.page_size += 1;
    let named = proxy.handle.reload_with(rebound).await;
    assert_eq!(named.outcome, Outcome::Unchanged, "{named:?}");
    assert_eq!(named.restart_needed, vec!["server".to_owned()]);

    // A removed backend's tools go; a required backend that cannot start refuses the
    // reload and changes nothing.
    let shrunk = proxy.handle.reload_with(config(false, false)).await;
    assert_eq!(shrunk.backends, vec!["backend `t` removed".to_owned()]);
    let gone = client
        .peer()
        .call_tool(call("t__echo", json!({"text": "old"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(gone.contains("unknown tool"), "{gone}");
    let mut broken = config(false, false);
    let mut x = config(false, true).backends.remove(1);
    x.name = "x".to_owned();
    x.namespace = "x".to_owned();
    if let mcp_warden::config::Transport::Stdio { command, .. } = &mut x.transport {
        *command = "/nonexistent/mcp-server".to_owned();
    }
    x.optional = false;
    broken.backends.push(x);
    let refused = proxy.handle.reload_with(broken).await;
    assert_eq!(refused.outcome, Outcome::Refused, "{refused:?}");
    assert!(
        refused
            .error
            .as_deref()
            .unwrap_or("")
            .contains("backend `x`"),
        "{refused:?}"
    );
    assert_eq!(
        proxy.handle.backends_up(),
        vec!["s".to_owned()],
        "nothing of the refused reload stays"
    );

    // Clients were told their lists may have changed.
    let told = seen.seen.lock().unwrap().tool_list_changed;
    assert!(told >= 2, "{told}");
    let metrics = reqwest::get(format!("{}/metrics", proxy.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_warden_reloads_total{outcome=\"refused\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_warden_reloads_total{outcome=\"applied\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn twenty_reloads_under_load_fail_no_permitted_call() {
    let proxy = TestProxy::from_config(config(false, false)).await;
    let ok = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for i in 0..4 {
        let (client, _) = connect(&proxy.url).await;
        let (ok, stop) = (ok.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.is_cancelled() {
                // `s__echo` is permitted by every version of the policies.
                let text = format!("w{i}");
                match client
                    .peer()
                    .call_tool(call("s__echo", json!({"text": text})))
                    .await
                {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    let (probe, _) = connect(&proxy.url).await;
    let started = std::time::Instant::now();
    // Each kind of change in turn: a policy edit, a backend added, an alias renamed (its
    // backend restarts under the workers' calls), the backend removed again.
    let (mut forbid, mut extra, mut alias) = (false, false, String::new());
    for round in 0..20 {
        match round % 4 {
            0 => forbid = !forbid,
            1 => extra = true,
            2 => alias = format!("hello{round}"),
            _ => extra = false,
        }
        let report = proxy
            .handle
            .reload_with(config_with(forbid, extra, &alias))
            .await;
        assert_eq!(
            report.outcome,
            Outcome::Applied,
            "round {round}: {report:?}"
        );
        // The very next call sees the new configuration.
        let result = probe.peer().call_tool(add()).await;
        assert_eq!(result.is_err(), forbid, "round {round}: {result:?}");
        let t = probe
            .peer()
            .call_tool(call("t__echo", json!({"text": "t"})))
            .await;
        assert_eq!(t.is_ok(), extra, "round {round}: {t:?}");
        if !alias.is_empty() {
            probe
                .peer()
                .call_tool(call(&alias, json!({})))
                .await
                .unwrap_or_else(|e| panic!("round {round}: `{alias}`: {e}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
    for worker in workers {
        let failures = worker.await.unwrap();
        assert!(failures.is_empty(), "{failures:?}");
    }
    let calls = ok.load(Ordering::Relaxed);
    println!(
        "20 reloads (policy edits, a backend added and removed, an alias renamed) in {:.2} s while 4 clients made {calls} permitted calls, none failed",
        started.elapsed().as_secs_f64()
    );
    assert!(calls > 20, "calls ran during the reloads");
    assert_eq!(proxy.handle.generation().number, 21);
}

/// The binary's triggers: an edit on disk (and a new policy file beside it) reloads by
/// itself, a broken edit is refused and said in the generation, `--no-watch` waits for
/// SIGHUP, and `mcp-warden admin reload` applies on request; each applied reload is a
/// `policy` record saying what triggered it.
#[tokio::test]
async fn edits_on_disk_sighup_and_the_admin_api_reload_the_policies() {
    use crate::audit::{audit_section, records, scratch};
    let (store, state, dir) = (scratch("store"), scratch("state"), scratch("conf"));
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let allow = "@id(\"all\")\npermit(principal, action, resource);\n";
    let no_slow = "@id(\"all\")\npermit(principal, action, resource);\n@id(\"no-slow\")\nforbid(principal, action == Mcp::Action::\"s__slow\", resource);\n";
    std::fs::write(policies.join("p.cedar"), allow).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nanonymous = true\n[authz]\npolicies = {}\n{}{}",
            lit(&policies.display().to_string()),
            audit_section(&format!("file://{}", store.display()), &state, ""),
            stdio_backend("s", "")
        ),
    )
    .unwrap();
    let slow = || call("s__slow", json!({"ms": 1}));
    let echo = || call("s__echo", json!({"text": "x"}));
    let admin = |url: String, args: &'static [&'static str]| async move {
        let out = tokio::process::Command::new(warden_exe())
            .args(["admin", "--url", &url])
            .args(args)
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    // Watched.
    let (proxy, url, admin_url) = spawn_warden_with(&config, &[]).await;
    let (client, _) = connect(&url).await;
    client.peer().call_tool(slow()).await.unwrap();
    std::fs::write(policies.join("p.cedar"), no_slow).unwrap();
    until("the edit applies", 10, async || {
        client.peer().call_tool(slow()).await.is_err()
    })
    .await;
    let forbid_echo =
        "@id(\"no-echo\")\nforbid(principal, action == Mcp::Action::\"s__echo\", resource);\n";
    std::fs::write(policies.join("q.cedar"), forbid_echo).unwrap();
    until("a new policy file applies", 10, async || {
        client.peer().call_tool(echo()).await.is_err()
    })
    .await;
    std::fs::write(
        policies.join("q.cedar"),
        "forbid(principal, action, resource) when {",
    )
    .unwrap();
    until("the broken edit is refused", 10, async || {
        let (_, out) = admin(admin_url.clone(), &["generation"]).await;
        out.contains("last reload: refused")
    })
    .await;
    assert!(
        client.peer().call_tool(echo()).await.is_err(),
        "the running policies stay"
    );
    std::fs::remove_file(policies.join("q.cedar")).unwrap();
    until("the removal applies", 10, async || {
        client.peer().call_tool(echo()).await.is_ok()
    })
    .await;
    client.cancel().await.unwrap();
    signal(&proxy, "-TERM");
    let mut proxy = proxy;
    assert!(proxy.wait().await.unwrap().success());

    // Not watched: SIGHUP, then the admin API.
    std::fs::write(policies.join("p.cedar"), allow).unwrap();
    let (proxy, url, admin_url) = spawn_warden_with(&config, &["--no-watch"]).await;
    let (client, _) = connect(&url).await;
    std::fs::write(policies.join("p.cedar"), no_slow).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(client.peer().call_tool(slow()).await.is_ok(), "no watch");
    signal(&proxy, "-HUP");
    until("SIGHUP applies", 10, async || {
        client.peer().call_tool(slow()).await.is_err()
    })
    .await;
    std::fs::write(policies.join("p.cedar"), allow).unwrap();
    let (ok, out) = admin(admin_url.clone(), &["reload"]).await;
    assert!(ok && out.contains("reload applied"), "{out}");
    client.peer().call_tool(slow()).await.unwrap();
    let (_, out) = admin(admin_url.clone(), &["generation"]).await;
    assert!(out.contains("by admin:"), "{out}");
    std::fs::write(policies.join("p.cedar"), "permit(").unwrap();
    let (ok, out) = admin(admin_url.clone(), &["reload"]).await;
    assert!(!ok && out.contains("reload refused"), "{out}");
    client.peer().call_tool(slow()).await.unwrap();
    client.cancel().await.unwrap();
    signal(&proxy, "-TERM");
    let mut proxy = proxy;
    assert!(proxy.wait().await.unwrap().success());

    let triggers: Vec<String> = records(&store, &state)
        .iter()
        .filter(|r| r["kind"] == "policy" && r["detail"]["trigger"].is_string())
        .map(|r| {
            assert!(
                r["detail"]["previous_policy_hash"]
                    .as_str()
                    .unwrap()
                    .starts_with("sha256:")
            );
            assert_ne!(r["detail"]["previous_policy_hash"], r["policy_hash"]);
            r["detail"]["trigger"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        triggers.iter().filter(|t| *t == "file").count() >= 3,
        "{triggers:?}"
    );
    assert!(triggers.contains(&"signal".to_owned()), "{triggers:?}");
    assert!(
        triggers.iter().any(|t| t.starts_with("admin:")),
        "{triggers:?}"
    );
}

/// A configuration mounted from a Kubernetes ConfigMap: the files are symlinks through
/// `..data` to a timestamped directory, and an update writes a new directory, swaps `..data`
/// to it by a rename and removes the old one — the files the proxy read never change in
/// place. The watch reloads on such a swap, twice in a row (the second swap goes through
/// the directory the first one put in place), and after a broken version was refused, the
/// fix published next still applies.
#[tokio::test]
async fn a_configmap_swap_reloads_the_policies() {
    use crate::audit::scratch;
    use std::os::unix::fs::symlink;
    let mount = scratch("configmap");
    let allow = "@id(\"all\")\npermit(principal, action, resource);\n";
    let no_slow = "@id(\"all\")\npermit(principal, action, resource);\n@id(\"no-slow\")\nforbid(principal, action == Mcp::Action::\"s__slow\", resource);\n";
    let config = format!(
        "[auth]\nanonymous = true\n[authz]\npolicies = {}\n{}",
        lit(&mount.display().to_string()),
        stdio_backend("s", "")
    );
    // What the kubelet does: the new version in a directory of its own, `..data` swapped to
    // it by renaming a fresh symlink over it, the old directory removed.
    let publish = |version: &str, policy: &str| {
        let dir = mount.join(format!("..2026_12_05_{version}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), &config).unwrap();
        std::fs::write(dir.join("p.cedar"), policy).unwrap();
        let old = std::fs::read_link(mount.join("..data")).ok();
        symlink(dir.file_name().unwrap(), mount.join("..data_tmp")).unwrap();
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(mount.join(old)).unwrap();
        }
    };
    publish("a", allow);
    for file in ["config.toml", "p.cedar"] {
        symlink(format!("..data/{file}"), mount.join(file)).unwrap();
    }
    let slow = || call("s__slow", json!({"ms": 1}));
    let (proxy, url, _) = spawn_warden_with(&mount.join("config.toml"), &[]).await;
    let (client, _) = connect(&url).await;
    client.peer().call_tool(slow()).await.unwrap();

    publish("b", no_slow);
    until("the first swap applies", 10, async || {
        client.peer().call_tool(slow()).await.is_err()
    })
    .await;
    publish("c", allow);
    until("the second swap applies", 10, async || {
        client.peer().call_tool(slow()).await.is_ok()
    })
    .await;
    // A broken version is refused; the fix published after it is still seen.
    publish("d", "permit(");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        client.peer().call_tool(slow()).await.is_ok(),
        "the running policies stay"
    );
    publish("e", no_slow);
    until("the fix after a refused version applies", 10, async || {
        client.peer().call_tool(slow()).await.is_err()
    })
    .await;
    client.cancel().await.unwrap();
    signal(&proxy, "-TERM");
    let mut proxy = proxy;
    assert!(proxy.wait().await.unwrap().success());
}

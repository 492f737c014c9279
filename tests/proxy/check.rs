//! `mcp-warden check`: what it accepts, `serve` runs. Every wrong key and type of a file in
//! one run; policies that startup would refuse refused without a catalog too; and `--live`,
//! which starts the backends as `serve` does and turns what would only be a warning in a
//! running proxy's log into an error.

use std::process::Command;

use crate::cli::temp_file;
use crate::common::*;

fn check(args: &[&str], config: &std::path::Path) -> (bool, String) {
    let out = Command::new(warden_exe())
        .arg("check")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_wrong_key_and_type_comes_in_one_run_at_its_line() {
    let config = temp_file(
        "check/types.toml",
        &with_auth(&format!(
            "{}limits = {{ concurrency = \"four\" }}\ncolour = \"red\"\n{}timeout_ms = 5\n",
            stdio_backend("a", ""),
            stdio_backend("b", "")
        )),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let (ok, out) = check(&[], &config);
    assert!(!ok);
    assert!(out.contains("(3 errors)"), "{out}");
    for (needle, what) in [
        ("\"four\"", "invalid type"),
        ("colour", "unknown field `colour`"),
        ("timeout_ms", "unknown field `timeout_ms`"),
    ] {
        let at = format!("line {}, column", line_of(needle));
        assert!(
            out.lines().any(|l| l.contains(&at) && l.contains(what)),
            "{what} at {at}: {out}"
        );
    }
}

/// A policy reading an attribute the schema does not declare: without a catalog `check`
/// used to call it valid, and `serve` refused it. Both refuse it now, with the same words.
#[tokio::test]
async fn check_refuses_what_serve_refuses_without_a_catalog() {
    let policy = "permit(principal, action, resource) when { principal.department == \"ops\" };";
    let config = temp_file(
        "check/attribute.toml",
        &with_auth(&format!(
            "[authz]\npolicy = {}\n{}",
            lit(policy),
            stdio_backend("s", "")
        )),
    );
    let (ok, checked) = check(&[], &config);
    assert!(!ok, "{checked}");
    assert!(checked.contains("department"), "{checked}");
    let served = tokio::process::Command::new(warden_exe())
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .output();
    let served = tokio::time::timeout(std::time::Duration::from_secs(30), served)
        .await
        .expect("serve refuses at start")
        .unwrap();
    assert!(!served.status.success());
    let served = String::from_utf8_lossy(&served.stderr);
    let first = checked
        .lines()
        .find(|l| l.contains("department"))
        .unwrap()
        .trim();
    assert!(
        served.contains(first),
        "check said {first:?}; serve said {served}"
    );

    // A policy naming a tool no catalog holds is not an error offline: startup quarantines
    // it until the backend lists it; the note says where it is checked.
    let naming = temp_file(
        "check/naming.toml",
        &with_auth(&format!(
            "[authz]\npolicy = {}\n{}",
            lit(
                "permit(principal, action == Mcp::Action::\"s__slow\", resource) when { context.arguments.ms < 5 };"
            ),
            stdio_backend("s", "")
        )),
    );
    let (ok, out) = check(&[], &naming);
    assert!(ok, "{out}");
    assert!(out.contains("check --live"), "{out}");
    let (ok, out) = check(&["--live"], &naming);
    assert!(ok, "{out}");
    assert!(out.contains("every backend listed"), "{out}");
}

#[test]
fn check_live_fails_on_settings_that_name_nothing_and_on_quarantined_tools() {
    let config = temp_file(
        "check/unmatched.toml",
        &with_auth(&stdio_backend(
            "s",
            "hide = [\"crash\", \"get_env\"]\naliases = { nope = \"never\", echo = \"say\" }",
        )),
    );
    // Offline nothing can be known about the backend's names.
    let (ok, out) = check(&[], &config);
    assert!(ok, "{out}");
    let (ok, out) = check(&["--live"], &config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("backend `s`: `hide` glob `get_env` matches none"),
        "{out}"
    );
    assert!(
        out.contains("alias of `nope`: the backend has no such tool"),
        "{out}"
    );
    assert!(!out.contains("`crash`") && !out.contains("`echo`"), "{out}");

    // A policy whose condition does not fit the tool's arguments: `serve` would start with
    // the tool hidden and denied; `check --live` says so as an error.
    let quarantined = temp_file(
        "check/quarantined.toml",
        &with_auth(&format!(
            "[authz]\npolicy = {}\n{}",
            lit(
                "permit(principal, action == Mcp::Action::\"s__slow\", resource) when { context.arguments.ms like \"5*\" };"
            ),
            stdio_backend("s", "")
        )),
    );
    let (ok, out) = check(&["--live"], &quarantined);
    assert!(!ok, "{out}");
    assert!(out.contains("tool `s__slow` would be quarantined"), "{out}");

    // A backend that cannot start (optional, so `serve` would run without it).
    let down = temp_file(
        "check/down.toml",
        &with_auth(
            "[[backends]]\nname = \"gone\"\ncommand = \"/nonexistent/server\"\noptional = true\n",
        ),
    );
    let (ok, out) = check(&["--live"], &down);
    assert!(!ok, "{out}");
    assert!(
        out.contains("backend `gone` did not list its tools"),
        "{out}"
    );
}

/// The configurations shipped for Kubernetes pass `check` as written, with only the
/// paths the cluster provides (the key from the Secret, the state volume) put elsewhere.
#[test]
fn the_kubernetes_configurations_pass_check() {
    let dir = crate::audit::scratch("deploy-configs");
    let keygen = Command::new(warden_exe())
        .args([
            "audit",
            "keygen",
            "--name",
            "mcp.example.com/audit",
            "--out",
        ])
        .arg(dir.join("audit"))
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::copy(
        format!("{root}/deploy/kubernetes/base/main.cedar"),
        dir.join("policies/main.cedar"),
    )
    .unwrap();
    let sessions = std::process::Command::new(warden_exe())
        .args(["sessions", "keygen"])
        .output()
        .unwrap();
    std::fs::write(dir.join("sessions.key"), &sessions.stdout).unwrap();
    for file in [
        "deploy/kubernetes/base/mcp-warden.toml",
        "deploy/kubernetes/overlays/production/mcp-warden.toml",
        "deploy/kubernetes/overlays/replicas/mcp-warden.toml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap()
            // The replicas' one file, as the pod `mcp-warden-0` reads it.
            .replace("${POD_NAME}", "mcp-warden-0")
            .replace(
                "/etc/mcp-warden/keys/mcp-warden-0.key",
                &dir.join("audit.key").display().to_string(),
            )
            .replace(
                "/etc/mcp-warden/keys/sessions.key",
                &dir.join("sessions.key").display().to_string(),
            )
            .replace(
                "/etc/mcp-warden/keys/audit.key",
                &dir.join("audit.key").display().to_string(),
            )
            .replace(
                "/var/lib/mcp-warden",
                &dir.join("state").display().to_string(),
            );
        let config = dir.join("mcp-warden.toml");
        std::fs::write(&config, text).unwrap();
        let (ok, out) = check(&[], &config);
        assert!(ok, "{file}: {out}");
    }
}

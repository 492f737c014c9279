//! The compliance team's policy commands that cannot pass vacuously: `policy test
//! --coverage` fails on a rule no case exercises and on a case naming what does not exist,
//! `policy explain` answers for every operation, and `policy format` rewrites with Cedar's
//! formatter, reporting a broken file the way `policy validate` does.

use std::process::{Command, Output};

use crate::audit::scratch;
use crate::common::*;

fn warden(args: &[&str]) -> Output {
    Command::new(warden_exe()).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A copy of the trading example set in a directory of its own.
fn trading_copy() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/trading");
    let dir = scratch("trading");
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    for file in ["policies.cedar", "tools.json", "tests/trading.toml"] {
        std::fs::copy(root.join(file), dir.join(file)).unwrap();
    }
    dir
}

#[test]
fn coverage_and_unknown_names_fail_the_tables() {
    let dir = trading_copy();
    let set = dir.to_str().unwrap();
    let covered = warden(&["policy", "test", "--policies", set, "--coverage"]);
    assert!(covered.status.success(), "{}", text(&covered));
    assert!(text(&covered).contains("coverage: 5 of 5 policies exercised"));

    // A new rule no case touches fails a coverage run (and only a coverage run).
    let mut policies = std::fs::read_to_string(dir.join("policies.cedar")).unwrap();
    policies.push_str(
        "\n@id(\"no-weekend-quotes\")\nforbid(principal, action == Mcp::Action::\"trading__get_quote\", resource)\nwhen { context.request.weekday == 0 };\n",
    );
    std::fs::write(dir.join("policies.cedar"), policies).unwrap();
    let uncovered = warden(&["policy", "test", "--policies", set, "--coverage"]);
    assert_eq!(uncovered.status.code(), Some(1), "{}", text(&uncovered));
    assert!(
        text(&uncovered).contains("not exercised by any case: `no-weekend-quotes` at"),
        "{}",
        text(&uncovered)
    );
    assert!(
        warden(&["policy", "test", "--policies", set])
            .status
            .success()
    );

    // A case whose argument is misspelt would be denied for the missing one, as expected;
    // it fails instead, naming the typo.
    let mut tables = std::fs::read_to_string(dir.join("tests/trading.toml")).unwrap();
    tables.push_str(
        "\n[[case]]\nname = \"a big trade\"\nprincipal = { id = \"tom\", roles = [\"trader\"] }\naction = \"call_tool\"\ntool = \"trading__execute_trade\"\narguments = { symbol = \"ACME\", amout = 90000, side = \"buy\" }\nexpect = \"deny\"\n",
    );
    std::fs::write(dir.join("tests/trading.toml"), tables).unwrap();
    let typo = warden(&["policy", "test", "--policies", set]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        text(&typo).contains("argument `amout` is not in `trading__execute_trade`'s input schema"),
        "{}",
        text(&typo)
    );
}

#[test]
fn explain_answers_for_every_operation() {
    let root = env!("CARGO_MANIFEST_DIR");
    let perimeter = format!("{root}/policies/perimeter");
    let explain = |principal: &str, args: &[&str]| {
        let mut all = vec![
            "policy",
            "explain",
            "--policies",
            &perimeter,
            "--principal",
            principal,
        ];
        all.extend_from_slice(args);
        warden(&all)
    };
    let engineer = r#"{"id": "erin", "roles": ["engineer"]}"#;
    let lists = explain(engineer, &["--action", "list_tools"]);
    assert!(lists.status.success(), "{}", text(&lists));
    assert!(text(&lists).contains("determining policy: engineers-list"));

    let security = r#"{"id": "sec", "roles": ["security"]}"#;
    let switch = explain(security, &["--action", "admin_switch"]);
    assert!(switch.status.success(), "{}", text(&switch));
    let switch = explain(engineer, &["--action", "admin_switch"]);
    assert_eq!(switch.status.code(), Some(1));
    assert!(text(&switch).contains("decision: deny"));

    let read = explain(
        engineer,
        &[
            "--action",
            "read_resource",
            "--backend",
            "github",
            "--uri",
            "repo://acme/readme",
        ],
    );
    assert!(text(&read).starts_with("decision: "), "{}", text(&read));
    let missing = explain(
        engineer,
        &["--action", "read_resource", "--backend", "github"],
    );
    assert!(!missing.status.success());
    assert!(text(&missing).contains("`uri` is required for `read_resource`"));
    let unknown = explain(engineer, &["--action", "delete_everything"]);
    assert!(text(&unknown).contains("unknown action `delete_everything` (one of call_tool"));
}

#[test]
fn format_rewrites_with_cedars_formatter_and_locates_broken_files() {
    let dir = trading_copy();
    let file = dir.join("policies.cedar");
    let before = std::fs::read_to_string(&file).unwrap();
    let check = warden(&["policy", "format", "--check", dir.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check).contains("policies.cedar: not formatted"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "--check writes nothing"
    );

    let format = warden(&["policy", "format", file.to_str().unwrap()]);
    assert!(format.status.success(), "{}", text(&format));
    let after = std::fs::read_to_string(&file).unwrap();
    assert_ne!(after, before);
    assert!(after.contains("// "), "comments are kept");
    // Formatted, the set decides exactly as before.
    let tables = warden(&["policy", "test", "--policies", dir.to_str().unwrap()]);
    assert!(tables.status.success(), "{}", text(&tables));
    assert!(
        warden(&["policy", "format", "--check", file.to_str().unwrap()])
            .status
            .success()
    );

    std::fs::write(
        &file,
        "permit(principal, action, resource)\nwhen { 1 + };\n",
    )
    .unwrap();
    let broken = warden(&["policy", "format", file.to_str().unwrap()]);
    assert_eq!(broken.status.code(), Some(1));
    let validate = warden(&["policy", "validate", "--policies", dir.to_str().unwrap()]);
    let location = format!("{}:2:", file.display());
    assert!(text(&broken).contains(&location), "{}", text(&broken));
    assert!(text(&validate).contains(&location), "{}", text(&validate));
}

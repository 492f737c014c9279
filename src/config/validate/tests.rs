use super::*;
use crate::config::Config;

fn errors(toml: &str) -> Vec<String> {
    Config::from_toml_str(toml)
        .unwrap_err()
        .issues
        .into_iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect()
}

#[test]
fn minimal_stdio_backend_gets_defaults() {
    let config =
        Config::from_toml_str("[[backends]]\nname = \"demo\"\ncommand = \"demo-server\"\n")
            .unwrap();
    assert_eq!(config.server.bind.to_string(), "127.0.0.1:8808");
    assert_eq!(config.server.separator, "__");
    let b = &config.backends[0];
    assert_eq!(b.namespace, "demo");
    assert!(
        matches!(&b.transport, Transport::Stdio { env_allow, .. } if env_allow.contains(&"PATH".to_owned()))
    );
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    let errs = errors(
        r#"
[server]
bind = "nowhere"
separator = "::"
[[backends]]
name = "a b"
command = "x"
url = "http://y"
[[backends]]
name = "ok"
url = "ftp://z"
hide = ["[unclosed"]
args = ["--no"]
"#,
    );
    let joined = errors_joined(&errs);
    for expected in [
        "server.bind:",
        "server.separator:",
        "backends[0].name:",
        "backends[0].url: set either",
        "backends[1].url:",
        "backends[1].hide[0]:",
        "backends[1].args: only for `command` backends",
    ] {
        assert!(
            joined.contains(expected),
            "missing `{expected}` in:\n{joined}"
        );
    }
}

fn errors_joined(errs: &[String]) -> String {
    errs.join("\n")
}

#[test]
fn names_containing_the_separator_are_rejected() {
    let errs = errors("[[backends]]\nname = \"git__hub\"\ncommand = \"x\"\n");
    assert!(errs[0].contains("contains the separator"), "{errs:?}");
}

#[test]
fn namespaces_that_could_collide_are_rejected() {
    let errs = errors(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\n[[backends]]\nname = \"a_\"\ncommand = \"y\"\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("could expose the same name")),
        "{errs:?}"
    );
}

#[test]
fn duplicate_names_and_aliases_are_rejected() {
    let errs = errors(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\naliases = { t = \"same\" }\n\
         [[backends]]\nname = \"a\"\nnamespace = \"b\"\ncommand = \"y\"\naliases = { u = \"same\" }\n",
    );
    assert!(errs.iter().any(|e| e.contains("is used twice")), "{errs:?}");
    assert!(errs.iter().any(|e| e.contains("alias `same`")), "{errs:?}");
}

#[test]
fn unknown_keys_and_missing_backends_are_errors() {
    assert!(errors("[server]\nbindd = \"x\"\n")[0].contains("unknown field"));
    assert!(errors("")[0].contains("at least one backend"));
}

#[test]
fn filters_apply_hide_over_expose() {
    let config = Config::from_toml_str(
        "[[backends]]\nname = \"a\"\ncommand = \"x\"\nexpose = [\"read_*\", \"list\"]\nhide = [\"read_secret\"]\n",
    )
    .unwrap();
    let f = &config.backends[0].filter;
    assert!(f.allows("read_file") && f.allows("list"));
    assert!(!f.allows("read_secret") && !f.allows("write_file"));
}

#[test]
fn empty_namespace_is_allowed() {
    let config =
        Config::from_toml_str("[[backends]]\nname = \"a\"\nnamespace = \"\"\ncommand = \"x\"\n")
            .unwrap();
    assert_eq!(config.backends[0].namespace, "");
}

use super::super::testkit::source;
use super::{Mode, line_column, load};

#[test]
fn ids_come_from_annotations_or_file_and_index() {
    let loaded = load(&[
        source("policies/trading.cedar", "permit(principal, action, resource);\n\n@id(\"named\")\nforbid(principal, action, resource);\npermit(principal, action, resource);"),
        source("other.cedar", "@mode(\"shadow\") permit(principal, action, resource);"),
    ])
    .unwrap_or_default();
    let ids: Vec<(&str, usize, Mode)> = loaded
        .iter()
        .map(|l| (l.id.as_str(), l.offset, l.mode))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("trading:0", 0, Mode::Enforce),
            ("named", 38, Mode::Enforce),
            ("trading:2", 88, Mode::Enforce),
            ("other:0", 0, Mode::Shadow)
        ]
    );
    assert_eq!(loaded[1].policy.id().to_string(), "named");
}

#[test]
fn duplicate_ids_are_errors_with_both_places() {
    let errors = load(&[
        source("a.cedar", "@id(\"x\") permit(principal, action, resource);"),
        source(
            "b.cedar",
            "\n\n@id(\"x\") forbid(principal, action, resource);",
        ),
    ])
    .err()
    .unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "b.cedar:3:1: duplicate policy id `x`: already used at a.cedar:1"
    );
}

#[test]
fn parse_errors_carry_file_line_and_column() {
    let errors = load(&[source("policies/bad.cedar", "permit(principal, action, resource);\n\npermit(principal, action, resource)\n  when { 1 + };\n")])
        .err()
        .unwrap_or_default();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("policies/bad.cedar", 4, 14)
    );
    assert!(
        e.message.starts_with("unexpected token `}`"),
        "{}",
        e.message
    );
    assert!(
        e.to_string()
            .starts_with("policies/bad.cedar:4:14: unexpected token"),
        "{e}"
    );
}

#[test]
fn bad_mode_and_templates_are_refused() {
    let errors = load(&[source(
        "m.cedar",
        "@mode(\"dry\") permit(principal, action, resource);",
    )])
    .err()
    .unwrap_or_default();
    assert_eq!(
        errors[0].message,
        "unknown `@mode` `dry`: expected `enforce` or `shadow`"
    );
    let errors = load(&[source(
        "t.cedar",
        "permit(principal == ?principal, action, resource);",
    )])
    .err()
    .unwrap_or_default();
    assert!(
        errors[0].message.starts_with("templates are not supported"),
        "{errors:?}"
    );
}

#[test]
fn columns_count_characters() {
    assert_eq!(line_column("ab\nçd", 5), (2, 2));
    assert_eq!(line_column("abc", 99), (1, 4));
    assert_eq!(line_column("é", 1), (1, 1));
}

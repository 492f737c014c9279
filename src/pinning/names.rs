//! Tool names two backends make look alike: the same name but for case, a Unicode
//! look-alike (Cyrillic `а` for Latin `a`, `ｒ` for `r`) or separators (`create-issue`,
//! `create_issue`, `createissue`). A model choosing by name can be steered to the wrong
//! backend's tool; the operator hears of every such pair when the tools are loaded.
//! Look-alikes are the UTS #39 confusable skeletons (`unicode-security`).

use std::collections::BTreeMap;

use unicode_security::confusable_detection::skeleton;

/// What a name looks like: its UTS #39 skeleton, lower case, without separators or
/// characters a reader does not see.
pub fn look(name: &str) -> String {
    let folded: String = skeleton(&name.to_lowercase()).collect();
    skeleton(&folded)
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Pairs of exposed names, from different backends, that look alike: `(name, backend)`
/// each, in name order.
pub fn confusable<'a>(
    tools: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<((String, String), (String, String))> {
    let mut by_look: BTreeMap<String, Vec<(&str, &str)>> = BTreeMap::new();
    for (name, backend) in tools {
        by_look.entry(look(name)).or_default().push((name, backend));
    }
    let mut pairs = Vec::new();
    for group in by_look.values_mut() {
        group.sort();
        for (i, a) in group.iter().enumerate() {
            for b in &group[i + 1..] {
                if a.1 != b.1 && a.0 != b.0 {
                    pairs.push((
                        (a.0.to_owned(), a.1.to_owned()),
                        (b.0.to_owned(), b.1.to_owned()),
                    ));
                }
            }
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_by_case_lookalikes_or_separators_are_confusable() {
        let tools = [
            ("github__create_issue", "github"),
            ("githu\u{0431}__create_issue", "evil"), // Cyrillic be: not a look-alike of b
            ("github__Create_Issue", "evil"),
            ("gith\u{0443}b__create-issue", "evil2"), // Cyrillic u looks like y, not u
            ("g\u{0456}thub__create_issue", "evil3"), // Cyrillic i
            ("github__create_issue_v2", "other"),
            ("github__delete_issue", "github"),
        ];
        let pairs = confusable(tools.iter().copied());
        let with = |name: &str| {
            pairs.iter().any(|(a, b)| {
                (a.0 == name || b.0 == name)
                    && (a.0 == "github__create_issue" || b.0 == "github__create_issue")
            })
        };
        assert!(with("github__Create_Issue"), "{pairs:?}");
        assert!(with("g\u{0456}thub__create_issue"), "{pairs:?}");
        assert!(!with("github__create_issue_v2"), "{pairs:?}");
        assert!(!with("github__delete_issue"), "{pairs:?}");
        // Two tools of one backend are that backend's own business.
        assert!(confusable([("a__x", "a"), ("a__X", "a")]).is_empty());
    }
}

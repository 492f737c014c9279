//! Reading a TOML configuration into [`FileConfig`] with every error the file has at once,
//! each at its line and column as editors count them (from 1). A syntax error stops the
//! read (nothing after it can be trusted); a field of the wrong type or an unknown key is
//! recorded, taken out, and the read goes on, so one run names them all.

use serde_path_to_error::Segment;
use toml::de::{DeTable, DeValue};

use super::file::FileConfig;
use super::{ConfigError, ConfigIssue};

/// At most this many errors are collected (a file of anything but TOML for us stops early).
const MAX_ERRORS: usize = 50;

pub(super) fn parse_toml(text: &str) -> Result<FileConfig, ConfigError> {
    let mut table = DeTable::parse(text).map_err(|e| ConfigError {
        issues: vec![issue(text, &e).1],
    })?;
    let mut issues: Vec<(usize, ConfigIssue)> = Vec::new();
    // Keys taken out, as `path.key`: their absence is this loop's doing, not an error.
    let mut removed: Vec<String> = Vec::new();
    while issues.len() < MAX_ERRORS {
        let deserializer = toml::de::Deserializer::from(table.clone());
        let e = match serde_path_to_error::deserialize::<_, FileConfig>(deserializer) {
            Ok(file) if issues.is_empty() => return Ok(file),
            Ok(_) => break,
            Err(e) => e,
        };
        let mut path: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        if let Some(field) = missing_field(inner.message()) {
            let at = dotted(&path, Some(field));
            if removed.contains(&at) {
                break;
            }
        }
        if let Some(key) = unknown_field(inner.message())
            && !matches!(path.last(), Some(Segment::Map { key: last }) if *last == key)
        {
            path.push(Segment::Map { key });
        }
        issues.push(issue(text, &inner));
        // Without the offending value the rest of the file can be read; a value that
        // cannot be taken out without moving others (an element of an array of tables)
        // ends the read.
        if !remove(table.get_mut(), &path) {
            break;
        }
        removed.push(dotted(&path, None));
    }
    // In the order of the file, as an editor shows them.
    issues.sort_by_key(|(at, _)| *at);
    Err(ConfigError {
        issues: issues.into_iter().map(|(_, issue)| issue).collect(),
    })
}

/// The error at its line and column, and its byte offset (to sort by).
fn issue(text: &str, e: &toml::de::Error) -> (usize, ConfigIssue) {
    let path = match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}")
        }
        None => "config".to_owned(),
    };
    let at = e.span().map_or(usize::MAX, |span| span.start);
    (
        at,
        ConfigIssue {
            path,
            message: e.message().to_owned(),
        },
    )
}

/// The key of serde's "unknown field `x`, expected ..." message (in case the error's path
/// stops at the table holding it).
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// The field of serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    Some(&rest[..rest.find('`')?])
}

/// `path` (and `field` under it) as one comparable string.
fn dotted(path: &[Segment], field: Option<&str>) -> String {
    let mut out: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    out.extend(field.map(str::to_owned));
    out.join(".")
}

/// Takes the value at `path` out of `table`; false when it cannot (the value is itself an
/// element of an array: taking it out would move the others and misplace later errors).
fn remove(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let [parents @ .., Segment::Map { key }] = path else {
        return false;
    };
    let mut at = table;
    let mut parents = parents.iter();
    while let Some(segment) = parents.next() {
        let Segment::Map { key } = segment else {
            return false;
        };
        let mut value = match at.get_mut(key.as_str()) {
            Some(value) => value.get_mut(),
            None => return false,
        };
        // `[[backends]]` and other arrays of tables: go through the element's index.
        while let DeValue::Array(items) = value {
            let Some(Segment::Seq { index }) = parents.next() else {
                return false;
            };
            match items.get_mut(*index) {
                Some(item) => value = item.get_mut(),
                None => return false,
            }
        }
        match value {
            DeValue::Table(next) => at = next,
            _ => return false,
        }
    }
    at.remove(key.as_str()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wrong_key_and_type_is_reported_at_its_line() {
        let text = "[server]\ncolour = \"red\"\n[admin]\nshape = 1\n[[backends]]\nname = \"a\"\n\
                    command = \"x\"\nhide = 5\n[[backends]]\nname = \"b\"\nnope = true\n";
        let e = parse_toml(text).err().unwrap();
        let found: Vec<(&str, &str)> = e
            .issues
            .iter()
            .map(|i| (i.path.as_str(), i.message.as_str()))
            .collect();
        let has = |at: &str, what: &str| found.iter().any(|(a, m)| *a == at && m.contains(what));
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(has("line 2, column 1", "`colour`"), "{found:#?}");
        assert!(has("line 4, column 1", "`shape`"), "{found:#?}");
        assert!(has("line 8, column 8", "invalid type"), "{found:#?}");
        assert!(has("line 11, column 1", "`nope`"), "{found:#?}");
    }

    #[test]
    fn a_required_field_of_the_wrong_type_is_one_error_not_two() {
        let text =
            "[[backends]]\nname = 5\ncommand = \"x\"\n[[backends]]\nname = \"b\"\nnope = 1\n";
        let e = parse_toml(text).err().unwrap();
        let messages: Vec<&str> = e.issues.iter().map(|i| i.message.as_str()).collect();
        assert!(
            !messages.iter().any(|m| m.contains("missing field")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("invalid type")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_syntax_error_is_one_error_at_its_place() {
        let e = parse_toml("[server]\nbind = \n").err().unwrap();
        assert_eq!(e.issues.len(), 1);
        assert!(e.issues[0].path.starts_with("line 2"), "{:?}", e.issues);
    }

    #[test]
    fn a_good_file_reads_as_before() {
        let text = "[server]\nbind = \"127.0.0.1:9000\"\n";
        assert_eq!(
            format!("{:?}", parse_toml(text).unwrap()),
            format!("{:?}", toml::from_str::<FileConfig>(text).unwrap())
        );
    }
}

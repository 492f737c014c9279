//! `mcp-warden policy format`: Cedar's own formatter (the engine's version), with a file
//! that does not parse reported exactly as `policy validate` reports it (`file:line:col:`).

use super::policies;
use super::types::{PolicyError, PolicySource};

/// The formatted text of one policy file (comments kept), or why it cannot be formatted.
pub fn format_policies(source: &PolicySource) -> Result<String, Vec<PolicyError>> {
    policies::load(std::slice::from_ref(source))?;
    let config = cedar_policy_formatter::Config::default();
    cedar_policy_formatter::policies_str_to_pretty(&source.text, &config).map_err(|e| {
        vec![PolicyError {
            file: source.file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot be formatted: {e}"),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> PolicySource {
        PolicySource {
            file: "p.cedar".to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn formats_keeping_comments_and_annotations_and_is_stable() {
        let messy = "// who may trade\n@id(\"t\")   permit(principal in Mcp::Role::\"trader\",action==Mcp::Action::\"trading__quote\",resource) when {context.request.hour<18};";
        let once = format_policies(&source(messy)).unwrap();
        assert!(once.contains("// who may trade"), "{once}");
        assert!(once.contains("@id(\"t\")"), "{once}");
        assert!(once.contains("context.request.hour < 18"), "{once}");
        assert_eq!(format_policies(&source(&once)).unwrap(), once);
    }

    #[test]
    fn a_file_that_does_not_parse_is_located_like_validate_says() {
        let errors = format_policies(&source(
            "permit(principal, action, resource)\nwhen { 1 + };",
        ))
        .unwrap_err();
        assert_eq!(
            (errors[0].file.as_str(), errors[0].line),
            ("p.cedar", 2),
            "{errors:?}"
        );
    }
}

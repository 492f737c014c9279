//! Guards cover more than tool calls: prompt arguments, completion arguments and resource
//! URIs on the way in; prompt messages, resource contents, completion values and a
//! backend's error messages on the way back; `max_result_bytes` for resources too.

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use serde_json::json;

use crate::common::*;

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

fn blocked_code(e: &rmcp::ServiceError) -> Option<i32> {
    match e {
        rmcp::ServiceError::McpError(e) => Some(e.code.0),
        _ => None,
    }
}

#[tokio::test]
async fn prompts_resources_and_errors_are_guarded_and_redacted() {
    let proxy = TestProxy::start(&with_auth(&format!(
        "[guards]\nredact_builtin = [\"email\"]\nenabled_rules = [\"path_traversal\"]\n{}",
        stdio_backend("s", "")
    )))
    .await;
    let (client, _) = connect(&proxy.url).await;
    let peer = client.peer();
    let prompt = |arg1: &str| {
        let mut arguments = serde_json::Map::new();
        arguments.insert("arg1".into(), json!(arg1));
        arguments.insert("arg2".into(), json!("x"));
        GetPromptRequestParams::new("s__test_prompt_with_arguments").with_arguments(arguments)
    };

    // In: a secret in a prompt argument never reaches the backend.
    let refused = peer.get_prompt(prompt(AWS_KEY)).await.unwrap_err();
    assert_eq!(
        blocked_code(&refused),
        Some(mcp_warden::error::BLOCKED.0),
        "{refused:?}"
    );
    assert!(!refused.to_string().contains(AWS_KEY));

    // Back: the prompt's messages are redacted.
    let answer = peer
        .get_prompt(prompt("mail eve@example.com"))
        .await
        .unwrap();
    let text = serde_json::to_string(&answer).unwrap();
    assert!(!text.contains("eve@example.com"), "{text}");
    assert!(text.contains("[redacted:email]"), "{text}");

    // In: a resource URI spelling a sensitive path another way is blocked (`..` where the
    // operator switched the traversal rule on).
    for uri in [
        "s+test://template/%2Fetc%2Fshadow/data",
        "s+test://template/..%2f..%2fetc/data",
    ] {
        let refused = peer
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap_err();
        assert_eq!(
            blocked_code(&refused),
            Some(mcp_warden::error::BLOCKED.0),
            "{uri}: {refused:?}"
        );
    }

    // Back: resource contents are redacted.
    let contents = peer
        .read_resource(ReadResourceRequestParams::new(
            "s+test://template/eve@example.com/data",
        ))
        .await
        .unwrap();
    let text = serde_json::to_string(&contents).unwrap();
    assert!(text.contains("Data for ID: [redacted:email]"), "{text}");

    // Back: a backend's error message and data are redacted too.
    let error = peer
        .read_resource(ReadResourceRequestParams::new(
            "s+test://nope/eve@example.com",
        ))
        .await
        .unwrap_err();
    let text = format!("{error:?}");
    assert!(!text.contains("eve@example.com"), "{text}");
    assert!(text.contains("[redacted:email]"), "{text}");
}

#[tokio::test]
async fn max_result_bytes_applies_to_resources() {
    let proxy = TestProxy::start(&with_auth(&format!(
        "[guards]\nmax_result_bytes = 64\n{}",
        stdio_backend("s", "")
    )))
    .await;
    let (client, _) = connect(&proxy.url).await;
    let refused = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("s+test://static-binary"))
        .await
        .unwrap_err();
    assert_eq!(
        blocked_code(&refused),
        Some(mcp_warden::error::BLOCKED.0),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("max_result_bytes"),
        "{refused}"
    );
}

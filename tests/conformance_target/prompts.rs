//! Prompts: a plain one, one with arguments, one embedding a resource, one with an image.

use rmcp::{
    ErrorData as McpError,
    model::{
        ContentBlock, GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage,
        ResourceContents, Role,
    },
};

use crate::fixtures::{PNG_BASE64, string_argument};

const SIMPLE: &str = "test_simple_prompt";
pub const PROMPT_WITH_ARGUMENTS: &str = "test_prompt_with_arguments";
const WITH_EMBEDDED_RESOURCE: &str = "test_prompt_with_embedded_resource";
const WITH_IMAGE: &str = "test_prompt_with_image";

fn required_argument(name: &str, description: &str) -> PromptArgument {
    PromptArgument::new(name)
        .with_description(description)
        .with_required(true)
}

pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(SIMPLE, Some("A simple prompt without arguments"), None),
        Prompt::new(
            PROMPT_WITH_ARGUMENTS,
            Some("A prompt with required arguments"),
            Some(vec![
                required_argument("arg1", "First test argument"),
                required_argument("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            WITH_EMBEDDED_RESOURCE,
            Some("A prompt that includes an embedded resource"),
            Some(vec![required_argument(
                "resourceUri",
                "URI of the resource to embed",
            )]),
        ),
        Prompt::new(
            WITH_IMAGE,
            Some("A prompt that includes image content"),
            None,
        ),
    ]
}

pub fn get(name: &str, arguments: &JsonObject) -> Result<GetPromptResult, McpError> {
    let messages = match name {
        SIMPLE => vec![user_text("This is a simple prompt for testing.")],
        PROMPT_WITH_ARGUMENTS => {
            let arg1 = string_argument(arguments, "arg1")?;
            let arg2 = string_argument(arguments, "arg2")?;
            vec![user_text(format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            ))]
        }
        WITH_EMBEDDED_RESOURCE => {
            let uri = string_argument(arguments, "resourceUri")?;
            let resource = ResourceContents::text("Embedded resource content for testing.", uri);
            vec![
                PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                user_text("Please process the embedded resource above."),
            ]
        }
        WITH_IMAGE => vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG_BASE64, "image/png")),
            user_text("Please analyze the image above."),
        ],
        _ => {
            return Err(McpError::invalid_params(
                format!("Unknown prompt: {name}"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(messages))
}

fn user_text(text: impl Into<String>) -> PromptMessage {
    PromptMessage::new_text(Role::User, text)
}

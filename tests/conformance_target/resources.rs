//! Resources: two static ones, one meant for subscriptions, and a URI template.

use rmcp::{
    ErrorData as McpError,
    model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate},
};
use serde_json::json;

use crate::fixtures::PNG_BASE64;

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
pub const TEMPLATE_URI: &str = "test://template/{id}/data";

pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT_URI, "static-text")
            .with_description("A static text resource for testing")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY_URI, "static-binary")
            .with_description("A static binary resource (image) for testing")
            .with_mime_type("image/png"),
        Resource::new(WATCHED_URI, "watched-resource")
            .with_description("A resource that can be subscribed to")
            .with_mime_type("text/plain"),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE_URI, "template")
            .with_description("A resource template with parameter substitution")
            .with_mime_type("application/json"),
    ]
}

pub fn read(uri: &str) -> Result<ReadResourceResult, McpError> {
    let contents = match uri {
        STATIC_TEXT_URI => {
            ResourceContents::text("This is the content of the static text resource.", uri)
        }
        STATIC_BINARY_URI => ResourceContents::blob(PNG_BASE64, uri).with_mime_type("image/png"),
        WATCHED_URI => ResourceContents::text("Watched resource content", uri),
        _ => read_template(uri)?,
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// Reads `test://template/{id}/data`.
fn read_template(uri: &str) -> Result<ResourceContents, McpError> {
    let id = template_id(uri).ok_or_else(|| {
        McpError::resource_not_found(
            format!("Resource not found: {uri}"),
            Some(json!({"uri": uri})),
        )
    })?;
    let body = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
    Ok(ResourceContents::text(body.to_string(), uri).with_mime_type("application/json"))
}

fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

//! `ask_llm`: asks the client's LLM to answer a prompt, exercising SEP-2322
//! multi round-trip requests (MRTR) of MCP revision 2026-07-28.
//!
//! On 2026-07-28 and later there is no session to send a server-to-client request
//! over, so the first call returns an `input_required` result holding one
//! `sampling/createMessage` request under the key `sample` plus the request state
//! `round-1`; the client samples, then retries the call with its answer under
//! `inputResponses.sample` and the state echoed back. On older revisions the tool
//! sends `sampling/createMessage` to the client directly, mid-call.
//!
//! Either way the final result is the text `ask_llm: <sampled text>`; any failure is a
//! tool error result (`isError: true`) saying what went wrong.

use rmcp::{
    RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
        CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, InputRequest,
        InputRequests, InputRequiredResult, InputResponses, ProtocolVersion, SamplingMessage,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::{fixtures::text_result, tools::tool};

pub const NAME: &str = "ask_llm";

/// The key of the sampling request in `inputRequests` and of its answer in
/// `inputResponses`.
const SAMPLE_KEY: &str = "sample";

/// The opaque state handed out with the input request and expected back on retry.
const REQUEST_STATE: &str = "round-1";

const MAX_TOKENS: u32 = 50;

pub fn definition() -> rmcp::model::Tool {
    tool(
        NAME,
        "Asks the client's LLM to answer `prompt` (sampling; via an input_required \
         result on protocol 2026-07-28+) and returns `ask_llm: <answer>`",
        json!({
            "type": "object",
            "properties": {
                "prompt": {"type": "string", "description": "The prompt to send to the LLM"},
            },
            "required": ["prompt"],
        }),
    )
}

/// Runs `ask_llm`; failures become a tool error result.
pub async fn call(
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> CallToolResponse {
    run(request, context).await.unwrap_or_else(|message| {
        CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(format!(
            "{NAME} failed: {message}"
        ))]))
    })
}

async fn run(
    request: CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, String> {
    let prompt = request
        .arguments
        .as_ref()
        .and_then(|arguments| arguments.get("prompt"))
        .and_then(Value::as_str)
        .ok_or("argument `prompt` must be a string")?;
    if !uses_mrtr(context) {
        let result = context
            .peer
            .create_message(sampling_params(prompt))
            .await
            .map_err(|error| format!("sampling/createMessage failed: {error}"))?;
        return answer(&result);
    }
    match request.input_responses {
        Some(responses) if !responses.is_empty() => {
            check_request_state(request.request_state.as_deref())?;
            answer(&sampled(&responses)?)
        }
        _ => Ok(CallToolResponse::InputRequired(input_required(prompt))),
    }
}

/// Whether the request's negotiated protocol is 2026-07-28 or later. Revisions are
/// dated `YYYY-MM-DD`, so they order lexically.
fn uses_mrtr(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|version| version.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

fn sampling_params(prompt: &str) -> CreateMessageRequestParams {
    CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], MAX_TOKENS)
}

/// The first round: one sampling request under [`SAMPLE_KEY`], plus [`REQUEST_STATE`].
fn input_required(prompt: &str) -> InputRequiredResult {
    let request = InputRequest::CreateMessage(CreateMessageRequest::new(sampling_params(prompt)));
    let requests = InputRequests::from([(SAMPLE_KEY.to_owned(), request)]);
    InputRequiredResult::new(Some(requests), Some(REQUEST_STATE.to_owned()))
}

fn check_request_state(state: Option<&str>) -> Result<(), String> {
    match state {
        Some(REQUEST_STATE) => Ok(()),
        Some(other) => Err(format!(
            "unexpected requestState {other:?} (expected {REQUEST_STATE:?})"
        )),
        None => Err(format!(
            "the retry carries inputResponses but no requestState (expected {REQUEST_STATE:?})"
        )),
    }
}

/// The client's `CreateMessageResult` for [`SAMPLE_KEY`].
fn sampled(responses: &InputResponses) -> Result<CreateMessageResult, String> {
    let response = responses
        .get(SAMPLE_KEY)
        .ok_or_else(|| format!("inputResponses has no `{SAMPLE_KEY}` entry"))?;
    serde_json::from_value(response.clone()).map_err(|error| {
        format!("inputResponses.{SAMPLE_KEY} is not a CreateMessageResult: {error}")
    })
}

/// `ask_llm: <text>` from the sampled message's first content block.
fn answer(result: &CreateMessageResult) -> Result<CallToolResponse, String> {
    let text = result
        .message
        .content
        .first()
        .and_then(|block| block.as_text())
        .ok_or("the sampled message has no text content")?;
    Ok(CallToolResponse::Complete(text_result(format!(
        "{NAME}: {}",
        text.text
    ))))
}

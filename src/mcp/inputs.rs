//! Input-required results (SEP-2322, MCP 2026-07-28) across revisions. A backend on
//! 2026-07-28 asks for client input (sampling, elicitation, roots) by returning an
//! input-required result instead of sending a request. A client on 2026-07-28 gets that
//! result as it is and retries with its answers; for a client on an older revision the proxy
//! asks the client itself, over the session, and retries on its behalf.

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolRequestParams, ClientResult, ErrorCode, GetPromptRequestParams, InputRequest,
        InputRequiredResult, InputResponses, ProtocolVersion, ReadResourceRequestParams,
        ServerRequest,
    },
    service::RequestContext,
};

/// Rounds of input a single request may need before the proxy gives up.
pub const MAX_INPUT_ROUNDS: usize = 8;

/// Request parameters that can carry the answers of an input round.
pub trait InputRound: Clone {
    fn set_inputs(&mut self, responses: InputResponses, state: Option<String>);
}

macro_rules! input_round {
    ($($t:ty),*) => {$(
        impl InputRound for $t {
            fn set_inputs(&mut self, responses: InputResponses, state: Option<String>) {
                self.input_responses = Some(responses);
                self.request_state = state;
            }
        }
    )*};
}

input_round!(
    CallToolRequestParams,
    GetPromptRequestParams,
    ReadResourceRequestParams
);

/// Whether the client of this request speaks 2026-07-28 (and so handles input-required
/// results itself).
pub fn client_handles_inputs(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// Asks the client, over its session, for every input the backend requested.
pub async fn ask_client(
    ctx: &RequestContext<RoleServer>,
    required: InputRequiredResult,
) -> Result<(InputResponses, Option<String>), McpError> {
    let mut responses = InputResponses::new();
    for (key, request) in required.input_requests.unwrap_or_default() {
        let request = match request {
            InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
            InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
            InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
            #[allow(unreachable_patterns)]
            _ => return Err(error(format!("input `{key}`: unsupported request"))),
        };
        let answer = ctx
            .peer
            .send_request(request)
            .await
            .map_err(|e| error(format!("input `{key}`: the client did not answer: {e}")))?;
        let value = match answer {
            ClientResult::CreateMessageResult(r) => serde_json::to_value(r),
            ClientResult::ElicitResult(r) => serde_json::to_value(r),
            ClientResult::ListRootsResult(r) => serde_json::to_value(r),
            _ => {
                return Err(error(format!(
                    "input `{key}`: unexpected answer from the client"
                )));
            }
        }
        .map_err(|e| error(format!("input `{key}`: {e}")))?;
        responses.insert(key, value);
    }
    Ok((responses, required.request_state))
}

fn error(message: String) -> McpError {
    McpError::new(ErrorCode::INTERNAL_ERROR, message, None)
}

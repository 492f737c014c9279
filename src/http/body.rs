//! The body read deadline: a request's whole body must arrive within
//! `server.body_read_timeout_ms` of its head (408 otherwise) and be at most
//! `server.max_body_bytes` (413). A client trickling a byte at a time cannot hold a
//! connection and a buffer for longer than that.
//!
//! Why read the body here: rmcp reads it whole anyway (it needs the JSON-RPC message), so
//! reading it under a deadline first costs no copy, and the deadline covers the whole body
//! rather than the gap between two chunks (a per-chunk timeout never fires on a byte every
//! second).

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::endpoint::Next;
use crate::telemetry::{Metrics, Rejection};

pub struct BodyLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
    pub metrics: Arc<Metrics>,
}

pub async fn read_body(limits: Arc<BodyLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, limits.max_bytes).collect();
    let bytes = match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            limits.metrics.reject(Rejection::BodyTooLarge);
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "request body unreadable"),
        Err(_) => {
            limits.metrics.reject(Rejection::BodyTimeout);
            return refuse(StatusCode::REQUEST_TIMEOUT, "request body too slow");
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A refusal that also closes the connection: what is left of the body is never read.
fn refuse(status: StatusCode, error: &str) -> Response {
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

//! A call answered on an event stream (`text/event-stream`): what the backend sends for
//! the call, in order, then its result. The stream opens with a priming event (an id, a
//! retry interval, no data, as SEP-1699 recommends), and every event carries an id
//! `w<stream>/<index>`: a client that lost the stream resumes it with a GET carrying
//! `Last-Event-ID`, and gets every event after that one ([`resume`]) — for 30 s after the
//! call's answer, at most 16 streams per session (`mcp::live`).
//!
//! A task of its own moves the call's messages into the stream's log, so the call goes on
//! (and is recorded) whether or not the client is still reading.

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rmcp::model::{RequestId, ServerJsonRpcMessage};
use tokio::sync::mpsc;

use super::detached::Detached;

use crate::{
    backend::ToClient,
    mcp::live::{LiveSession, StreamLog},
};

/// How long a client waits before it reconnects a lost stream.
const RETRY_MS: u64 = 1000;

/// Answers a call on an event stream, starting with `first` (if the backend already sent
/// something) and ending with the call's result.
pub fn answer(
    session: Arc<LiveSession>,
    first: Option<ToClient>,
    rx: mpsc::Receiver<ToClient>,
    task: Detached,
) -> Response {
    let (number, log) = session.open_stream();
    log.push(Bytes::from(format!(
        "id: w{number}/0\nretry: {RETRY_MS}\ndata: \n\n"
    )));
    let mut pump = Pump {
        session,
        number,
        log: log.clone(),
        asked: Vec::new(),
    };
    if let Some(first) = first {
        pump.push(first);
    }
    tokio::spawn(pump.run(rx, task));
    respond(log, 0)
}

/// Resumes a call stream after the event `last_event_id` names; `None` when it is not one
/// of this session's kept streams (rmcp answers then).
pub fn resume(session: &LiveSession, last_event_id: &str) -> Option<Response> {
    let (number, index) = last_event_id.strip_prefix('w')?.split_once('/')?;
    let (number, index) = (number.parse().ok()?, index.parse::<usize>().ok()?);
    let log = session.stream(number)?;
    if index >= log.len() {
        return Some(StatusCode::BAD_REQUEST.into_response());
    }
    Some(respond(log, index + 1))
}

fn respond(log: Arc<StreamLog>, from: usize) -> Response {
    let body = futures::stream::unfold((log, from), |(log, next)| async move {
        let event = log.get(next).await?;
        Some((Ok::<_, Infallible>(event), (log, next + 1)))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Moves a call's messages, then its result, into its stream's log.
struct Pump {
    session: Arc<LiveSession>,
    number: u64,
    log: Arc<StreamLog>,
    /// Requests sent on this stream, forgotten when the call ends.
    asked: Vec<String>,
}

impl Pump {
    fn push(&mut self, item: ToClient) {
        let message = match item {
            ToClient::Notify(notification) => ServerJsonRpcMessage::notification(*notification),
            ToClient::Ask(ask) => {
                let (request, answer) = *ask;
                let id = self.session.ask(answer);
                self.asked.push(id.clone());
                ServerJsonRpcMessage::request(request, RequestId::String(id.into()))
            }
        };
        self.event(&crate::envelope::to_vec(&message).unwrap_or_default());
    }

    fn event(&self, data: &[u8]) {
        let id = format!("id: w{}/{}\ndata: ", self.number, self.log.len());
        let mut event = Vec::with_capacity(id.len() + data.len() + 2);
        event.extend_from_slice(id.as_bytes());
        event.extend_from_slice(data);
        event.extend_from_slice(b"\n\n");
        self.log.push(Bytes::from(event));
    }

    async fn run(mut self, mut rx: mpsc::Receiver<ToClient>, mut task: Detached) {
        let result = loop {
            tokio::select! {
                biased;
                Some(item) = rx.recv() => self.push(item),
                done = &mut task => break done,
            }
        };
        // What the backend sent before its answer goes first.
        while let Ok(item) = rx.try_recv() {
            self.push(item);
        }
        self.event(&result);
        self.log.finish();
        self.session.forget(&self.asked);
    }
}

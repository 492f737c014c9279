//! A stdio backend's pipes, owned by the proxy. One reader takes the child's lines in
//! order and reads each one's envelope once: the answer to a call sent here
//! ([`Pipe::request`], ids of the proxy's own, `<boot>-<n>`) goes to that call as bytes and
//! is parsed once; a call's progress and log messages, list changes and resource updates
//! go to the relay right there, so a call's notifications reach its client before its
//! answer; everything else (answers to rmcp's own requests, the backend's requests for
//! sampling, elicitation or roots) goes to rmcp's client, which keeps the handshake, the
//! lists and server requests. Lines to the child, from calls and from rmcp's client alike,
//! are written by the task that sends them ([`input`]).
//!
//! Where this sits: opened by [`super::connect`] for stdio backends; calls reach it from
//! [`super::Backend::request`], as calls to HTTP backends reach [`super::direct`].

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use rmcp::{
    RoleClient,
    model::{
        CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification, ClientRequest,
        ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification, ServerResult,
    },
    transport::Transport,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    net::unix::pipe,
    process::{Child, ChildStderr},
    sync::{mpsc, oneshot},
};
use tokio_util::sync::CancellationToken;

use self::input::Input;
use super::{Origin, relay::Relay};
use crate::sync::Locked;
use crate::{envelope::Envelope, error::CallError};

mod input;

/// The longest line read from a backend (a tool's result included).
const MAX_LINE: usize = 64 * 1024 * 1024;
/// How long a child may take to exit once its stdin is closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

type Waiting = Arc<Mutex<HashMap<Arc<str>, oneshot::Sender<Vec<u8>>>>>;

/// Where calls are sent on one child's pipes.
#[derive(Clone)]
pub struct Pipe {
    input: Arc<Input>,
    waiting: Waiting,
}

/// rmcp's side of the pipes: what it sends is written as lines; it receives what the
/// reader does not take itself.
pub struct PipeTransport {
    child: Option<Child>,
    /// `None` once closed (calls may still hold the input: closing it ends their lines).
    input: Option<Arc<Input>>,
    for_rmcp: mpsc::UnboundedReceiver<ServerJsonRpcMessage>,
}

/// Starts `cmd` with its stdio piped; `relay` takes what the reader relays itself.
pub fn spawn(
    mut cmd: tokio::process::Command,
    relay: Relay,
) -> std::io::Result<(PipeTransport, Pipe, Option<ChildStderr>)> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(std::io::Error::other("the child's stdio was not piped"));
    };
    let stderr = child.stderr.take();
    let stdin = pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)?;
    let (transport, pipe) = attach(stdout, stdin, Some(child), relay);
    Ok((transport, pipe, stderr))
}

/// The pipes of a server in this process: its output read, its input written, as a
/// child's are (through an OS pipe, copied to the server's end by a task of its own).
pub fn in_memory(
    io: tokio::io::DuplexStream,
    relay: Relay,
) -> std::io::Result<(PipeTransport, Pipe)> {
    let (output, mut server_input) = tokio::io::split(io);
    let (sender, mut receiver) = pipe::pipe()?;
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut receiver, &mut server_input).await;
        // Closed: the server reads the end of its input.
        let _ = server_input.shutdown().await;
    });
    Ok(attach(output, sender, None, relay))
}

fn attach(
    output: impl AsyncRead + Unpin + Send + 'static,
    input: pipe::Sender,
    child: Option<Child>,
    relay: Relay,
) -> (PipeTransport, Pipe) {
    let (to_rmcp, for_rmcp) = mpsc::unbounded_channel();
    let waiting = Waiting::default();
    let input = Input::new(input);
    tokio::spawn(read(output, to_rmcp, waiting.clone(), relay));
    (
        PipeTransport {
            child,
            input: Some(input.clone()),
            for_rmcp,
        },
        Pipe { input, waiting },
    )
}

impl Pipe {
    /// Sends one request and waits for its answer (at most `timeout`). A cancel from the
    /// client (`cancel`), or the caller giving up, sends `notifications/cancelled`.
    pub async fn request(
        &self,
        name: &str,
        request: &mut ClientRequest,
        origin: &Arc<Origin>,
        relay: &Relay,
        (cancel, timeout): (&CancellationToken, Duration),
    ) -> Result<ServerResult, CallError> {
        let key: Arc<str> = crate::ids::request_id().into();
        let id = RequestId::String(key.clone());
        let tool = matches!(request, ClientRequest::CallToolRequest(_));
        let mut line = super::direct::frame(&id, request, origin)?;
        line.push(b'\n');
        let (tx, answer) = oneshot::channel();
        self.waiting.locked().insert(key.clone(), tx);
        // Known to the relay for the whole call: progress by token, and what the backend
        // asks while only this session has calls in flight.
        let token = ProgressToken(id.clone());
        let _registration = relay.inflight.register(id.clone(), token, origin.clone());
        let mut guard = Abandon {
            pipe: Some(self.clone()),
            key,
        };
        if self.input.send(line).is_err() {
            return Err(CallError::Closed(name.to_owned()));
        }
        let outcome = tokio::select! {
            answer = answer => answer,
            _ = cancel.cancelled() => return Err(CallError::Cancelled),
            _ = tokio::time::sleep(timeout) => return Err(CallError::Timeout {
                backend: name.to_owned(),
                ms: timeout.as_millis() as u64,
            }),
        };
        guard.pipe = None;
        let line = outcome.map_err(|_| CallError::Closed(name.to_owned()))?;
        super::direct::answer(name, &line, &id, tool).unwrap_or_else(|| {
            Err(CallError::Internal(format!(
                "{name} sent an answer that is not a JSON-RPC response"
            )))
        })
    }

    fn send_message(&self, message: &ClientJsonRpcMessage) {
        if let Ok(mut line) = crate::envelope::to_vec(message) {
            line.push(b'\n');
            let _ = self.input.send(line);
        }
    }
}

/// A call given up before its answer: forgotten, and the backend told.
struct Abandon {
    pipe: Option<Pipe>,
    key: Arc<str>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        pipe.waiting.locked().remove(&self.key);
        let params = CancelledNotificationParam::new(
            Some(RequestId::String(self.key.clone())),
            Some("cancelled by the client".to_owned()),
        );
        pipe.send_message(&ClientJsonRpcMessage::notification(
            ClientNotification::CancelledNotification(rmcp::model::CancelledNotification::new(
                params,
            )),
        ));
    }
}

/// Reads the child's lines in order (see the module's description). Ends when the child
/// closes its stdout: calls waiting fail, and rmcp's client sees its transport close.
async fn read(
    stdout: impl AsyncRead + Unpin,
    to_rmcp: mpsc::UnboundedSender<ServerJsonRpcMessage>,
    waiting: Waiting,
    relay: Relay,
) {
    let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut stdout, &mut line).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                tracing::warn!(backend = %relay.name, error = %e, "reading the backend's output failed");
                break;
            }
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match route(text, &waiting) {
            Route::Answer(tx) => {
                let _ = tx.send(std::mem::take(&mut line));
            }
            Route::Relay => relay_here(text, &relay, &to_rmcp).await,
            Route::Rmcp => match serde_json::from_slice::<ServerJsonRpcMessage>(text) {
                Ok(message) => {
                    let _ = to_rmcp.send(message);
                }
                Err(e) => {
                    tracing::debug!(backend = %relay.name, error = %e, "unreadable line from the backend, skipped")
                }
            },
        }
    }
    waiting.locked().clear();
}

enum Route {
    /// The answer to a call sent here.
    Answer(oneshot::Sender<Vec<u8>>),
    /// A notification the relay takes in order.
    Relay,
    Rmcp,
}

fn route(text: &[u8], waiting: &Waiting) -> Route {
    let Some(envelope) = Envelope::parse(text) else {
        return Route::Rmcp;
    };
    match (&envelope.method, &envelope.id) {
        (None, Some(RequestId::String(id))) => match waiting.locked().remove(&**id) {
            Some(tx) => Route::Answer(tx),
            None => Route::Rmcp,
        },
        (Some(method), None)
            if matches!(
                &**method,
                "notifications/progress"
                    | "notifications/message"
                    | "notifications/resources/updated"
                    | "notifications/tools/list_changed"
                    | "notifications/prompts/list_changed"
                    | "notifications/resources/list_changed"
            ) =>
        {
            Route::Relay
        }
        _ => Route::Rmcp,
    }
}

/// A notification for the relay, handled before the next line is read.
async fn relay_here(
    text: &[u8],
    relay: &Relay,
    to_rmcp: &mpsc::UnboundedSender<ServerJsonRpcMessage>,
) {
    let notification = match serde_json::from_slice::<ServerJsonRpcMessage>(text) {
        Ok(ServerJsonRpcMessage::Notification(n)) => n.notification,
        Ok(other) => {
            let _ = to_rmcp.send(other);
            return;
        }
        Err(e) => {
            tracing::debug!(backend = %relay.name, error = %e, "unreadable notification from the backend, skipped");
            return;
        }
    };
    // A log message says nothing of its call: the only session with calls in flight.
    let origin = match &notification {
        ServerNotification::LoggingMessageNotification(_) => relay
            .inflight
            .origin_of_notification(&rmcp::model::Extensions::new()),
        _ => None,
    };
    relay.notification(notification, origin).await;
}

/// One line into `line` (without bounding what a well-behaved backend sends: up to
/// [`MAX_LINE`]); `false` at the end of the output.
async fn read_line(
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > MAX_LINE {
            return Err(std::io::Error::other("a line longer than 64 MiB"));
        }
        line.extend_from_slice(chunk);
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}

impl Transport<RoleClient> for PipeTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let sent = match (&self.input, crate::envelope::to_vec(&item)) {
            (Some(input), Ok(mut line)) => {
                line.push(b'\n');
                input
                    .send(line)
                    .map_err(|_| std::io::Error::other("the backend's stdin is closed"))
            }
            (None, _) => Err(std::io::Error::other("the transport is closed")),
            (_, Err(e)) => Err(std::io::Error::other(e)),
        };
        std::future::ready(sent)
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.for_rmcp.recv()
    }

    /// Closes the child's stdin, waits for the child to exit, then kills it.
    async fn close(&mut self) -> Result<(), Self::Error> {
        if let Some(input) = self.input.take() {
            input.close();
        }
        if let Some(mut child) = self.child.take()
            && tokio::time::timeout(EXIT_GRACE, child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
        Ok(())
    }
}

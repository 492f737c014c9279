//! A call's event stream from a streamable-HTTP backend, read as the SSE format says
//! (HTML Living Standard, "Server-sent events", parsing an event stream): lines end at CRLF,
//! LF or CR; `data` lines join with LF; `id` (ignored when it holds NUL), `event` and
//! `retry` (digits only) set their field; comments, unknown fields and a bad `retry` are
//! skipped; a blank line ends the event. A leading byte-order mark is dropped.
//!
//! Where this sits: [`super::Endpoint`] reads a call's answer through it (and a resumed
//! stream). Line ends are found with `memchr`, not a byte at a time (a 64 KiB result is one
//! line), and an event is bounded: one that would hold more than its limit ends the stream
//! with an error instead of growing the proxy's memory. Every event that sets a field is
//! handed on, one without data too: its `id` is where a closed stream resumes.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use sse_stream::Sse;

/// The events of `body`, each at most `max` bytes (its data, id and event name, and the
/// line being read). An error is the stream's last item.
pub(super) fn events(
    body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    max: usize,
) -> BoxStream<'static, Result<Sse, String>> {
    futures::stream::unfold(
        (body, Parser::new(max)),
        |(mut body, mut parser)| async move {
            loop {
                if let Some(item) = parser.queue.pop_front() {
                    return Some((item, (body, parser)));
                }
                if parser.ended {
                    return None;
                }
                match body.next().await {
                    Some(Ok(chunk)) => parser.feed(&chunk),
                    Some(Err(e)) => parser.fail(format!("reading the event stream: {e}")),
                    // An event the stream ends inside is dropped, as the format says.
                    None => parser.ended = true,
                }
            }
        },
    )
    .boxed()
}

/// The parser's state between chunks.
pub(super) struct Parser {
    /// The line so far, when a chunk ended inside it.
    line: Vec<u8>,
    /// The last chunk ended with CR: a LF at the start of the next ends the same line.
    skip_lf: bool,
    /// No line has ended yet (the first may start with a byte-order mark).
    first: bool,
    /// The fields of the event being read, if any was set.
    event: Option<Sse>,
    /// Bytes the event holds so far.
    held: usize,
    max: usize,
    pub queue: VecDeque<Result<Sse, String>>,
    /// Nothing more is read: the body ended, or an error was queued.
    pub ended: bool,
}

impl Parser {
    pub fn new(max: usize) -> Parser {
        Parser {
            line: Vec::new(),
            skip_lf: false,
            first: true,
            event: None,
            held: 0,
            max,
            queue: VecDeque::new(),
            ended: false,
        }
    }

    /// Reads `bytes`, queueing each event it completes.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        // An empty chunk (a body may yield one) leaves a pending CR's LF pending.
        if self.ended || bytes.is_empty() {
            return;
        }
        if std::mem::take(&mut self.skip_lf) && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        while !bytes.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) else {
                if self.fits(bytes.len()) {
                    self.line.extend_from_slice(bytes);
                }
                return;
            };
            if !self.fits(end) {
                return;
            }
            if self.line.is_empty() {
                self.line_ended(&bytes[..end]);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&bytes[..end]);
                self.line_ended(&line);
                line.clear();
                self.line = line;
            }
            if self.ended {
                return;
            }
            let cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
        }
    }

    /// Queues `error` as the last item.
    pub fn fail(&mut self, error: String) {
        self.queue.push_back(Err(error));
        self.ended = true;
        self.line = Vec::new();
        self.event = None;
    }

    /// Whether `more` bytes of a line still fit the event; fails the stream if not.
    fn fits(&mut self, more: usize) -> bool {
        if self.held + self.line.len() + more <= self.max {
            return true;
        }
        self.fail(format!(
            "an event on the backend's stream is larger than {} bytes",
            self.max
        ));
        false
    }

    fn line_ended(&mut self, mut line: &[u8]) {
        if std::mem::take(&mut self.first) {
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            if let Some(event) = self.event.take() {
                self.queue.push_back(Ok(event));
            }
            self.held = 0;
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(0) => return, // a comment
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let text = || std::str::from_utf8(value).map_err(|_| ());
        match name {
            b"data" => {
                let Ok(text) = text() else {
                    return self.not_utf8();
                };
                let event = self.event.get_or_insert_default();
                match &mut event.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(text);
                    }
                    None => event.data = Some(text.to_owned()),
                }
                self.held += text.len() + 1;
            }
            b"event" => {
                let Ok(text) = text() else {
                    return self.not_utf8();
                };
                self.held += text.len();
                self.event.get_or_insert_default().event = Some(text.to_owned());
            }
            b"id" if !value.contains(&0) => {
                let Ok(text) = text() else {
                    return self.not_utf8();
                };
                self.held += text.len();
                self.event.get_or_insert_default().id = Some(text.to_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits beyond u64 are no retry the proxy could keep: skipped.
                if let Some(ms) = text().ok().and_then(|t| t.parse().ok()) {
                    self.event.get_or_insert_default().retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn not_utf8(&mut self) {
        self.fail("the backend's event stream is not UTF-8".to_owned());
    }
}

#[cfg(test)]
mod tests;

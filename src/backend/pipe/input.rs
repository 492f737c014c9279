//! A stdio backend's input: lines handed over by calls (and by rmcp's client) written on
//! the child's stdin in the order they were handed over, several at once when several
//! are waiting. A line is queued and a task writes the queue: it first lets the tasks that
//! are ready on its thread run (`yield_now`), so the calls that arrive together go out in
//! one `writev`, and the child wakes and reads once for all of them instead of once each.
//! What the pipe cannot take at once (the child is behind, or a line is longer than the
//! pipe's buffer) is written as the pipe makes room; lines handed over meanwhile queue
//! behind it, so lines are never interleaved or reordered.
//!
//! Where this sits: the writing half of [`super::Pipe`], under every call to a stdio
//! backend and every message rmcp's client sends it.

use std::{
    io::{self, IoSlice},
    mem,
    sync::{Arc, Mutex},
};

use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::sync::Locked;

/// The most lines one `writev` takes (well under `IOV_MAX`).
const MAX_SLICES: usize = 64;

/// The child's stdin, shared by everything that writes to it.
pub(super) struct Input {
    state: Mutex<State>,
    /// Cancelled by [`Input::close`]: the task writing the queue stops.
    closed: CancellationToken,
}

struct State {
    /// `None` once closed, or once a write failed (the child is gone).
    sender: Option<Arc<pipe::Sender>>,
    /// Lines handed over that the writing task has not taken yet.
    queue: Vec<Vec<u8>>,
    /// A task is writing (or about to write) the queue.
    draining: bool,
}

/// The child's stdin is closed: nothing more can be written.
#[derive(Debug)]
pub(super) struct Closed;

impl Input {
    pub(super) fn new(sender: pipe::Sender) -> Arc<Input> {
        Arc::new(Input {
            state: Mutex::new(State {
                sender: Some(Arc::new(sender)),
                queue: Vec::new(),
                draining: false,
            }),
            closed: CancellationToken::new(),
        })
    }

    /// Hands one line (its newline included) to the child: queued, and written by the
    /// task that writes the queue (started here if none is).
    pub(super) fn send(self: &Arc<Self>, line: Vec<u8>) -> Result<(), Closed> {
        let mut state = self.state.locked();
        let Some(sender) = &state.sender else {
            return Err(Closed);
        };
        let sender = sender.clone();
        state.queue.push(line);
        if !state.draining {
            state.draining = true;
            drop(state);
            tokio::spawn(drain(self.clone(), sender));
        }
        Ok(())
    }

    /// Closes the child's stdin (once the task writing the queue lets go of it): what is
    /// still queued is dropped, and the child reads the end of its input.
    pub(super) fn close(&self) {
        let mut state = self.state.locked();
        state.sender = None;
        state.queue.clear();
        drop(state);
        self.closed.cancel();
    }

    /// Takes the lines queued so far, or ends the draining when there are none (or the
    /// input was closed).
    fn take(&self) -> Option<Vec<Vec<u8>>> {
        let mut state = self.state.locked();
        if state.sender.is_none() || state.queue.is_empty() {
            state.draining = false;
            return None;
        }
        Some(mem::take(&mut state.queue))
    }

    /// A write failed: the child is gone, and every send from now on fails.
    fn broken(&self, error: &io::Error) {
        tracing::debug!(%error, "writing to the backend's stdin failed");
        let mut state = self.state.locked();
        state.sender = None;
        state.queue.clear();
        state.draining = false;
    }
}

/// Writes the queue, batch by batch, until it is empty.
async fn drain(input: Arc<Input>, sender: Arc<pipe::Sender>) {
    // The calls made ready with this one hand over their lines first: one write for all.
    tokio::task::yield_now().await;
    while let Some(lines) = input.take() {
        if let Err(e) = write_all(&input, &sender, &lines).await {
            if e.kind() != io::ErrorKind::Interrupted {
                input.broken(&e);
            }
            return;
        }
    }
}

/// Writes `lines` whole, in order, as the pipe makes room. Fails with `Interrupted` once
/// the input is closed.
async fn write_all(input: &Input, sender: &pipe::Sender, lines: &[Vec<u8>]) -> io::Result<()> {
    // The first line not written whole, and how much of it is.
    let (mut first, mut written) = (0, 0);
    while first < lines.len() {
        if input.closed.is_cancelled() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let mut slices = Vec::with_capacity((lines.len() - first).min(MAX_SLICES));
        slices.push(IoSlice::new(&lines[first][written..]));
        slices.extend(
            lines[first + 1..]
                .iter()
                .take(MAX_SLICES - 1)
                .map(|line| IoSlice::new(line)),
        );
        match sender.try_write_vectored(&slices) {
            Ok(mut n) => {
                while first < lines.len() && n >= lines[first].len() - written {
                    n -= lines[first].len() - written;
                    first += 1;
                    written = 0;
                }
                written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    ready = sender.writable() => ready?,
                    _ = input.closed.cancelled() => return Err(io::ErrorKind::Interrupted.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

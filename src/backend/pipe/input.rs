//! A stdio backend's input: each line written on the child's stdin by the task that has
//! it to send, in the order lines are handed over, with no task between a call and the
//! pipe. A line the pipe cannot take whole at once (the child is behind, or the line is
//! longer than the pipe's buffer) is queued with the rest of it, and a task started for
//! that writes the queue as the pipe makes room; lines handed over meanwhile queue behind
//! it, so lines are never interleaved or reordered.
//!
//! Where this sits: the writing half of [`super::Pipe`], under every call to a stdio
//! backend and every message rmcp's client sends it.

use std::{
    collections::VecDeque,
    io,
    sync::{Arc, Mutex},
};

use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::sync::Locked;

/// The child's stdin, shared by everything that writes to it.
pub(super) struct Input {
    state: Mutex<State>,
    /// Cancelled by [`Input::close`]: a task waiting for room gives up.
    closed: CancellationToken,
}

struct State {
    /// `None` once closed, or once a write failed (the child is gone).
    sender: Option<Arc<pipe::Sender>>,
    /// Lines not yet written whole; the first one from `written` on.
    queue: VecDeque<Vec<u8>>,
    written: usize,
    /// A task is writing the queue.
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
                queue: VecDeque::new(),
                written: 0,
                draining: false,
            }),
            closed: CancellationToken::new(),
        })
    }

    /// Hands one line (its newline included) to the child: written now if the pipe takes
    /// it, else queued behind what is waiting.
    pub(super) fn send(self: &Arc<Self>, line: Vec<u8>) -> Result<(), Closed> {
        let mut state = self.state.locked();
        let Some(sender) = &state.sender else {
            return Err(Closed);
        };
        if state.draining {
            state.queue.push_back(line);
            return Ok(());
        }
        let written = match sender.try_write(&line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                tracing::debug!(error = %e, "writing to the backend's stdin failed");
                state.sender = None;
                return Err(Closed);
            }
        };
        let sender = sender.clone();
        state.queue.push_back(line);
        state.written = written;
        state.draining = true;
        drop(state);
        tokio::spawn(drain(self.clone(), sender));
        Ok(())
    }

    /// Closes the child's stdin (once a task writing the queue lets go of it): what is
    /// still queued is dropped, and the child reads the end of its input.
    pub(super) fn close(&self) {
        let mut state = self.state.locked();
        state.sender = None;
        state.queue.clear();
        drop(state);
        self.closed.cancel();
    }
}

/// Writes the queue as the pipe makes room, until it is empty.
async fn drain(input: Arc<Input>, sender: Arc<pipe::Sender>) {
    loop {
        tokio::select! {
            ready = sender.writable() => if let Err(e) = ready {
                tracing::debug!(error = %e, "waiting to write to the backend's stdin failed");
                input.close();
                return;
            },
            _ = input.closed.cancelled() => return,
        }
        let mut state = input.state.locked();
        if state.sender.is_none() {
            return;
        }
        let State {
            queue,
            written,
            sender: open,
            ..
        } = &mut *state;
        while let Some(line) = queue.front() {
            match sender.try_write(&line[*written..]) {
                Ok(n) => {
                    *written += n;
                    if *written == line.len() {
                        queue.pop_front();
                        *written = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "writing to the backend's stdin failed");
                    *open = None;
                    queue.clear();
                    return;
                }
            }
        }
        if state.queue.is_empty() {
            state.draining = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests;

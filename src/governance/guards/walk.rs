//! Walking a JSON document without recursion (a deeply nested argument cannot overflow the
//! stack), with each value's RFC 6901 path, and measuring its compact size without
//! serializing it.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The document a walk starts from.
#[derive(Clone, Copy)]
pub(super) enum Root<'a> {
    Object(&'a Map<String, Value>),
    Array(&'a [Value]),
    Scalar(&'a Value),
}

impl<'a> Root<'a> {
    pub(super) fn of(value: &'a Value) -> Root<'a> {
        match value {
            Value::Object(m) => Root::Object(m),
            Value::Array(a) => Root::Array(a),
            other => Root::Scalar(other),
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(super) enum Frame<'a> {
    Object(serde_json::map::Iter<'a>),
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
}

/// One value met by a [`Walk`].
pub(super) struct Node<'a> {
    /// Its key, when it is an object member.
    pub(super) key: Option<&'a str>,
    pub(super) value: &'a Value,
    /// Containers enclosing it, the root included.
    pub(super) depth: usize,
}

/// Depth-first, document-order walk over every value below a root container, on an explicit
/// stack (a deeply nested document cannot overflow the thread's stack). After `next`
/// returns a node, `pointer` is that node's path.
pub(super) struct Walk<'a> {
    stack: Vec<Frame<'a>>,
    path: Vec<Seg<'a>>,
    /// The node last returned: descended into (or its path segment dropped) on the next call.
    last: Option<&'a Value>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(root: Root<'a>) -> Walk<'a> {
        let stack = match root {
            Root::Object(m) => vec![Frame::Object(m.iter())],
            Root::Array(a) => vec![Frame::Array(a.iter().enumerate())],
            Root::Scalar(_) => Vec::new(),
        };
        Walk {
            stack,
            path: Vec::new(),
            last: None,
        }
    }

    pub(super) fn next(&mut self) -> Option<Node<'a>> {
        match self.last.take() {
            Some(Value::Object(m)) => self.stack.push(Frame::Object(m.iter())),
            Some(Value::Array(a)) => self.stack.push(Frame::Array(a.iter().enumerate())),
            Some(_) => {
                self.path.pop();
            }
            None => {}
        }
        loop {
            let next = match self.stack.last_mut()? {
                Frame::Object(members) => members.next().map(|(k, v)| (Seg::Key(k.as_str()), v)),
                Frame::Array(items) => items.next().map(|(i, v)| (Seg::Index(i), v)),
            };
            match next {
                Some((seg, value)) => {
                    self.path.push(seg);
                    self.last = Some(value);
                    return Some(Node {
                        key: match seg {
                            Seg::Key(k) => Some(k),
                            Seg::Index(_) => None,
                        },
                        value,
                        depth: self.stack.len(),
                    });
                }
                None => {
                    self.stack.pop();
                    if !self.stack.is_empty() {
                        self.path.pop();
                    }
                }
            }
        }
    }

    /// RFC 6901 pointer of the node last returned.
    pub(super) fn pointer(&self) -> String {
        pointer(&self.path)
    }

    /// RFC 6901 pointer of the container holding the node last returned.
    pub(super) fn parent_pointer(&self) -> String {
        pointer(&self.path[..self.path.len().saturating_sub(1)])
    }
}

pub(super) fn pointer(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => {
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Seg::Index(i) => {
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

/// Whether the document, serialized as compact JSON (as `serde_json::to_vec` writes it), is
/// longer than `limit` bytes. Stops as soon as it is.
pub(super) fn exceeds(root: Root<'_>, limit: usize) -> bool {
    let mut size = match root {
        Root::Object(m) => container_len(m.len(), true),
        Root::Array(a) => container_len(a.len(), false),
        Root::Scalar(v) => scalar_len(v),
    };
    let mut walk = Walk::new(root);
    while size <= limit {
        let Some(node) = walk.next() else {
            return false;
        };
        size += node.key.map_or(0, string_len);
        size += match node.value {
            Value::Object(m) => container_len(m.len(), true),
            Value::Array(a) => container_len(a.len(), false),
            scalar => scalar_len(scalar),
        };
    }
    true
}

/// Brackets and separators of a container with `n` members (`:` after each key of an object).
pub(super) fn container_len(n: usize, object: bool) -> usize {
    2 + n.saturating_sub(1) + if object { n } else { 0 }
}

pub(super) fn scalar_len(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => {
            let mut counter = Counter(0);
            let _ = write!(counter, "{n}");
            counter.0
        }
        Value::String(s) => string_len(s),
        Value::Array(_) | Value::Object(_) => 0,
    }
}

/// A JSON string literal's length: quotes, and escapes as serde_json writes them.
pub(super) fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

pub(super) struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

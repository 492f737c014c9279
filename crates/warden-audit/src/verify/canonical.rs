//! Reading the members of a record line that the checks need, and deciding whether the
//! line is canonical (audit/FORMAT.md §2), in one pass over its bytes.
//!
//! [`fast`] accepts only lines that it can prove are exactly what `jcs::to_vec` would print
//! for their parsed value: ASCII keys without escapes in strictly increasing order, no
//! whitespace, strings with only the escapes RFC 8785 writes, integers in plain decimal
//! below 2^53. Anything else (floats, escaped or non-ASCII keys, errors) goes to [`slow`],
//! which parses into a `serde_json::Value` and compares the re-serialization byte for byte
//! — the definition itself, at a few times the cost.

use serde_json::Value;

use crate::jcs;
use crate::record::VERSION;

/// The members of a record the checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields<'l> {
    pub origin: &'l str,
    pub index: u64,
    pub time_us: u64,
    pub kind: &'l str,
    pub prev: &'l str,
}

/// The members of a canonical record line, or `None` when the line needs [`slow`].
pub fn fast(line: &[u8]) -> Option<Fields<'_>> {
    let text = std::str::from_utf8(line).ok()?;
    let mut p = Parser { b: line, i: 0 };
    let mut top = Top::default();
    p.object(0, Some(&mut top))?;
    if p.i != line.len() || top.v != Some(VERSION) || top.replica.is_none() {
        return None;
    }
    let s = |span: Option<(usize, usize)>| span.map(|(a, b)| &text[a..b]);
    Some(Fields {
        origin: s(top.origin)?,
        index: top.index?,
        time_us: top.time_us?,
        kind: s(top.kind)?,
        prev: s(top.prev)?,
    })
}

/// Whether `line` is canonical, and its members or why it is not a record: the reference
/// method, by re-serialization into `buffer`.
pub fn slow<'v>(
    line: &[u8],
    value: &'v Result<Value, serde_json::Error>,
    buffer: &mut Vec<u8>,
) -> (bool, Result<Fields<'v>, String>) {
    let value = match value {
        Ok(value) => value,
        Err(e) => return (false, Err(format!("not JSON: {e}"))),
    };
    buffer.clear();
    jcs::write(buffer, value);
    (buffer.as_slice() == line, from_value(value))
}

fn from_value(value: &Value) -> Result<Fields<'_>, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let int = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("`{name}` is missing or not a non-negative integer"))
    };
    let text = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("`{name}` is missing or not a string"))
    };
    let v = int("v")?;
    if v != VERSION {
        return Err(format!("unknown version {v}"));
    }
    text("replica")?;
    Ok(Fields {
        origin: text("origin")?,
        index: int("index")?,
        time_us: int("time_us")?,
        kind: text("kind")?,
        prev: text("prev")?,
    })
}

/// Top-level members seen: string spans (without escapes) and integers.
#[derive(Default)]
struct Top {
    v: Option<u64>,
    origin: Option<(usize, usize)>,
    index: Option<u64>,
    time_us: Option<u64>,
    kind: Option<(usize, usize)>,
    prev: Option<(usize, usize)>,
    replica: Option<(usize, usize)>,
}

enum Scalar {
    /// A string's content span and whether it holds escapes.
    Str(usize, usize, bool),
    Int(i64),
    Other,
}

/// Deeper nesting goes to the slow path (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;

struct Parser<'l> {
    b: &'l [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Option<Scalar> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None).map(|()| Scalar::Other),
            b'[' => self.array(depth + 1).map(|()| Scalar::Other),
            b'"' => {
                let (a, b, escaped) = self.string()?;
                Some(Scalar::Str(a, b, escaped))
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.integer().map(Scalar::Int),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<Scalar> {
        self.b[self.i..].starts_with(word).then(|| {
            self.i += word.len();
            Scalar::Other
        })
    }

    fn object(&mut self, depth: usize, mut top: Option<&mut Top>) -> Option<()> {
        if depth > MAX_DEPTH || self.peek()? != b'{' {
            return None;
        }
        self.i += 1;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        let bytes = self.b;
        let mut last: Option<&[u8]> = None;
        loop {
            let (a, b, escaped) = self.string()?;
            let key = &bytes[a..b];
            // Plain ASCII keys in strictly increasing order: byte order is UTF-16 order.
            if escaped || !key.is_ascii() || last.is_some_and(|last| !ascending(last, key)) {
                return None;
            }
            last = Some(key);
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            let value = self.value(depth)?;
            if let Some(top) = top.as_deref_mut() {
                top.take(key, value);
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string with only the escapes RFC 8785 writes: its content span and whether it
    /// holds escapes.
    #[inline]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = plain_run(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some((start, self.i - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1 + escape_len(&self.b[self.i + 1..])?;
                }
                0x00..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// `0` or `-?[1-9][0-9]*` below 2^53 in absolute value.
    fn integer(&mut self) -> Option<i64> {
        let start = self.i;
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let digits = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text = &self.b[digits..self.i];
        if text.is_empty() || text.len() > 16 || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if text[0] == b'0' && (text.len() > 1 || negative) {
            return None;
        }
        let magnitude = text.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        if magnitude >= 1 << 53 {
            self.i = start;
            return None;
        }
        Some(if negative { -magnitude } else { magnitude })
    }
}

/// The end of the run of string bytes from `i` that need no look: everything but `"`, `\`
/// and control characters. Eight bytes at a time: a byte is flagged when it equals `"` or
/// `\` (XOR leaves it zero) or is below 0x20. The classic zero-byte test may also flag a
/// byte above a true hit, never one below it, so the lowest flag is exact.
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Whether `key` sorts strictly after `last` (keys are never empty here: a record's
/// members and its nested objects' have names). Most neighbours differ in their first
/// byte, which decides without a call to `memcmp`.
#[inline]
fn ascending(last: &[u8], key: &[u8]) -> bool {
    match (last.first(), key.first()) {
        (Some(a), Some(b)) if a != b => a < b,
        _ => last < key,
    }
}

/// The length after the backslash of an escape RFC 8785 writes, if it is one.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match *rest.first()? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' => {
            let hex = rest.get(1..5)?;
            let lower = |c: u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
            let code = u8::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()?;
            // Only control characters without a short form are written as \u00xx.
            (hex[..2] == *b"00"
                && lower(hex[2])
                && lower(hex[3])
                && code < 0x20
                && !matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d))
            .then_some(5)
        }
        _ => None,
    }
}

impl Top {
    fn take(&mut self, key: &[u8], value: Scalar) {
        let int = |v: &Scalar| match *v {
            Scalar::Int(n) => u64::try_from(n).ok(),
            _ => None,
        };
        let text = |v: &Scalar| match *v {
            Scalar::Str(a, b, false) => Some((a, b)),
            _ => None,
        };
        match key {
            b"v" => self.v = int(&value),
            b"origin" => self.origin = text(&value),
            b"index" => self.index = int(&value),
            b"time_us" => self.time_us = int(&value),
            b"kind" => self.kind = text(&value),
            b"prev" => self.prev = text(&value),
            b"replica" => self.replica = text(&value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

//! Reading the members of a record line that the checks need, and deciding whether the
//! line is canonical (audit/FORMAT.md §2), in one pass over its bytes.
//!
//! [`fast`] accepts only lines that it can prove are exactly what `jcs::to_vec` would print
//! for their parsed value: keys without escapes in strictly increasing order, no
//! whitespace, strings with only the escapes RFC 8785 writes, integers in plain decimal
//! below 2^53. Anything else (floats, escaped keys, neighbouring keys that UTF-8 and
//! UTF-16 order differently, errors) goes to [`slow`],
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
    fast_line(line).and_then(|(fields, len)| (len == line.len()).then_some(fields))
}

/// The members of the canonical record line at the start of `text`, and its length: the
/// line ends where the record does, which must be at a line feed or the end of `text`
/// (a canonical line holds no raw line feed). `None` when the line needs [`slow`]; its
/// end is then for the caller to find.
pub fn fast_line(text: &[u8]) -> Option<(Fields<'_>, usize)> {
    let mut p = Parser { b: text, i: 0 };
    let mut top = Top::default();
    p.top(&mut top)?;
    let len = p.i;
    if !matches!(text.get(len), None | Some(b'\n'))
        || top.v != Some(VERSION)
        || top.replica.is_none()
    {
        return None;
    }
    let line = std::str::from_utf8(&text[..len]).ok()?;
    let s = |span: Option<(usize, usize)>| span.map(|(a, b)| &line[a..b]);
    let fields = Fields {
        origin: s(top.origin)?,
        index: top.index?,
        time_us: top.time_us?,
        kind: s(top.kind)?,
        prev: s(top.prev)?,
    };
    Some((fields, len))
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

/// A top-level member's value, as far as [`Top`] cares.
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
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// The record's own object: like [`Parser::object`], and hands each member to `top`.
    fn top(&mut self, top: &mut Top) -> Option<()> {
        self.members(1, |p, key| {
            let value = match p.peek()? {
                b'"' => {
                    let (a, b, escaped) = p.string()?;
                    Scalar::Str(a, b, escaped)
                }
                b'-' | b'0'..=b'9' => Scalar::Int(p.integer()?),
                _ => {
                    p.value(1)?;
                    Scalar::Other
                }
            };
            top.take(key, value);
            Some(())
        })
    }

    /// Any value, checked and passed over.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.members(depth + 1, |p, _| p.value(depth + 1)),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.integer().map(drop),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| {
            self.i += word.len();
        })
    }

    /// An object at `depth`, each member's value read by `member` (given the key).
    #[inline(always)]
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>,
    ) -> Option<()> {
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
            // Keys without escapes, in strictly increasing order.
            if escaped || last.is_some_and(|last| !ascending(last, key)) {
                return None;
            }
            last = Some(key);
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            member(self, key)?;
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
    #[inline(always)]
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

    /// `0` or `-?[1-9][0-9]*` below 2^53 in absolute value, read in one pass.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let digits = self.i;
        let mut magnitude = 0u64;
        while let Some(digit) = self
            .peek()
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d <= 9)
        {
            // Wraps only past 19 digits, which the length check refuses.
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.i += 1;
        }
        let len = self.i - digits;
        if len == 0 || len > 16 || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if self.b[digits] == b'0' && (len > 1 || negative) {
            return None;
        }
        let magnitude = i64::try_from(magnitude).ok().filter(|&m| m < 1 << 53)?;
        Some(if negative { -magnitude } else { magnitude })
    }
}

/// The end of the run of string bytes from `i` that need no look: everything but `"`, `\`
/// and control characters. Sixteen bytes at a time on x86-64 (SSE2), else eight; the
/// line's last few bytes are left to the caller's byte-wise step.
#[inline(always)]
fn plain_run(b: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    let i = match sse2_run(b, i) {
        // A stop found (the scan ends early only there).
        end if end + 16 <= b.len() => return end,
        end => end,
    };
    swar_run(b, i)
}

/// Sixteen bytes at a time: a byte stops the run when it equals `"` or `\`, or when it
/// is its own minimum with 0x1f (below 0x20, unsigned).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_run(b: &[u8], mut i: usize) -> usize {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let quote = set_splat_i8_m128i(b'"' as i8);
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let control = set_splat_i8_m128i(0x1f);
    while let Some(chunk) = b.get(i..i + 16).and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
        let x = load_unaligned_m128i(chunk);
        let stops = bitor_m128i(
            bitor_m128i(
                cmp_eq_mask_i8_m128i(x, quote),
                cmp_eq_mask_i8_m128i(x, backslash),
            ),
            cmp_eq_mask_i8_m128i(min_u8_m128i(x, control), x),
        );
        let mask = move_mask_i8_m128i(stops);
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    i
}

/// Eight bytes at a time: a byte is flagged when it equals `"` or `\` (XOR leaves it
/// zero) or is below 0x20. The classic zero-byte test may also flag a byte above a true
/// hit, never one below it, so the lowest flag is exact.
#[inline(always)]
fn swar_run(b: &[u8], mut i: usize) -> usize {
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

/// Whether `key` provably sorts strictly after `last` in RFC 8785's order (UTF-16 code
/// units). UTF-8 byte order agrees with it except between a character from U+E000 to
/// U+FFFF (lead byte 0xEE or 0xEF) and one above U+FFFF (lead byte 0xF0 to 0xF4, a
/// surrogate pair in UTF-16, which sorts first): where the first bytes that differ are
/// those, the reference decides. Keys are short and most neighbours differ early, so a
/// byte loop beats a call to `memcmp`.
#[inline(always)]
fn ascending(last: &[u8], key: &[u8]) -> bool {
    for (&a, &b) in last.iter().zip(key) {
        if a != b {
            return a < b && !(a >= 0xee && b >= 0xf0);
        }
    }
    last.len() < key.len()
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
        // Fixed-size arrays compare inline, where byte-string slice patterns call `bcmp`.
        fn is<const N: usize>(key: &[u8], name: &[u8; N]) -> bool {
            <&[u8; N]>::try_from(key).is_ok_and(|key| key == name)
        }
        if is(key, b"v") {
            self.v = int(&value);
        } else if is(key, b"origin") {
            self.origin = text(&value);
        } else if is(key, b"index") {
            self.index = int(&value);
        } else if is(key, b"time_us") {
            self.time_us = int(&value);
        } else if is(key, b"kind") {
            self.kind = text(&value);
        } else if is(key, b"prev") {
            self.prev = text(&value);
        } else if is(key, b"replica") {
            self.replica = text(&value);
        }
    }
}

#[cfg(test)]
mod tests;

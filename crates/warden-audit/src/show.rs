//! `audit show`: the records of a log, in order, filtered by time, principal, tool,
//! decision, determining policy, outcome and kind, as a table for people or as JSON lines,
//! a JSON array or CSV for tools. It reads; it does not verify (that is `audit verify`).

mod table;

use std::io::Write;

use futures::StreamExt;
use serde_json::Value;

use super::store::Store;
use super::verify::listing;

pub use table::{printable, rfc3339};

/// Which records to show; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Records at or after this time (microseconds since the epoch).
    pub from_us: Option<u64>,
    /// Records strictly before this time.
    pub to_us: Option<u64>,
    /// `principal.id` equals this (a pseudonym where the log records pseudonyms).
    pub principal: Option<String>,
    /// `principal.tenant` equals this.
    pub tenant: Option<String>,
    /// `resource` (the exposed tool, prompt or resource) equals this.
    pub tool: Option<String>,
    /// `decision.effect` equals this (`allow` or `deny`).
    pub decision: Option<String>,
    /// `decision.policies` (the determining policies) holds this id.
    pub policy: Option<String>,
    /// `outcome.status` equals this (`ok`, `error`, `denied`, ...).
    pub outcome: Option<String>,
    /// `kind` equals this (`request`, `auth_failure`, `start`, ...).
    pub kind: Option<String>,
}

/// How to print the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One aligned row per record, with a header; long values are shortened with `…`.
    Table,
    /// The canonical record lines, as stored.
    JsonLines,
    /// One JSON array of the records, as stored.
    Json,
    /// One CSV row per record with a header (RFC 4180), every value in full.
    Csv,
}

/// What was shown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Records read.
    pub read: u64,
    /// Records printed.
    pub matched: u64,
    /// Lines that are not JSON objects (run `audit verify` to see why).
    pub skipped: u64,
    /// Records whose principal id is a pseudonym (`hmac-sha256:…`).
    pub pseudonymous: u64,
}

/// The prefix of a pseudonymised principal id (audit/FORMAT.md §2).
pub const PSEUDONYM_PREFIX: &str = "hmac-sha256:";

/// Why the records could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error("cannot read the audit store: {0}")]
    Store(object_store::Error),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

// The causes are part of the messages, not error sources, so they print once.
impl From<object_store::Error> for ShowError {
    fn from(e: object_store::Error) -> Self {
        ShowError::Store(e)
    }
}

impl From<std::io::Error> for ShowError {
    fn from(e: std::io::Error) -> Self {
        ShowError::Output(e)
    }
}

impl From<csv::Error> for ShowError {
    fn from(e: csv::Error) -> Self {
        ShowError::Output(e.into())
    }
}

impl Filter {
    /// Whether the record `value` passes.
    pub fn matches(&self, value: &Value) -> bool {
        let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
        let time = value.get("time_us").and_then(Value::as_u64);
        let same = |want: &Option<String>, pointer: &str| {
            want.as_deref()
                .is_none_or(|want| text(pointer) == Some(want))
        };
        let policy = self.policy.as_deref().is_none_or(|want| {
            value
                .pointer("/decision/policies")
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(want)))
        });
        self.from_us
            .is_none_or(|from| time.is_some_and(|t| t >= from))
            && self.to_us.is_none_or(|to| time.is_some_and(|t| t < to))
            && same(&self.principal, "/principal/id")
            && same(&self.tenant, "/principal/tenant")
            && same(&self.tool, "/resource")
            && same(&self.decision, "/decision/effect")
            && same(&self.outcome, "/outcome/status")
            && same(&self.kind, "/kind")
            && policy
    }
}

/// Prints the records of the log in `store` that pass `filter` to `out`.
pub async fn show(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<Shown, ShowError> {
    let listing = listing::list(store).await?;
    let mut shown = Shown::default();
    let mut sink = Sink::new(format, out)?;
    let keys = listing.segments.into_iter().map(|s| s.key).collect();
    let mut reads = listing::read_each(store, keys, 4);
    while let Some(data) = reads.next().await {
        let data = data?;
        for line in data
            .as_ref()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else {
                shown.skipped += 1;
                continue;
            };
            shown.read += 1;
            if value
                .pointer("/principal/id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with(PSEUDONYM_PREFIX))
            {
                shown.pseudonymous += 1;
            }
            if !filter.matches(&value) {
                continue;
            }
            shown.matched += 1;
            sink.record(line, &value)?;
        }
    }
    sink.finish()?;
    Ok(shown)
}

/// Where matched records go, in the chosen format.
enum Sink<'o> {
    Table(&'o mut dyn Write),
    JsonLines(&'o mut dyn Write),
    Json(&'o mut dyn Write, bool),
    Csv(Box<csv::Writer<&'o mut dyn Write>>),
}

impl<'o> Sink<'o> {
    fn new(format: Format, out: &'o mut dyn Write) -> Result<Sink<'o>, ShowError> {
        Ok(match format {
            Format::Table => {
                writeln!(out, "{}", table::header())?;
                Sink::Table(out)
            }
            Format::JsonLines => Sink::JsonLines(out),
            Format::Json => {
                out.write_all(b"[")?;
                Sink::Json(out, true)
            }
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(table::CSV_HEADER)?;
                Sink::Csv(Box::new(writer))
            }
        })
    }

    fn record(&mut self, line: &[u8], value: &Value) -> Result<(), ShowError> {
        match self {
            Sink::Table(out) => writeln!(out, "{}", table::row(value))?,
            Sink::JsonLines(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Sink::Json(out, first) => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                out.write_all(line)?;
                *first = false;
            }
            Sink::Csv(writer) => writer.write_record(table::csv_row(value))?,
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ShowError> {
        match self {
            Sink::Table(out) | Sink::JsonLines(out) => out.flush()?,
            Sink::Json(out, first) => {
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
            Sink::Csv(mut writer) => writer.flush()?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! Reading the checkpoint objects (audit/FORMAT.md §5, §7 item 3): each must be a signed
//! note whose signature by the key verifies, whose body is a checkpoint with `time` and
//! `heartbeat` lines, and whose object key names the same size and time.

use futures::StreamExt;

use super::finding::{Finding, FindingKind, Findings};
use super::listing::{self, CheckpointObject};
use crate::merkle::Hash;
use crate::note::{self, Checkpoint, NoteVerifier};
use crate::store::Store;

/// Checkpoints fetched concurrently.
const CONCURRENCY: usize = 16;

/// A checkpoint whose signature verified, of the log's origin: what the checks need.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The object key.
    pub key: String,
    pub size: u64,
    pub root: Hash,
    pub time_us: u64,
    pub heartbeat_s: u64,
}

/// The checkpoints of the log.
#[derive(Debug, Default)]
pub struct Checkpoints {
    /// Valid ones, by `(size, time_us)`.
    pub valid: Vec<Signed>,
    /// The log's origin: the one given, else the first valid checkpoint's.
    pub origin: Option<String>,
    /// The newest valid one (largest size, then latest time) with its body and note text.
    pub newest: Option<(Signed, Checkpoint, String)>,
}

/// Reads every checkpoint; those that are unreadable, unsigned, malformed or of another
/// origin than `origin` (if given, else the first valid one's) become findings.
pub async fn read_all(
    store: &Store,
    objects: &[CheckpointObject],
    key: &NoteVerifier,
    origin: Option<String>,
    findings: &mut Findings,
) -> Checkpoints {
    let keys = objects.iter().map(|o| o.key.clone()).collect();
    let mut reads =
        listing::read_each(store, keys, CONCURRENCY).zip(futures::stream::iter(objects));
    let mut out = Checkpoints {
        origin,
        ..Checkpoints::default()
    };
    while let Some((data, object)) = reads.next().await {
        let name = object.key.to_string();
        let data = match data {
            Ok(data) => data,
            Err(e) => {
                findings.push(
                    Finding::new(
                        FindingKind::Unreadable,
                        format!("cannot read the checkpoint: {e}"),
                    )
                    .at(&name),
                );
                continue;
            }
        };
        let (signed, checkpoint, mismatch) = match check(object, data.as_ref(), key) {
            Ok(checked) => checked,
            Err(finding) => {
                findings.push(finding.at(&name));
                continue;
            }
        };
        if let Some(detail) = mismatch {
            findings.push(Finding::new(FindingKind::Key, detail).at(&name));
        }
        match &out.origin {
            Some(origin) if *origin != checkpoint.origin => {
                findings.push(
                    Finding::new(
                        FindingKind::Origin,
                        format!(
                            "the checkpoint is for origin {:?}, the log is {origin:?}",
                            checkpoint.origin
                        ),
                    )
                    .at(&name),
                );
                continue;
            }
            Some(_) => {}
            None => out.origin = Some(checkpoint.origin.clone()),
        }
        let newer = out
            .newest
            .as_ref()
            .is_none_or(|(n, _, _)| (signed.size, signed.time_us) > (n.size, n.time_us));
        if newer {
            let note = String::from_utf8_lossy(data.as_ref()).into_owned();
            out.newest = Some((signed.clone(), checkpoint, note));
        }
        out.valid.push(signed);
    }
    out.valid.sort_by_key(|s| (s.size, s.time_us));
    out
}

/// Opens one checkpoint note: the signed checkpoint and, when its key disagrees with the
/// body, what disagrees.
fn check(
    object: &CheckpointObject,
    data: &[u8],
    key: &NoteVerifier,
) -> Result<(Signed, Checkpoint, Option<String>), Finding> {
    let signature = |why: String| Finding::new(FindingKind::Signature, why);
    let text = std::str::from_utf8(data)
        .map_err(|_| signature("the checkpoint is not UTF-8 text, so not a signed note".into()))?;
    let body = note::open(text, key)
        .map_err(|e| signature(format!("not a valid note signed by `{}`: {e}", key.name())))?;
    let malformed = |why: String| {
        Finding::new(
            FindingKind::NonCanonical,
            format!("signed, but not a checkpoint of this format: {why}"),
        )
    };
    let checkpoint = Checkpoint::parse(&body).map_err(|e| malformed(e.to_string()))?;
    let time_us = extension(&checkpoint, "time").map_err(&malformed)?;
    let heartbeat_s = extension(&checkpoint, "heartbeat").map_err(&malformed)?;
    if heartbeat_s == 0 {
        return Err(malformed("a heartbeat of 0 seconds".into()));
    }
    let mut mismatch = Vec::new();
    if object.size != checkpoint.size {
        mismatch.push(format!(
            "the key says {} records, the signed body {}",
            object.size, checkpoint.size
        ));
    }
    if object.time_us != time_us {
        mismatch.push(format!(
            "the key says time {}, the signed body {time_us}",
            object.time_us
        ));
    }
    let mismatch = (!mismatch.is_empty()).then(|| mismatch.join("; "));
    let signed = Signed {
        key: object.key.to_string(),
        size: checkpoint.size,
        root: checkpoint.root,
        time_us,
        heartbeat_s,
    };
    Ok((signed, checkpoint, mismatch))
}

/// The value of the one `<name> <decimal>` extension line.
fn extension(checkpoint: &Checkpoint, name: &str) -> Result<u64, String> {
    let mut values = checkpoint
        .extensions
        .iter()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '));
    let value = values.next().ok_or_else(|| format!("no `{name}` line"))?;
    if values.next().is_some() {
        return Err(format!("more than one `{name}` line"));
    }
    decimal(value).ok_or_else(|| format!("`{name} {value}` is not a decimal number"))
}

/// A decimal without sign or leading zeros.
fn decimal(text: &str) -> Option<u64> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

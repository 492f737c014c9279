//! What the store holds under the log's prefix, sorted into segments, checkpoints and
//! orphans by key alone (audit/FORMAT.md §1). Shared by `verify`, `prove` and `show`.

use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::store::Store;

/// A segment object: its key and the index of its first record.
#[derive(Debug, Clone)]
pub struct SegmentObject {
    pub key: Path,
    pub first: u64,
}

/// A checkpoint object: its key and the size and time its key claims.
#[derive(Debug, Clone)]
pub struct CheckpointObject {
    pub key: Path,
    pub size: u64,
    pub time_us: u64,
}

/// Every object under the prefix, classified; each list sorted.
#[derive(Debug, Default)]
pub struct Listing {
    /// By `first`.
    pub segments: Vec<SegmentObject>,
    /// By `(size, time_us)`.
    pub checkpoints: Vec<CheckpointObject>,
    /// Checkpoints with witness cosignatures (`witnessed/`), by `(size, time_us)`.
    pub witnessed: Vec<CheckpointObject>,
    /// Keys that are neither, by key.
    pub orphans: Vec<Path>,
}

/// Lists the store. Fails only when the listing itself fails.
pub async fn list(store: &Store) -> Result<Listing, object_store::Error> {
    let prefix = (!store.prefix.as_ref().is_empty()).then_some(&store.prefix);
    let metas: Vec<_> = store.inner.list(prefix).try_collect().await?;
    let mut listing = Listing::default();
    for meta in metas {
        let key = meta.location;
        match classify(relative(&store.prefix, &key)) {
            Some(Name::Segment(first)) => listing.segments.push(SegmentObject { key, first }),
            Some(Name::Checkpoint(size, time_us)) => {
                listing
                    .checkpoints
                    .push(CheckpointObject { key, size, time_us })
            }
            Some(Name::Witnessed(size, time_us)) => {
                listing
                    .witnessed
                    .push(CheckpointObject { key, size, time_us })
            }
            None => listing.orphans.push(key),
        }
    }
    listing.segments.sort_by_key(|s| s.first);
    listing.checkpoints.sort_by_key(|c| (c.size, c.time_us));
    listing.witnessed.sort_by_key(|c| (c.size, c.time_us));
    listing.orphans.sort();
    Ok(listing)
}

/// Reads the objects at `keys`, in order, up to `ahead` at once.
pub fn read_each(
    store: &Store,
    keys: Vec<Path>,
    ahead: usize,
) -> impl Stream<Item = Result<impl AsRef<[u8]> + Send + use<>, object_store::Error>> + Send + '_ {
    futures::stream::iter(keys)
        .map(move |key| async move { read(store, &key).await })
        .buffered(ahead)
}

/// Reads a whole object.
pub async fn read(
    store: &Store,
    key: &Path,
) -> Result<impl AsRef<[u8]> + Send + use<>, object_store::Error> {
    store.inner.get(key).await?.bytes().await
}

/// The key without the store's prefix (`None` for a key outside it).
fn relative<'k>(prefix: &Path, key: &'k Path) -> Option<&'k str> {
    let key = key.as_ref();
    if prefix.as_ref().is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix.as_ref())?.strip_prefix('/')
}

enum Name {
    Segment(u64),
    Checkpoint(u64, u64),
    Witnessed(u64, u64),
}

/// Key of the checkpoint of `size` records made at `time` (its `time` extension, µs) with
/// the witness cosignatures collected for it.
pub fn witnessed_key(prefix: &Path, size: u64, time: &str) -> Path {
    let time: u64 = time.parse().unwrap_or(0);
    let rest = format!("witnessed/{size:020}-{time:020}.note");
    if prefix.as_ref().is_empty() {
        Path::from(rest)
    } else {
        Path::from(format!("{}/{rest}", prefix.as_ref()))
    }
}

fn classify(rel: Option<&str>) -> Option<Name> {
    let rel = rel?;
    if let Some(rest) = rel.strip_prefix("segments/") {
        return Some(Name::Segment(number20(rest.strip_suffix(".jsonl")?)?));
    }
    let (witnessed, rest) = match rel.strip_prefix("witnessed/") {
        Some(rest) => (true, rest),
        None => (false, rel.strip_prefix("checkpoints/")?),
    };
    let (size, time) = rest.strip_suffix(".note")?.split_once('-')?;
    let (size, time) = (number20(size)?, number20(time)?);
    Some(if witnessed {
        Name::Witnessed(size, time)
    } else {
        Name::Checkpoint(size, time)
    })
}

/// Exactly 20 decimal digits (`%020d`) that fit a `u64`.
fn number20(text: &str) -> Option<u64> {
    if text.len() != 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_exactly() {
        let seg = |s: &str| matches!(classify(Some(s)), Some(Name::Segment(_)));
        let cp = |s: &str| matches!(classify(Some(s)), Some(Name::Checkpoint(..)));
        assert!(seg("segments/00000000000000000042.jsonl"));
        assert!(!seg("segments/42.jsonl"));
        assert!(!seg("segments/00000000000000000042.jsonl.tmp"));
        assert!(!seg("segments/99999999999999999999.jsonl"));
        assert!(!seg("segments/x/00000000000000000042.jsonl"));
        assert!(cp(
            "checkpoints/00000000000000000042-00000000000000000007.note"
        ));
        assert!(!cp("checkpoints/00000000000000000042-7.note"));
        assert!(!cp("checkpoints/00000000000000000042.note"));
        assert!(classify(Some("README")).is_none());
        let p = Path::from("logs/a");
        assert_eq!(
            relative(&p, &Path::from("logs/a/segments/x")),
            Some("segments/x")
        );
        assert_eq!(relative(&p, &Path::from("logs/ab/x")), None);
    }
}

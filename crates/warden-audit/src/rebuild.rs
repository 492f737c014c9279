//! Finding where the log continues when this replica has no `tree.json` (a fresh state
//! directory over an existing store): read the segments the store holds and replay them.
//! The reads are checked (index, origin, chain) but this is not an audit: `audit verify` is.

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::merkle::CompactTree;
use super::record::{GENESIS_PREV, Record, link};
use super::store::Store;
use super::wal::TreeState;

/// The state after every segment in the store (genesis for an empty store).
pub async fn from_store(store: &Store, origin: &str) -> Result<TreeState, String> {
    let mut segments = keys(store, "segments").await?;
    segments.sort();
    let mut tree = CompactTree::new();
    let mut prev = GENESIS_PREV.to_owned();
    let mut last_time_us = 0;
    for key in segments {
        let bytes = store
            .inner
            .get(&key)
            .await
            .map_err(|e| format!("reading {key}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("reading {key}: {e}"))?;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let (_, r) = Record::parse_canonical(line).map_err(|e| format!("{key}: {e}"))?;
            if r.index != tree.size() || r.prev != prev || r.origin != origin {
                return Err(format!(
                    "{key}: record {} does not continue the log (run `mcp-warden audit verify`)",
                    r.index
                ));
            }
            let (hash, next) = link(line);
            tree.append(hash);
            prev = next;
            last_time_us = last_time_us.max(r.time_us);
        }
    }
    Ok(TreeState::of(&tree, &prev, last_time_us))
}

/// The largest size any checkpoint in the store claims (from its key).
pub async fn newest_checkpoint_size(store: &Store) -> Result<Option<u64>, String> {
    let keys = keys(store, "checkpoints").await?;
    Ok(keys
        .iter()
        .filter_map(|k| k.filename())
        .filter_map(|name| name.split('-').next()?.parse::<u64>().ok())
        .max())
}

async fn keys(store: &Store, dir: &str) -> Result<Vec<Path>, String> {
    let prefix = if store.prefix.as_ref().is_empty() {
        Path::from(dir)
    } else {
        Path::from(format!("{}/{dir}", store.prefix.as_ref()))
    };
    store
        .inner
        .list(Some(&prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| format!("listing {prefix}: {e}"))
}

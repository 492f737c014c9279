//! Where sealed segments and checkpoints go: an `object_store` behind a URL, shared by the
//! proxy that writes and the auditor's CLI that reads (audit/FORMAT.md §1).
//!
//! - `file:///var/lib/warden/audit` — a local directory (the embedded default); objects are
//!   made read-only once written;
//! - `s3://bucket/prefix` — S3 or an S3-compatible server, for Object Lock in compliance
//!   mode (see SECURITY.md for the bucket setup). Options (`endpoint`, `region`,
//!   `allow_http`, `access_key_id`, ...) are object_store's `AmazonS3ConfigKey` names;
//!   credentials also come from the usual `AWS_*` environment variables;
//! - `memory://` — in-process, for unit tests.
//!
//! Every put is create-only: a key that exists means another writer (or tampering).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload};

/// Key of the segment whose first record is `first`.
pub fn segment_key(prefix: &Path, first: u64) -> Path {
    child(prefix, &format!("segments/{first:020}.jsonl"))
}

/// Key of a checkpoint of `size` records made at `time_us`.
pub fn checkpoint_key(prefix: &Path, size: u64, time_us: u64) -> Path {
    child(
        prefix,
        &format!("checkpoints/{size:020}-{time_us:020}.note"),
    )
}

fn child(prefix: &Path, rest: &str) -> Path {
    if prefix.as_ref().is_empty() {
        Path::from(rest)
    } else {
        Path::from(format!("{}/{rest}", prefix.as_ref()))
    }
}

/// An opened store and the prefix the log lives under.
#[derive(Clone)]
pub struct Store {
    pub inner: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The directory of a `file://` store, whose objects are made read-only after writing.
    local_root: Option<PathBuf>,
    /// The bucket of an `s3://` store, for its Object Lock check.
    pub bucket: Option<super::lock::Bucket>,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// Why a store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit store `{url}`: {why}")]
    Url { url: String, why: String },
    #[error(
        "object `{key}` already exists with different content: another writer is using this log"
    )]
    Conflict { key: String },
    #[error("audit store: {0}")]
    Io(#[from] object_store::Error),
    #[error("audit state: {0}")]
    Local(String),
}

impl Store {
    /// Opens the store at `url` with `options` (see the module docs).
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Store, StoreError> {
        let bad = |why: String| StoreError::Url {
            url: url.to_owned(),
            why,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                if !options.is_empty() {
                    return Err(bad("a file store takes no options".to_owned()));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path".to_owned()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?
                    .with_fsync(true);
                Ok(Store {
                    inner: Arc::new(fs),
                    prefix: Path::default(),
                    bucket: None,
                    local_root: Some(dir),
                    url: url.to_owned(),
                })
            }
            "memory" => Ok(Store {
                inner: Arc::new(InMemory::new()),
                prefix: Path::default(),
                bucket: None,
                local_root: None,
                url: url.to_owned(),
            }),
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("no bucket".to_owned()))?;
                let prefix = parsed.path().trim_matches('/');
                // Against a bucket with default Object Lock retention, S3-compatible
                // servers demand this besides the checksum header itself.
                let mut headers = HeaderMap::new();
                headers.insert(
                    HeaderName::from_static("x-amz-sdk-checksum-algorithm"),
                    HeaderValue::from_static("SHA256"),
                );
                let mut builder = AmazonS3Builder::from_env()
                    .with_client_options(ClientOptions::new().with_default_headers(headers))
                    .with_bucket_name(bucket)
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
                for (k, v) in options {
                    let key: AmazonS3ConfigKey = k
                        .parse()
                        .map_err(|_| bad(format!("unknown S3 option `{k}`")))?;
                    builder = builder.with_config(key, v);
                }
                let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
                let region = builder
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".to_owned());
                let s3 = Arc::new(builder.build().map_err(|e| bad(e.to_string()))?);
                Ok(Store {
                    inner: s3.clone(),
                    prefix: Path::from(prefix),
                    bucket: Some(super::lock::Bucket {
                        s3,
                        endpoint,
                        bucket: bucket.to_owned(),
                        region,
                    }),
                    local_root: None,
                    url: url.to_owned(),
                })
            }
            other => Err(bad(format!(
                "unsupported scheme `{other}` (use file://, s3:// or memory://)"
            ))),
        }
    }

    /// The store's URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The logs directly under this store's prefix, each under a prefix of its own holding
    /// `segments/` or `checkpoints/` (one per replica of a deployment), by name.
    pub async fn logs_below(&self) -> Result<Vec<(String, Store)>, StoreError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let children = self
            .inner
            .list_with_delimiter(prefix)
            .await?
            .common_prefixes;
        let mut logs = Vec::new();
        for child in children {
            let inside = self.inner.list_with_delimiter(Some(&child)).await?;
            let is_log = inside
                .common_prefixes
                .iter()
                .any(|p| matches!(p.filename(), Some("segments") | Some("checkpoints")));
            let Some(name) = child.filename().map(str::to_owned) else {
                continue;
            };
            if is_log {
                let url = format!("{}/{name}", self.url.trim_end_matches('/'));
                logs.push((
                    name.clone(),
                    Store {
                        inner: self.inner.clone(),
                        prefix: child,
                        local_root: self.local_root.as_ref().map(|r| r.join(&name)),
                        bucket: self.bucket.clone(),
                        url,
                    },
                ));
            }
        }
        logs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(logs)
    }

    /// Writes `bytes` at `key` unless the key exists. Finding the same bytes there is a
    /// success (a retry after a crash between the put and its bookkeeping); different
    /// bytes mean a second writer. The bytes are shared with the put, not copied (a
    /// segment is megabytes, and this runs on the runtime's worker threads).
    pub async fn create(&self, key: &Path, bytes: impl Into<Bytes>) -> Result<(), StoreError> {
        let bytes: Bytes = bytes.into();
        let payload = PutPayload::from(bytes.clone());
        match self
            .inner
            .put_opts(key, payload, PutMode::Create.into())
            .await
        {
            Ok(_) => {
                self.seal_local(key);
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.inner.get(key).await?.bytes().await?;
                if existing == bytes {
                    Ok(())
                } else {
                    Err(StoreError::Conflict {
                        key: key.to_string(),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a local object read-only (best effort: the directory's own permissions and
    /// the operator's backups are the real protection on a plain file system).
    fn seal_local(&self, key: &Path) {
        let Some(root) = &self.local_root else { return };
        let path = root.join(key.as_ref());
        if let Ok(meta) = std::fs::metadata(&path) {
            let mut perms = meta.permissions();
            perms.set_readonly(true);
            if let Err(e) = std::fs::set_permissions(&path, perms) {
                tracing::warn!(path = %path.display(), error = %e, "could not make an audit object read-only");
            }
        }
    }
}

//! The audit store on S3: a real S3-compatible server (moto) on loopback, with a bucket
//! that has Object Lock on and a default compliance retention. `.ci/run` installs moto into
//! `.ci/venv`; without it these tests are skipped locally and fail in CI.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::audit::{engineer_config, records_from, scratch, wal_files};
use crate::common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A moto server on a free loopback port, killed on drop.
pub struct Moto {
    pub endpoint: String,
    process: tokio::process::Child,
}

impl Moto {
    /// Starts moto and creates `bucket` with Object Lock; `None` (skip) outside CI when
    /// moto is not installed.
    pub async fn start(bucket: &str) -> Option<Moto> {
        let venv = root().join(".ci/venv/bin");
        if !venv.join("moto_server").exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "moto is not installed: run .ci/run"
            );
            eprintln!("skipped: moto not installed (run .ci/run once)");
            return None;
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let process = tokio::process::Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_listening(port).await;
        let out = tokio::process::Command::new(venv.join("python"))
            .arg(root().join("tests/peers/s3_bucket.py"))
            .args([&endpoint, bucket])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "bucket setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Moto { endpoint, process })
    }

    /// Creates another bucket, without Object Lock.
    pub async fn plain_bucket(&self, bucket: &str) {
        let out = tokio::process::Command::new(root().join(".ci/venv/bin/python"))
            .arg(root().join("tests/peers/s3_bucket.py"))
            .args([&self.endpoint, bucket, "--no-lock"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Freezes (`-STOP`) or resumes (`-CONT`) the server process: an outage that keeps
    /// its data (moto holds everything in memory).
    pub fn signal(&self, sig: &str) {
        signal(&self.process, sig);
    }

    /// `store_options` for this server, as TOML.
    pub fn options(&self) -> String {
        format!(
            "[audit.store_options]\nendpoint = {}\nallow_http = \"true\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\ntimeout = \"2s\"\n",
            lit(&self.endpoint)
        )
    }
}

/// Every record in the bucket (through the S3 API) and in the WAL.
async fn s3_records(moto: &Moto, bucket: &str, state: &Path) -> Vec<serde_json::Value> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let options: std::collections::BTreeMap<String, String> = [
        ("endpoint", moto.endpoint.as_str()),
        ("allow_http", "true"),
        ("region", "us-east-1"),
        ("access_key_id", "test"),
        ("secret_access_key", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let store = mcp_warden::audit::Store::open(&format!("s3://{bucket}/log"), &options).unwrap();
    let mut keys: Vec<_> = store
        .inner
        .list(Some(&object_store::path::Path::from("log/segments")))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    let dir = scratch("s3-copy");
    std::fs::create_dir_all(dir.join("segments")).unwrap();
    for key in keys {
        let bytes = store.inner.get(&key).await.unwrap().bytes().await.unwrap();
        std::fs::write(dir.join("segments").join(key.filename().unwrap()), bytes).unwrap();
    }
    records_from(&dir, state)
}

#[tokio::test]
async fn the_log_goes_to_an_object_lock_bucket_and_survives_an_outage() {
    let bucket = "audit";
    let Some(moto) = Moto::start(bucket).await else {
        return;
    };
    let state = scratch("state");
    let config = engineer_config(&format!("s3://{bucket}/log"), &state, &moto.options());
    let proxy = TestProxy::start(&config).await;
    let client = crate::audit::engineer(&proxy.url).await;
    for n in 0..5 {
        client
            .peer()
            .call_tool(call("s__echo", json!({"text": format!("before-{n}")})))
            .await
            .unwrap();
    }
    // The store stops answering: calls go on (the WAL holds every record)...
    moto.signal("-STOP");
    for n in 0..5 {
        client
            .peer()
            .call_tool(call("s__echo", json!({"text": format!("during-{n}")})))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    moto.signal("-CONT");
    // ...and once it is back, the WAL drains into it.
    for n in 0..5 {
        client
            .peer()
            .call_tool(call("s__echo", json!({"text": format!("after-{n}")})))
            .await
            .unwrap();
    }
    client.cancel().await.unwrap();
    proxy.handle.shutdown().await;
    assert_eq!(
        wal_files(&state),
        Vec::<String>::new(),
        "everything reached the bucket"
    );
    let all = s3_records(&moto, bucket, &state).await;
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r["index"], i as u64);
    }
    let texts: Vec<&str> = all
        .iter()
        .filter_map(|r| r["arguments"]["disclosed"]["/text"].as_str())
        .collect();
    for phase in ["before", "during", "after"] {
        for n in 0..5 {
            let t = format!("{phase}-{n}");
            assert!(texts.contains(&t.as_str()), "{t} missing from the bucket");
        }
    }
    assert_eq!(all.last().unwrap()["kind"], "stop");
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_refused_when_required() {
    let Some(moto) = Moto::start("locked").await else {
        return;
    };
    moto.plain_bucket("plain").await;
    let state = scratch("state");
    let config = engineer_config(
        "s3://plain/log",
        &state,
        &format!("object_lock = \"require\"\n{}", moto.options()),
    );
    let config = mcp_warden::Config::from_toml_str(&config).unwrap();
    let refused = mcp_warden::Proxy::from_config(config)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("does not have Object Lock on"),
        "{refused}"
    );
}

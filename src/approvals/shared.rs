//! Requests for approval shared by every replica through Redis (`[limits] redis`), so that
//! an approver answering on any replica reaches a call held on another, and a caller
//! calling again on another replica uses the approval once.
//!
//! Each request is one key, `mcp-warden:approval:<id>`, holding its view, the reason of
//! its answer and whether an answer is being recorded; an index key,
//! `mcp-warden:approval-call:<digest of caller, tool, arguments hash>`, names the request
//! of one exact call. Both expire with the request. The steps that must happen once —
//! claiming a request to answer it, settling the answer, using an approval — are Lua
//! scripts, atomic in Redis.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::{Status, View};

/// What Redis holds of one request.
#[derive(Clone)]
pub struct Stored {
    /// The view, its status the one in force.
    pub view: View,
    pub reason: Option<String>,
    pub answering: bool,
}

// A request is a hash: `view` (its JSON as published, which no script parses: Lua's JSON
// would round numbers in the arguments), `state` (`open` or `answered`), `answering`
// (`0` or `1`), and once answered `status` (JSON) and `reason` (JSON).

/// KEYS: the request. Takes an open request no one is answering: marks it, returns it.
const CLAIM: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if redis.call('HGET', KEYS[1], 'state') ~= 'open' or redis.call('HGET', KEYS[1], 'answering') == '1' then return false end
redis.call('HSET', KEYS[1], 'answering', '1')
return redis.call('HGETALL', KEYS[1])
"#;

/// KEYS: the request. ARGV: the status (JSON), the reason (JSON). Settles a claimed
/// request; an empty status gives the claim back.
const SETTLE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'answering', '0')
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'state', 'answered', 'status', ARGV[1], 'reason', ARGV[2])
end
return 1
"#;

/// KEYS: the request, its index key. Removes an answered request and returns it: an
/// approval is used once, by whichever replica gets here first.
const USE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if redis.call('HGET', KEYS[1], 'state') ~= 'answered' or redis.call('HGET', KEYS[1], 'answering') == '1' then return false end
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return all
"#;

/// How long Redis keeps a request past its expiry.
const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

pub struct SharedApprovals {
    connection: ConnectionManager,
    claim: redis::Script,
    settle: redis::Script,
    take: redis::Script,
}

fn key(id: &str) -> String {
    format!("mcp-warden:approval:{id}")
}

/// The index key of one exact call.
fn call_key(caller: &str, tool: &str, arguments_sha256: &str) -> String {
    let digest = Sha256::digest(format!("{caller}\n{tool}\n{arguments_sha256}"));
    format!(
        "mcp-warden:approval-call:{}",
        crate::audit::record::hex(&digest[..16])
    )
}

fn call_key_of(view: &View) -> String {
    call_key(&view.caller, &view.tool, &view.arguments_sha256)
}

/// A request from its hash's fields (`None`: no such request, or not one of ours).
fn parse(fields: std::collections::HashMap<String, String>) -> Option<Stored> {
    let mut view: View = serde_json::from_str(fields.get("view")?).ok()?;
    if let Some(status) = fields.get("status") {
        view.status = serde_json::from_str(status).ok()?;
    }
    Some(Stored {
        view,
        reason: fields
            .get("reason")
            .and_then(|r| serde_json::from_str(r).ok())
            .flatten(),
        answering: fields.get("answering").is_some_and(|a| a == "1"),
    })
}

fn fields(flat: Option<Vec<String>>) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut flat = flat.unwrap_or_default().into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        out.insert(k, v);
    }
    out
}

impl SharedApprovals {
    /// Connects lazily: a proxy starts while Redis is down.
    pub fn new(url: &str) -> Result<SharedApprovals, String> {
        Ok(SharedApprovals {
            connection: crate::governance::shared::connect(url)?,
            claim: redis::Script::new(CLAIM),
            settle: redis::Script::new(SETTLE),
            take: redis::Script::new(USE),
        })
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// A new request, for every replica to see until it expires.
    pub async fn publish(&self, view: &View, expire: std::time::Duration) -> Result<(), String> {
        // Kept a minute past its expiry, so that the replica that opened it can tell an
        // expired request from one used elsewhere.
        let ttl = (expire + GRACE).as_millis() as u64;
        let text = serde_json::to_string(view).map_err(|e| e.to_string())?;
        let mut c = self.connection();
        redis::pipe()
            .atomic()
            .hset_multiple(
                key(&view.id),
                &[
                    ("view", text.as_str()),
                    ("state", "open"),
                    ("answering", "0"),
                ],
            )
            .pexpire(key(&view.id), ttl.max(1) as i64)
            .pset_ex(call_key_of(view), &view.id, ttl.max(1))
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| format!("Redis: {e}"))
    }

    /// One request as Redis holds it.
    pub async fn fetch(&self, id: &str) -> Result<Option<Stored>, String> {
        let all: std::collections::HashMap<String, String> = self
            .connection()
            .hgetall(key(id))
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(parse(all))
    }

    /// The request of this exact call, if one is open or answered.
    pub async fn find(
        &self,
        caller: &str,
        tool: &str,
        arguments_sha256: &str,
    ) -> Result<Option<String>, String> {
        self.connection()
            .get(call_key(caller, tool, arguments_sha256))
            .await
            .map_err(|e| format!("Redis: {e}"))
    }

    /// Marks an open request as being answered; `Ok(None)` when there is none to answer.
    pub async fn claim(&self, id: &str) -> Result<Option<Stored>, String> {
        let flat: Option<Vec<String>> = self
            .claim
            .key(key(id))
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(parse(fields(flat)))
    }

    /// The answer to a claimed request (`None`: the claim given back).
    pub async fn settle(
        &self,
        id: &str,
        answer: Option<(&Status, Option<&str>)>,
    ) -> Result<(), String> {
        let (status, reason) = match answer {
            Some((status, reason)) => (
                serde_json::to_string(status).map_err(|e| e.to_string())?,
                serde_json::to_string(&reason).map_err(|e| e.to_string())?,
            ),
            None => (String::new(), String::new()),
        };
        let _: i64 = self
            .settle
            .key(key(id))
            .arg(status)
            .arg(reason)
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(())
    }

    /// Uses an answered request: removes it and returns it, or `None` when it is still
    /// open or another replica used it first.
    pub async fn take(&self, view: &View) -> Result<Option<Stored>, String> {
        let flat: Option<Vec<String>> = self
            .take
            .key(key(&view.id))
            .key(call_key_of(view))
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(parse(fields(flat)))
    }

    /// Removes an expired request: true when it was still there (not used elsewhere).
    pub async fn forget(&self, view: &View) -> Result<bool, String> {
        let removed: i64 = self
            .connection()
            .del(&[key(&view.id), call_key_of(view)])
            .await
            .map_err(|e| format!("Redis: {e}"))?;
        Ok(removed > 0)
    }

    /// Every request every replica holds (expired ones left out).
    pub async fn list(&self) -> Result<Vec<View>, String> {
        let mut c = self.connection();
        let mut keys: Vec<String> = Vec::new();
        {
            let mut iter: redis::AsyncIter<String> = c
                .scan_match("mcp-warden:approval:*")
                .await
                .map_err(|e| format!("Redis: {e}"))?;
            while let Some(k) = futures::StreamExt::next(&mut iter).await {
                keys.push(k.map_err(|e| format!("Redis: {e}"))?);
            }
        }
        let mut views = Vec::new();
        for k in keys {
            let all: std::collections::HashMap<String, String> =
                c.hgetall(&k).await.map_err(|e| format!("Redis: {e}"))?;
            let now = super::now_us();
            views.extend(parse(all).map(|s| s.view).filter(|v| v.expires_us > now));
        }
        Ok(views)
    }
}

//! Sessions any replica can serve (`[sessions]`). What a replica needs to serve a session
//! it never saw is small: who owns it and how the client opened it (its `initialize`
//! parameters: revision, capabilities, name). That travels sealed in the session id
//! (`key_file`, [`super::sealed`]) or is kept in Redis under the id (`redis`); a replica
//! handed an id it does not hold checks the owner against the caller (the authentication
//! layer) and rebuilds the session by replaying the client's `initialize` to a new handler
//! (rmcp's session store, [`Store`]), after which the hot path serves it like any other.
//!
//! What does not travel — a call in flight, an open event stream, a request the proxy sent
//! the client and awaits an answer to — stays with the replica holding it; a client that
//! lost it retries or resumes as the protocol lets it.
//!
//! The id of a new session is chosen before rmcp opens it ([`Opening`], set for the
//! `initialize` request by the session-limit step and read by the session manager), since
//! a sealed id carries the parameters of the request that opens it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::{
    SessionId, SessionState, SessionStore, SessionStoreError,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use super::sealed::Sealer;
use crate::config::SessionSharing;

/// A sealed id longer than this (a record's session field) drops the client's experimental and extension
/// capabilities (kept in full in Redis).
const SEALED_MAX: usize = 256;
/// The client name and version as carried in a sealed id, at most...
const NAME_MAX: usize = 64;
/// ...and when the id would be too long otherwise.
const SHORT_NAME: usize = 16;

/// What travels with a session, in few bytes: a sealed id should fit a header and a
/// record's session field.
#[derive(Serialize, Deserialize)]
struct Carried {
    /// The owner: the first 12 bytes of the SHA-256 of its principal key, base64url.
    o: String,
    /// Sealed ids: when a replica stops restoring it (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<u64>,
    /// The revision the client asked for.
    v: String,
    /// The client's capabilities as letters ([`FLAGS`]) when they say all of them...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    /// ...else in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<serde_json::Value>,
    /// The client's name and version.
    n: String,
    r: String,
}

/// The usual client capabilities, one letter each.
const FLAGS: [(char, &str, Option<&str>); 8] = [
    ('r', "roots", None),
    ('l', "roots", Some("listChanged")),
    ('s', "sampling", None),
    ('t', "sampling", Some("tools")),
    ('x', "sampling", Some("context")),
    ('e', "elicitation", None),
    ('f', "elicitation", Some("form")),
    ('u', "elicitation", Some("url")),
];

fn letters(capabilities: &serde_json::Value) -> Option<String> {
    let mut out = String::new();
    for (letter, top, sub) in FLAGS {
        let present = match sub {
            None => capabilities.get(top).is_some(),
            Some(sub) => capabilities.get(top).and_then(|t| t.get(sub)).is_some(),
        };
        if present {
            out.push(letter);
        }
    }
    // Only when the letters say everything there is.
    (expand(&out) == *capabilities).then_some(out)
}

fn expand(letters: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (letter, top, sub) in FLAGS {
        if !letters.contains(letter) {
            continue;
        }
        let entry = out
            .entry(top)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let (Some(sub), Some(entry)) = (sub, entry.as_object_mut()) {
            let value = if sub == "listChanged" {
                serde_json::Value::Bool(true)
            } else {
                serde_json::Value::Object(Default::default())
            };
            entry.insert(sub.to_owned(), value);
        }
    }
    serde_json::Value::Object(out)
}

impl Carried {
    fn of(owner: String, expires: Option<u64>, params: InitializeRequestParams) -> Carried {
        let capabilities = serde_json::to_value(&params.capabilities).unwrap_or_default();
        let c = letters(&capabilities);
        Carried {
            o: owner,
            x: expires,
            v: params.protocol_version.to_string(),
            k: c.is_none().then_some(capabilities),
            c,
            n: params.client_info.name,
            r: params.client_info.version,
        }
    }

    fn params(self) -> Option<InitializeRequestParams> {
        let capabilities = match (self.c, self.k) {
            (Some(letters), _) => expand(&letters),
            (None, Some(full)) => full,
            (None, None) => serde_json::Value::Object(Default::default()),
        };
        let params = serde_json::json!({
            "protocolVersion": self.v,
            "capabilities": capabilities,
            "clientInfo": {"name": self.n, "version": self.r},
        });
        serde_json::from_value(params).ok()
    }
}

enum Way {
    Sealed {
        sealer: Arc<Sealer>,
        max_age: Duration,
    },
    Redis {
        connection: ConnectionManager,
        idle: Duration,
    },
}

/// Where sessions travel: sealed ids or Redis.
pub struct Portable {
    way: Way,
}

/// The session a client's `initialize` is about to open.
pub struct Opening {
    id: SessionId,
    /// Kept in Redis once the session is open (Redis only).
    carried: Option<String>,
}

tokio::task_local! {
    static OPENING: Opening;
}

/// Runs `f` (the rest of the `initialize` request's chain) with `opening` for the session
/// manager to read.
pub async fn opening<F: Future>(opening: Opening, f: F) -> F::Output {
    OPENING.scope(opening, f).await
}

/// The id chosen for the session the current `initialize` request opens, if any.
pub fn opening_id() -> Option<SessionId> {
    OPENING.try_with(|o| o.id.clone()).ok()
}

fn redis_key(id: &str) -> String {
    format!("mcp-warden:session:{id}")
}

/// The owner as carried: a digest of the principal's key, so that neither a sealed id nor
/// Redis holds who the caller is.
pub fn owner_of(principal_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(&sha2::Sha256::digest(principal_key.as_bytes())[..12])
}

fn cut_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

impl Portable {
    /// `None` when sessions stay in their process.
    pub fn new(
        sharing: &SessionSharing,
        idle: Duration,
        stop: &CancellationToken,
    ) -> Option<Arc<Portable>> {
        let way = match sharing {
            SessionSharing::Local => return None,
            SessionSharing::Sealed {
                file,
                keys,
                max_age,
            } => {
                let sealer = Arc::new(Sealer::new(file.clone(), keys.clone()));
                sealer.spawn_reload(stop.clone());
                Way::Sealed {
                    sealer,
                    max_age: *max_age,
                }
            }
            SessionSharing::Redis { url } => match crate::governance::shared::connect(url) {
                Ok(connection) => Way::Redis { connection, idle },
                Err(e) => {
                    tracing::error!(error = %e, "Redis client for shared sessions; sessions stay in this process");
                    return None;
                }
            },
        };
        Some(Arc::new(Portable { way }))
    }

    /// The id of the session the principal `principal_key` opens with `params`; `None`
    /// when it cannot be made portable (the session then stays with this replica).
    pub fn opening(
        &self,
        principal_key: &str,
        mut params: InitializeRequestParams,
    ) -> Option<Opening> {
        let owner = owner_of(principal_key);
        let opening = match &self.way {
            Way::Sealed { sealer, max_age } => {
                cut_to(&mut params.client_info.name, NAME_MAX);
                cut_to(&mut params.client_info.version, NAME_MAX);
                let expires = Some(crate::ids::unix_seconds() + max_age.as_secs());
                // Less and less of what the client said, until the id is short enough.
                let mut plain = Vec::new();
                for shrink in 0..3 {
                    match shrink {
                        1 => {
                            params.capabilities.experimental = None;
                            params.capabilities.extensions = None;
                        }
                        2 => {
                            cut_to(&mut params.client_info.name, SHORT_NAME);
                            cut_to(&mut params.client_info.version, SHORT_NAME);
                        }
                        _ => {}
                    }
                    plain =
                        serde_json::to_vec(&Carried::of(owner.clone(), expires, params.clone()))
                            .ok()?;
                    if Sealer::sealed_len(plain.len()) <= SEALED_MAX {
                        break;
                    }
                }
                sealer.seal(&plain).map(|id| Opening {
                    id: id.into(),
                    carried: None,
                })
            }
            Way::Redis { .. } => Some(Opening {
                id: crate::ids::session_id().into(),
                carried: serde_json::to_string(&Carried::of(owner, None, params)).ok(),
            }),
        };
        if opening.is_none() {
            tracing::warn!("a session could not be made portable: it stays with this replica");
        }
        opening
    }

    async fn carried(&self, id: &str) -> Result<Option<Carried>, String> {
        match &self.way {
            Way::Sealed { sealer, .. } => Ok(sealer
                .open(id)
                .and_then(|plain| serde_json::from_slice::<Carried>(&plain).ok())
                .filter(|c| c.x.is_some_and(|x| crate::ids::unix_seconds() < x))),
            Way::Redis { connection, .. } => {
                let mut connection = connection.clone();
                let text: Option<String> = connection
                    .get(redis_key(id))
                    .await
                    .map_err(|e| format!("Redis: {e}"))?;
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            }
        }
    }

    /// The owner (as [`owner_of`] gives it) of a session this replica may restore; `None`
    /// for an id no replica opened, one that expired, or one changed on the way. An error
    /// when Redis cannot be asked.
    pub async fn owner(&self, id: &str) -> Result<Option<String>, String> {
        if id.len() > 1024 {
            return Ok(None);
        }
        Ok(self.carried(id).await?.map(|c| c.o))
    }

    /// A session in use: Redis keeps it another idle timeout (in the background: a slow
    /// Redis does not hold the request up).
    pub fn touch(&self, id: &str) {
        if let Way::Redis { connection, idle } = &self.way {
            let mut connection = connection.clone();
            let (key, secs) = (redis_key(id), idle.as_secs().max(1) as i64);
            tokio::spawn(async move {
                let _: Result<bool, _> = connection.expire(key, secs).await;
            });
        }
    }
}

/// rmcp's session store over [`Portable`]: a replica asked for a session it does not hold
/// loads its `initialize` parameters from here and replays them.
pub struct Store(pub Arc<Portable>);

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self
            .0
            .carried(session_id)
            .await?
            .and_then(Carried::params)
            .map(SessionState::new))
    }

    async fn store(
        &self,
        session_id: &str,
        _state: &SessionState,
    ) -> Result<(), SessionStoreError> {
        let Way::Redis { connection, idle } = &self.0.way else {
            // The id carries it.
            return Ok(());
        };
        let carried = OPENING
            .try_with(|o| (o.id.as_ref() == session_id).then(|| o.carried.clone()))
            .ok()
            .flatten()
            .flatten();
        let Some(carried) = carried else {
            return Ok(());
        };
        let mut connection = connection.clone();
        let () = connection
            .set_ex(redis_key(session_id), carried, idle.as_secs().max(1))
            .await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        if let Way::Redis { connection, .. } = &self.0.way {
            let mut connection = connection.clone();
            let _: i64 = connection.del(redis_key(session_id)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ClientCapabilities, Implementation};

    use super::*;
    use crate::config::SessionKeys;

    fn sealed(max_age: Duration) -> Arc<Portable> {
        let sharing = SessionSharing::Sealed {
            file: "none".into(),
            keys: SessionKeys::parse(&SessionKeys::generate_line()).unwrap(),
            max_age,
        };
        Portable::new(&sharing, Duration::from_secs(60), &CancellationToken::new()).unwrap()
    }

    fn params() -> InitializeRequestParams {
        let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
            "roots": {"listChanged": true}, "sampling": {}, "elicitation": {"form": {}, "url": {}}
        }))
        .unwrap();
        InitializeRequestParams::new(capabilities, Implementation::new("claude-code", "2.0.14"))
            .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_06_18)
    }

    #[tokio::test]
    async fn a_sealed_id_carries_its_owner_and_the_clients_parameters() {
        let portable = sealed(Duration::from_secs(3600));
        let opening = portable.opening("jwt|User|ann", params()).unwrap();
        let id = opening.id.to_string();
        // Short enough for a header and for a record's session field.
        assert!(id.len() <= 256, "{} bytes: {id}", id.len());
        assert_eq!(
            portable.owner(&id).await.unwrap(),
            Some(owner_of("jwt|User|ann"))
        );
        assert_ne!(owner_of("jwt|User|ann"), owner_of("jwt|User|bob"));
        let state = Store(portable.clone()).load(&id).await.unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(&state.initialize_params).unwrap(),
            serde_json::to_value(params()).unwrap()
        );
        // Ids it did not seal are nobody's.
        assert_eq!(portable.owner("made-up").await.unwrap(), None);
        assert_eq!(portable.owner(&"s1.".repeat(500)).await.unwrap(), None);
        let other = sealed(Duration::from_secs(3600));
        assert_eq!(other.owner(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_sealed_id_past_its_age_is_not_restored() {
        let portable = sealed(Duration::from_secs(0));
        let id = portable.opening("k", params()).unwrap().id.to_string();
        assert_eq!(portable.owner(&id).await.unwrap(), None);
        assert!(Store(portable).load(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_client_that_says_too_much_still_gets_a_bounded_id() {
        let portable = sealed(Duration::from_secs(3600));
        let mut p = params();
        let mut info = Implementation::new("n".repeat(5000), "v\u{202e}".repeat(100));
        info.description = Some("d".repeat(5000));
        p.client_info = info;
        p.capabilities.experimental = Some(
            serde_json::from_value(serde_json::json!({"big": {"x": "y".repeat(4000)}})).unwrap(),
        );
        let id = portable.opening("k", p).unwrap().id.to_string();
        assert!(id.len() <= SEALED_MAX, "{}", id.len());
        let state = Store(portable).load(&id).await.unwrap().unwrap();
        let p = state.initialize_params;
        assert_eq!(p.client_info.name, "n".repeat(SHORT_NAME));
        assert!(p.client_info.version.len() <= SHORT_NAME);
        assert!(p.capabilities.experimental.is_none());
        assert!(p.capabilities.sampling.is_some());
    }
}

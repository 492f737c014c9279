//! The kill switch shared by every replica through Redis (`[limits] redis`): one hash,
//! `mcp-warden:switches`, field `<target>:<name>` holding who switched it off, when and
//! why. A change is written there first (a change that cannot reach Redis is refused, so
//! replicas never disagree by a lost write), then locally; every replica reads the hash
//! twice a second and takes it as the set in force. A replica that cannot reach Redis
//! keeps the last set it read, and says so in the log, until Redis answers again.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Off, Switched, Target};

const KEY: &str = "mcp-warden:switches";

/// How often each replica reads the shared set.
pub const EVERY: Duration = Duration::from_millis(500);

pub struct Shared {
    connection: ConnectionManager,
}

fn field(target: Target, name: &str) -> String {
    format!("{}:{name}", target.as_str())
}

impl Shared {
    /// Connects lazily: a proxy starts while Redis is down.
    pub fn new(url: &str) -> Result<Shared, String> {
        Ok(Shared {
            connection: crate::governance::shared::connect(url)?,
        })
    }

    /// Writes one entry (or removes it).
    pub async fn put(&self, target: Target, name: &str, off: Option<&Off>) -> Result<(), String> {
        let mut connection = self.connection.clone();
        let field = field(target, name);
        match off {
            Some(off) => {
                let value = serde_json::to_string(off).map_err(|e| e.to_string())?;
                connection
                    .hset::<_, _, _, ()>(KEY, field, value)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => connection
                .hdel::<_, _, ()>(KEY, field)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// The shared set; `None` when Redis holds none yet (a first replica seeds it).
    pub async fn read(&self) -> Result<Option<Switched>, String> {
        let mut connection = self.connection.clone();
        let exists: bool = connection.exists(KEY).await.map_err(|e| e.to_string())?;
        if !exists {
            return Ok(None);
        }
        let all: Vec<(String, String)> =
            connection.hgetall(KEY).await.map_err(|e| e.to_string())?;
        let mut set = Switched::default();
        for (field, value) in all {
            let Some((target, name)) = field.split_once(':') else {
                continue;
            };
            let Ok(off) = serde_json::from_str::<Off>(&value) else {
                tracing::warn!(%field, "an unreadable kill switch entry in Redis is ignored");
                continue;
            };
            let map = match target {
                "tool" => &mut set.tools,
                "backend" => &mut set.backends,
                "principal" => &mut set.principals,
                _ => continue,
            };
            map.insert(name.to_owned(), off);
        }
        Ok(Some(set))
    }

    /// Seeds Redis with `set` (a replica that had switches before sharing was set up), and
    /// a marker so an empty set still counts as one.
    pub async fn seed(&self, set: &Switched) -> Result<(), String> {
        let mut connection = self.connection.clone();
        let mut pipe = redis::pipe();
        pipe.hset(KEY, "_", "{}").ignore();
        for (target, map) in [
            (Target::Tool, &set.tools),
            (Target::Backend, &set.backends),
            (Target::Principal, &set.principals),
        ] {
            for (name, off) in map {
                let value = serde_json::to_string(off).map_err(|e| e.to_string())?;
                pipe.hset(KEY, field(target, name), value).ignore();
            }
        }
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(|e| e.to_string())
    }
}

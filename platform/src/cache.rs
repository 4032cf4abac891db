//! A small key-value cache with expiry: Redis when configured (shared by
//! every server instance), else an in-process map. It backs the rate
//! limiter's counters and the API-key lookup cache on the gRPC hot path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::error::Result;

/// Where cached values live.
#[derive(Clone)]
pub enum Cache {
    /// This process only.
    Memory(Arc<Mutex<HashMap<String, (String, Instant)>>>),
    /// A Redis server; every key is prefixed so that deployments (and
    /// tests) can share one server.
    Redis {
        /// The multiplexed, reconnecting connection.
        conn: ConnectionManager,
        /// Key prefix.
        prefix: String,
    },
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Cache {
    /// Redis at `url` when given, else in-process.
    pub async fn connect(url: Option<&str>, prefix: &str) -> Result<Cache> {
        match url {
            None => Ok(Cache::Memory(Arc::default())),
            Some(url) => {
                let client = redis::Client::open(url)?;
                let mut conn = ConnectionManager::new(client).await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(Cache::Redis {
                    conn,
                    prefix: prefix.to_string(),
                })
            }
        }
    }

    /// "memory" or "redis".
    pub fn kind(&self) -> &'static str {
        match self {
            Cache::Memory(_) => "memory",
            Cache::Redis { .. } => "redis",
        }
    }

    /// The value under `key`, if present and unexpired.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        match self {
            Cache::Memory(m) => {
                let mut m = m.lock();
                match m.get(key) {
                    Some((v, exp)) if *exp > Instant::now() => Ok(Some(v.clone())),
                    Some(_) => {
                        m.remove(key);
                        Ok(None)
                    }
                    None => Ok(None),
                }
            }
            Cache::Redis { conn, prefix } => Ok(conn.clone().get(format!("{prefix}{key}")).await?),
        }
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        match self {
            Cache::Memory(m) => {
                let mut m = m.lock();
                if m.len() > 100_000 {
                    let now = Instant::now();
                    m.retain(|_, (_, exp)| *exp > now);
                }
                m.insert(key.to_string(), (value.to_string(), Instant::now() + ttl));
                Ok(())
            }
            Cache::Redis { conn, prefix } => {
                let _: () = conn
                    .clone()
                    .set_ex(format!("{prefix}{key}"), value, ttl.as_secs().max(1))
                    .await?;
                Ok(())
            }
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Cache::Memory(m) => {
                m.lock().remove(key);
                Ok(())
            }
            Cache::Redis { conn, prefix } => {
                let _: () = conn.clone().del(format!("{prefix}{key}")).await?;
                Ok(())
            }
        }
    }

    /// Adds one to the counter under `key` (created with lifetime `ttl`) and
    /// returns the new count.
    pub async fn incr(&self, key: &str, ttl: Duration) -> Result<u64> {
        match self {
            Cache::Memory(m) => {
                let mut m = m.lock();
                let now = Instant::now();
                let e = m.entry(key.to_string()).or_insert_with(|| ("0".into(), now + ttl));
                if e.1 <= now {
                    *e = ("0".into(), now + ttl);
                }
                let n = e.0.parse::<u64>().unwrap_or(0) + 1;
                e.0 = n.to_string();
                Ok(n)
            }
            Cache::Redis { conn, prefix } => {
                let k = format!("{prefix}{key}");
                let (n,): (u64,) = redis::pipe()
                    .atomic()
                    .incr(&k, 1u64)
                    .expire(&k, ttl.as_secs().max(1) as i64)
                    .ignore()
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_expires_and_counts() {
        let c = Cache::connect(None, "").await.unwrap();
        c.set("a", "1", Duration::from_millis(30)).await.unwrap();
        assert_eq!(c.get("a").await.unwrap().as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(c.get("a").await.unwrap(), None);
        assert_eq!(c.incr("n", Duration::from_secs(5)).await.unwrap(), 1);
        assert_eq!(c.incr("n", Duration::from_secs(5)).await.unwrap(), 2);
        c.delete("n").await.unwrap();
        assert_eq!(c.incr("n", Duration::from_secs(5)).await.unwrap(), 1);
    }
}

//! The distributed adapter: Redis, shared by a read model's replicas.
//!
//! A commit is one Lua script: Redis runs a script alone, so checking the
//! keys read and writing the batch happen with nothing in between — the
//! equivalent of a SQL transaction's inbox insert and writes, without
//! WATCH (which needs a connection per batch) on a multiplexed connection.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use runtime::retry::Unavailable;

use crate::{Commit, KvBackend, Value};

/// KEYS: the keys expected, then the keys written. ARGV: how many are
/// expected, then per expected key "1" and its value or "0" (absent), then
/// per written key "s" and its value or "d" (removed).
const COMMIT: &str = r"
local expected = tonumber(ARGV[1])
local arg = 2
for i = 1, expected do
  local current = redis.call('GET', KEYS[i])
  if ARGV[arg] == '1' then
    if current ~= ARGV[arg + 1] then return 0 end
  elseif current then
    return 0
  end
  arg = arg + 2
end
for i = expected + 1, #KEYS do
  if ARGV[arg] == 's' then
    redis.call('SET', KEYS[i], ARGV[arg + 1])
  else
    redis.call('DEL', KEYS[i])
  end
  arg = arg + 2
end
return 1
";

#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
    commit: Script,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

/// A Redis that cannot be reached is a passing fault, like a database
/// outage: the consumer waits it out.
fn classify(error: redis::RedisError) -> anyhow::Error {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
    {
        anyhow::Error::new(error).context(Unavailable("redis".into()))
    } else {
        error.into()
    }
}

impl Redis {
    pub async fn connect(url: &str) -> anyhow::Result<Redis> {
        let client = redis::Client::open(url)?;
        // Reconnects by itself after a broken connection; one multiplexed
        // connection carries every request of the process.
        let connection = ConnectionManager::new(client).await.map_err(classify)?;
        Ok(Redis {
            connection,
            commit: Script::new(COMMIT),
        })
    }
}

#[async_trait]
impl KvBackend for Redis {
    async fn get_many(&self, keys: &[String]) -> anyhow::Result<Vec<Option<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .map_err(classify)
    }

    async fn commit(&self, commit: Commit) -> anyhow::Result<bool> {
        let mut invocation = self.commit.prepare_invoke();
        invocation.arg(commit.expected.len());
        for (key, value) in &commit.expected {
            invocation.key(key);
            match value {
                Some(value) => invocation.arg("1").arg(value.as_slice()),
                None => invocation.arg("0").arg(""),
            };
        }
        for (key, value) in &commit.writes {
            invocation.key(key);
            match value {
                Some(value) => invocation.arg("s").arg(value.as_slice()),
                None => invocation.arg("d").arg(""),
            };
        }
        let mut connection = self.connection.clone();
        let done: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(classify)?;
        Ok(done == 1)
    }

    async fn clear(&self, prefix: &str) -> anyhow::Result<u64> {
        let mut connection = self.connection.clone();
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .map_err(classify)?;
            if !keys.is_empty() {
                let gone: u64 = connection.unlink(&keys).await.map_err(classify)?;
                removed += gone;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

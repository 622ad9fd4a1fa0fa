//! Small Redis facade over fred ([`Cache`]), the key formats ([`keys`]) and the Lua
//! scripts ([`scripts`]).
//! Nothing of fred leaks through this API but the source of [`Error::Redis`], so the
//! client library can be swapped. Every call has the configured command timeout; failures are
//! mapped to [`Error::Redis`] / [`Error::Timeout`] with the key as context.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::{ClientLike, EventInterface, HashesInterface, KeysInterface};
use fred::prelude::{Builder, Config, ReconnectPolicy, ServerConfig};
use fred::types::Value;

pub mod keys;
pub(crate) mod scripts;

use crate::breaker::Breaker;
use crate::config::{RedisConfig, Timeouts};
use crate::error::{Error, Result};
pub use scripts::Script;

/// Result value of a script, decoupled from the client library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptValue {
    Nil,
    Int(i64),
    Text(String),
    List(Vec<ScriptValue>),
}

impl ScriptValue {
    /// Integer view: integers as-is, decimal strings parsed, anything else `None`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ScriptValue::Int(i) => Some(*i),
            ScriptValue::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

fn to_script_value(v: Value) -> ScriptValue {
    match v {
        Value::Null => ScriptValue::Nil,
        Value::Integer(i) => ScriptValue::Int(i),
        Value::Boolean(b) => ScriptValue::Int(i64::from(b)),
        Value::Double(d) => ScriptValue::Text(d.to_string()),
        Value::String(s) => ScriptValue::Text(s.to_string()),
        Value::Bytes(b) => ScriptValue::Text(String::from_utf8_lossy(&b).into_owned()),
        Value::Array(a) => ScriptValue::List(a.into_iter().map(to_script_value).collect()),
        other => ScriptValue::Text(format!("{other:?}")),
    }
}

fn value_to_opt_string(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Boolean(b) => Some(u8::from(b).to_string()),
        _ => None,
    }
}

fn value_to_map(v: Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        Value::Map(m) => {
            for (k, v) in m.inner() {
                out.insert(
                    value_to_opt_string(k.into()).unwrap_or_default(),
                    value_to_opt_string(v).unwrap_or_default(),
                );
            }
        }
        Value::Array(items) => {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.insert(
                    value_to_opt_string(k).unwrap_or_default(),
                    value_to_opt_string(v).unwrap_or_default(),
                );
            }
        }
        _ => {}
    }
    out
}

/// One logical Redis instance (unread, group_set, token or group_member).
/// Cheap to clone; instances with the same host/port/db share the connections.
#[derive(Clone)]
pub struct Cache {
    pool: Pool,
    name: &'static str,
    timeout: Duration,
    /// Shared by the logical instances of one endpoint.
    breaker: Arc<Breaker>,
    /// Replicas a replicated script waits for, and for how long ([`Cache::eval_replicated`]).
    replica_acks: u32,
    replica_ack_wait: Duration,
    /// The connection the replicated scripts and their `WAIT` run on (with `replica_acks`).
    acks_pool: Option<Pool>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Maximum multiplexed connections per Redis pool (fred pipelines commands per connection,
/// so the original's 16–48 blocking connections are not needed; on the reference machine
/// 2 connections gave more throughput and less memory than 8, see BENCHMARKS.md).
const MAX_REDIS_CONNECTIONS: usize = 2;

/// The call counters of instance `name`, at 0 from the start (rates and alerts see them).
fn register_series(name: &'static str) {
    for metric in [
        crate::metrics::REDIS_COMMANDS,
        crate::metrics::REDIS_ERRORS,
        crate::metrics::REDIS_TIMEOUTS,
    ] {
        metrics::counter!(metric, "redis" => name).increment(0);
    }
}

impl Cache {
    /// Connect a pool (initial connect bounded by `timeouts.connect`). Reconnects forever
    /// with a 400 ms constant delay afterwards; SELECTs `cfg.db` on every (re)connect.
    pub(crate) async fn connect(
        name: &'static str,
        cfg: &RedisConfig,
        timeouts: &Timeouts,
    ) -> Result<Cache> {
        if !cfg.sentinels.is_empty() && cfg.sentinel_service.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "redis {name}: sentinels given without sentinel_service (the monitored master name)"
            )));
        }
        let server = if cfg.sentinels.is_empty() {
            ServerConfig::new_centralized(cfg.host.clone(), cfg.port)
        } else {
            let mut hosts = Vec::with_capacity(cfg.sentinels.len());
            for s in &cfg.sentinels {
                let parsed = s.rsplit_once(':').and_then(|(h, p)| {
                    Some((
                        h.trim_matches(['[', ']']).to_owned(),
                        p.parse::<u16>().ok()?,
                    ))
                });
                match parsed {
                    Some(hp) => hosts.push(hp),
                    None => {
                        return Err(Error::Invalid(format!(
                            "redis {name}: sentinel `{s}` is not host:port"
                        )))
                    }
                }
            }
            ServerConfig::new_sentinel(hosts, cfg.sentinel_service.clone())
        };
        let config = Config {
            server,
            database: Some(cfg.db),
            fail_fast: true,
            ..Config::default()
        };
        let command_timeout = timeouts.redis_command;
        let connect_timeout = timeouts.connect;
        let size = cfg.max_connections.clamp(1, MAX_REDIS_CONNECTIONS);
        let build = |size: usize| {
            Builder::from_config(config.clone())
                .with_performance_config(|p| p.default_command_timeout = command_timeout)
                .with_connection_config(|c| {
                    c.connection_timeout = connect_timeout;
                    c.internal_command_timeout = command_timeout;
                    c.max_command_attempts = 1;
                })
                .set_policy(ReconnectPolicy::new_constant(0, 400))
                .build_pool(size)
                .map_err(|e| Error::redis(format!("{name}: build pool"), e))
        };
        let init = async |pool: &Pool| match tokio::time::timeout(
            connect_timeout + Duration::from_millis(500),
            pool.init(),
        )
        .await
        {
            Ok(Ok(_handle)) => Ok(()),
            Ok(Err(e)) => Err(Error::redis(format!("{name}: connect"), e)),
            Err(_) => Err(Error::Timeout {
                what: format!("redis {name}: connect {}", cfg.label()),
                after: connect_timeout,
            }),
        };
        let pool = build(size)?;
        init(&pool).await?;
        // `WAIT` blocks the connection it runs on: the replicated allocations get one of
        // their own, so the other commands never queue behind a slow replica.
        let acks_pool = if cfg.replica_acks > 0 {
            let p = build(1)?;
            init(&p).await?;
            Some(p)
        } else {
            None
        };
        let endpoint = cfg.label();
        metrics::counter!(crate::metrics::REDIS_RECONNECTS, "endpoint" => endpoint.clone())
            .increment(0);
        for client in pool.clients() {
            let endpoint = endpoint.clone();
            client.on_reconnect(move |_| {
                metrics::counter!(crate::metrics::REDIS_RECONNECTS, "endpoint" => endpoint.clone())
                    .increment(1);
                async { Ok(()) }
            });
        }
        register_series(name);
        metrics::counter!(crate::metrics::REDIS_REPLICA_ACK_TIMEOUTS, "redis" => name).increment(0);
        Ok(Cache {
            pool: pool.clone(),
            name,
            timeout: command_timeout,
            replica_acks: cfg.replica_acks,
            acks_pool,
            // Never 0 (WAIT 0 waits for ever), always well inside the command timeout.
            replica_ack_wait: cfg
                .replica_ack_wait
                .clamp(Duration::from_millis(1), command_timeout / 2),
            breaker: Breaker::new(
                format!("redis {}", cfg.label()),
                {
                    let pool = pool.clone();
                    Arc::new(move || {
                        let pool = pool.clone();
                        Box::pin(async move { pool.ping::<()>(None).await.is_ok() })
                    })
                },
                // fred reconnects by itself; a probe only asks whether it has: a PING on a
                // live connection answers at once.
                command_timeout.min(Duration::from_millis(250)),
            ),
        })
    }

    /// Same connections, another logical name (used when instances share an endpoint).
    pub(crate) fn renamed(&self, name: &'static str) -> Cache {
        register_series(name);
        Cache {
            pool: self.pool.clone(),
            name,
            timeout: self.timeout,
            breaker: self.breaker.clone(),
            replica_acks: self.replica_acks,
            replica_ack_wait: self.replica_ack_wait,
            acks_pool: self.acks_pool.clone(),
        }
    }

    /// Logical instance name (for logs and the `redis` label of its metrics).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `work` through the endpoint's circuit breaker: answered at once while Redis is known
    /// to be down (see [`crate::breaker`]).
    async fn guarded<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let started = std::time::Instant::now();
        let out = self
            .breaker
            .call(work, |r| matches!(r, Err(e) if e.is_redis_outage()))
            .await;
        let instance = self.name;
        crate::stages::note("redis", instance, started.elapsed());
        metrics::counter!(crate::metrics::REDIS_COMMANDS, "redis" => instance).increment(1);
        if let Err(e) = &out {
            metrics::counter!(crate::metrics::REDIS_ERRORS, "redis" => instance).increment(1);
            if matches!(e.inner(), Error::Timeout { .. }) {
                metrics::counter!(crate::metrics::REDIS_TIMEOUTS, "redis" => instance).increment(1);
            }
        }
        out
    }

    fn err(&self, what: &str, key: &str, e: fred::error::Error) -> Error {
        Error::redis_after(format!("{} {what} {key}", self.name), e, self.timeout)
    }

    /// GET `key` → value, `None` when missing.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        self.guarded(async {
            let v: Value = boxed(self.pool.get(key))
                .await
                .map_err(|e| self.err("GET", key, e))?;
            Ok(value_to_opt_string(v))
        })
        .await
    }

    /// SET `key` `value` (no TTL).
    pub async fn set(&self, key: &str, value: &str) -> Result<()> {
        self.guarded(async {
            boxed(self.pool.set::<(), _, _>(key, value, None, None, false))
                .await
                .map_err(|e| self.err("SET", key, e))
        })
        .await
    }

    /// SET `key` `value` NX → true when it was set (key was absent).
    pub async fn set_nx(&self, key: &str, value: &str) -> Result<bool> {
        self.guarded(async {
            let v: Value =
                boxed(
                    self.pool
                        .set(key, value, None, Some(fred::types::SetOptions::NX), false),
                )
                .await
                .map_err(|e| self.err("SET NX", key, e))?;
            Ok(!matches!(v, Value::Null))
        })
        .await
    }

    /// DEL `keys` → number removed.
    pub async fn del(&self, keys: &[&str]) -> Result<u64> {
        self.guarded(async {
            if keys.is_empty() {
                return Ok(0);
            }
            let ks: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            boxed(self.pool.del(ks))
                .await
                .map_err(|e| self.err("DEL", keys[0], e))
        })
        .await
    }

    /// INCRBY `key` `n` → new value.
    pub async fn incr_by(&self, key: &str, n: i64) -> Result<i64> {
        self.guarded(async {
            boxed(self.pool.incr_by(key, n))
                .await
                .map_err(|e| self.err("INCRBY", key, e))
        })
        .await
    }

    /// EXISTS `key`.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.guarded(async {
            let n: i64 = boxed(self.pool.exists(key))
                .await
                .map_err(|e| self.err("EXISTS", key, e))?;
            Ok(n > 0)
        })
        .await
    }

    /// MGET `keys` → one entry per key (in order), `None` for missing keys.
    pub async fn mget(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        self.guarded(async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let v: Value = boxed(self.pool.mget(keys.to_vec()))
                .await
                .map_err(|e| self.err("MGET", &keys[0], e))?;
            Ok(match v {
                Value::Array(items) => items.into_iter().map(value_to_opt_string).collect(),
                other => vec![value_to_opt_string(other)],
            })
        })
        .await
    }

    /// HGET `key` `field`.
    pub async fn hget(&self, key: &str, field: &str) -> Result<Option<String>> {
        self.guarded(async {
            let v: Value = boxed(self.pool.hget(key, field))
                .await
                .map_err(|e| self.err("HGET", key, e))?;
            Ok(value_to_opt_string(v))
        })
        .await
    }

    /// HSET `key` `field` `value` → true when the field was new.
    pub async fn hset(&self, key: &str, field: &str, value: &str) -> Result<bool> {
        self.guarded(async {
            let n: i64 = boxed(self.pool.hset(key, (field, value)))
                .await
                .map_err(|e| self.err("HSET", key, e))?;
            Ok(n > 0)
        })
        .await
    }

    /// HSET `key` with several field/value pairs (no-op for an empty list).
    pub async fn hset_many(&self, key: &str, pairs: &[(String, String)]) -> Result<()> {
        self.guarded(async {
            if pairs.is_empty() {
                return Ok(());
            }
            let v: Vec<(String, String)> = pairs.to_vec();
            boxed(self.pool.hset::<(), _, _>(key, v))
                .await
                .map_err(|e| self.err("HSET", key, e))
        })
        .await
    }

    /// HDEL `key` `fields...` → number removed (no-op for an empty list).
    pub async fn hdel(&self, key: &str, fields: &[&str]) -> Result<u64> {
        self.guarded(async {
            if fields.is_empty() {
                return Ok(0);
            }
            let fs: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            boxed(self.pool.hdel(key, fs))
                .await
                .map_err(|e| self.err("HDEL", key, e))
        })
        .await
    }

    /// HGETALL `key` → fields in lexicographic order (empty when missing).
    pub async fn hgetall(&self, key: &str) -> Result<BTreeMap<String, String>> {
        self.guarded(async {
            let v: Value = boxed(self.pool.hgetall(key))
                .await
                .map_err(|e| self.err("HGETALL", key, e))?;
            Ok(value_to_map(v))
        })
        .await
    }

    /// HKEYS `key` → field names in lexicographic order (empty when missing).
    pub async fn hkeys(&self, key: &str) -> Result<Vec<String>> {
        self.guarded(async {
            let mut keys: Vec<String> = boxed(self.pool.hkeys(key))
                .await
                .map_err(|e| self.err("HKEYS", key, e))?;
            keys.sort_unstable();
            Ok(keys)
        })
        .await
    }

    /// HINCRBY `key` `field` `n` → new value.
    pub async fn hincrby(&self, key: &str, field: &str, n: i64) -> Result<i64> {
        self.guarded(async {
            boxed(self.pool.hincrby(key, field, n))
                .await
                .map_err(|e| self.err("HINCRBY", key, e))
        })
        .await
    }

    /// HGET of many (key, field) pairs in one pipelined round trip; `None` for missing.
    pub async fn hget_many(&self, items: &[(String, String)]) -> Result<Vec<Option<String>>> {
        self.guarded(async {
            if items.is_empty() {
                return Ok(Vec::new());
            }
            let client = self.pool.next();
            let pipe = client.pipeline();
            for (k, f) in items {
                boxed(pipe.hget::<(), _, _>(k.as_str(), f.as_str()))
                    .await
                    .map_err(|e| self.err("HGET (pipeline)", k, e))?;
            }
            let all: Vec<Value> = tokio::time::timeout(self.timeout, boxed(pipe.all()))
                .await
                .map_err(|_| Error::Timeout {
                    what: format!("redis {} HGET pipeline {}", self.name, items[0].0),
                    after: self.timeout,
                })?
                .map_err(|e| self.err("HGET (pipeline)", &items[0].0, e))?;
            Ok(all.into_iter().map(value_to_opt_string).collect())
        })
        .await
    }

    /// HGETALL of many keys in one pipelined round trip.
    pub async fn hgetall_many(&self, keys: &[String]) -> Result<Vec<BTreeMap<String, String>>> {
        self.guarded(async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let client = self.pool.next();
            let pipe = client.pipeline();
            for k in keys {
                boxed(pipe.hgetall::<(), _>(k.as_str()))
                    .await
                    .map_err(|e| self.err("HGETALL (pipeline)", k, e))?;
            }
            let all: Vec<Value> = tokio::time::timeout(self.timeout, boxed(pipe.all()))
                .await
                .map_err(|_| Error::Timeout {
                    what: format!("redis {} HGETALL pipeline {}", self.name, keys[0]),
                    after: self.timeout,
                })?
                .map_err(|e| self.err("HGETALL (pipeline)", &keys[0], e))?;
            Ok(all.into_iter().map(value_to_map).collect())
        })
        .await
    }

    /// Run `script` with `keys` and `args` (atomic on the server): EVALSHA, and on NOSCRIPT
    /// (a restarted or flushed server) SCRIPT LOAD and EVALSHA again (fred's
    /// `evalsha_with_reload`), so the source crosses the wire only when the server lacks it.
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<ScriptValue> {
        self.guarded(async {
            let v = self.evalsha(self.pool.next(), script, keys, args).await?;
            Ok(to_script_value(v))
        })
        .await
    }

    /// EVALSHA of `script` on `client`, loading it again on NOSCRIPT.
    async fn evalsha(
        &self,
        client: &fred::clients::Client,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value> {
        boxed(
            script
                .fred()
                .evalsha_with_reload(client, keys.to_vec(), args.to_vec()),
        )
        .await
        .map_err(|e| self.err("EVALSHA", script.name(), e))
    }

    /// [`Cache::eval`], then, when the instance is configured with `replica_acks`, `WAIT` on
    /// the same connection until that many replicas have the script's writes (at most
    /// `replica_ack_wait`; the result is returned either way, a short count is logged and
    /// counted). For the msgId counters: a failover promotes a replica that has them.
    pub async fn eval_replicated(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<ScriptValue> {
        let Some(acks_pool) = self.acks_pool.as_ref().filter(|_| self.replica_acks > 0) else {
            return self.eval(script, keys, args).await;
        };
        self.guarded(async {
            let client = acks_pool.next();
            let v = self.evalsha(client, script, keys, args).await?;
            let wait_ms = u64::try_from(self.replica_ack_wait.as_millis()).unwrap_or(u64::MAX);
            let acked: std::result::Result<i64, _> = boxed(client.custom(
                fred::types::CustomCommand::new_static(
                    "WAIT",
                    fred::types::ClusterHash::FirstKey,
                    false,
                ),
                vec![
                    i64::from(self.replica_acks),
                    i64::try_from(wait_ms).unwrap_or(i64::MAX),
                ],
            ))
            .await;
            // The script ran (its msgIds are handed out): a failed WAIT is logged and
            // counted like a short one, never the caller's failure.
            let acked = acked.unwrap_or_else(|error| {
                tracing::warn!(redis = self.name, %error, "WAIT after a msgId allocation failed");
                0
            });
            if acked < i64::from(self.replica_acks) {
                metrics::counter!(crate::metrics::REDIS_REPLICA_ACK_TIMEOUTS, "redis" => self.name)
                    .increment(1);
                tracing::warn!(
                    redis = self.name,
                    acked,
                    wanted = self.replica_acks,
                    "msgId allocation not yet on the wanted replicas"
                );
            }
            Ok(to_script_value(v))
        })
        .await
    }

    /// PING (health check).
    pub async fn ping(&self) -> Result<()> {
        boxed(self.pool.ping::<()>(None))
            .await
            .map_err(|e| self.err("PING", "", e))
    }
}

/// fred's command futures are about 5 KB each. Boxed at once, a request waiting on Redis
/// holds a pointer instead of that state (128 requests in flight hold 128 of them).
fn boxed<'a, T>(
    fut: impl std::future::Future<Output = T> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> {
    Box::pin(fut)
}

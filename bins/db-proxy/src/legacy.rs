//! The original `dbproxyserver.conf` format (docs/compatibility.md#legacy-config-parsing-rules), as a `config::Format`.
//!
//! Parsing follows the original `CConfigFileReader` exactly (quirk Q-X04, KEEP):
//! * the file is read in chunks of at most 255 bytes (a longer line continues as a new "line");
//! * everything from the first `#` of a chunk is a comment;
//! * `key = value` is split at the first `=`, spaces and tabs (only those) are trimmed from both;
//! * chunks without `=`, with an empty key or with an empty value are ignored;
//! * the **first** occurrence of a key wins;
//! * `DBInstances` / `CacheInstances` are split on `,` (items not trimmed), `ListenIP` on `;`;
//! * numbers use C `atoi` semantics (optional sign, leading digits, anything else → 0).
//!
//! [`LegacyFormat`] then maps the original keys onto the same tree the TOML file uses
//! (`server.*`, `mysql.master|slave.*`, `redis.<instance>.*`), so both formats share one
//! deserializer, the environment overrides and the validation.

use std::collections::HashMap;
use std::error::Error as StdError;

use config::{Map, Value, ValueKind};

/// Max bytes the original reads per `fgets` call (buffer of 256 incl. the NUL).
pub const LINE_LIMIT: usize = 255;

/// Name of the MySQL instance used for writes.
pub const DB_MASTER: &str = "teamtalk_master";
/// Name of the MySQL instance used for most reads.
pub const DB_SLAVE: &str = "teamtalk_slave";
/// Redis instances the handlers use (all required). `sync` is accepted and ignored (Q-R07).
pub const CACHE_REQUIRED: [&str; 4] = ["unread", "group_set", "token", "group_member"];

/// Parses the text into the original's key → value map (first duplicate wins).
pub fn parse_pairs(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for chunk in chunks(text.as_bytes()) {
        let mut buf = chunk;
        if let Some(stripped) = buf.strip_suffix(b"\n") {
            buf = stripped;
        }
        if let Some(pos) = buf.iter().position(|&b| b == b'#') {
            buf = &buf[..pos];
        }
        let Some(eq) = buf.iter().position(|&b| b == b'=') else {
            continue;
        };
        let key = trim_space_tab(&buf[..eq]);
        let value = trim_space_tab(&buf[eq + 1..]);
        if key.is_empty() || value.is_empty() {
            continue;
        }
        let key = String::from_utf8_lossy(key).into_owned();
        let value = String::from_utf8_lossy(value).into_owned();
        map.entry(key).or_insert(value);
    }
    map
}

/// Splits like repeated `fgets(buf, 256, fp)`: every piece ends at a `\n` (kept) or after 255 bytes.
fn chunks(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let line_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| p + 1);
        let take = line_end.min(LINE_LIMIT);
        out.push(&bytes[..take]);
        bytes = &bytes[take..];
    }
    out
}

fn trim_space_tab(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// C `atoi`: skips leading whitespace, optional sign, then decimal digits; anything else ends it.
/// Overflow saturates (the original's behaviour there is undefined).
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// `ListenIP` split on `;` (empty items dropped, others kept as written).
pub fn split_listen(s: &str) -> Vec<String> {
    s.split(';')
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `DBInstances` / `CacheInstances` split on `,`; items are NOT trimmed (Q-X04).
pub fn split_instances(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Error of the legacy mapping: always names the original key.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// A required key is absent (or has an empty value, which the original treats as absent).
    #[error("missing key `{0}`")]
    Missing(String),
    /// An instance list does not name a required instance.
    #[error("`{list}` must list the instance `{name}` (items are not trimmed; got {got:?})")]
    MissingInstance {
        /// `DBInstances` or `CacheInstances`.
        list: &'static str,
        /// The instance name required by the handlers.
        name: &'static str,
        /// The items as parsed.
        got: Vec<String>,
    },
}

/// Every settings path a legacy file sets, in the order `--check-config` lists them.
pub fn mapped_paths() -> Vec<String> {
    let mut out: Vec<String> = ["listen", "port", "threads", "msfs_url", "aes_key"]
        .iter()
        .map(|k| format!("server.{k}"))
        .collect();
    for role in ["master", "slave"] {
        for k in [
            "host",
            "port",
            "database",
            "user",
            "password",
            "max_connections",
        ] {
            out.push(format!("mysql.{role}.{k}"));
        }
    }
    for name in CACHE_REQUIRED {
        for k in ["host", "port", "db", "max_connections"] {
            out.push(format!("redis.{name}.{k}"));
        }
    }
    out
}

/// Legacy key name for a settings path (used in validation messages), if the path comes from one.
pub fn legacy_key(path: &str) -> Option<String> {
    let fixed = match path {
        "server.listen" => Some("ListenIP"),
        "server.port" => Some("ListenPort"),
        "server.threads" => Some("ThreadNum"),
        "server.msfs_url" => Some("MsfsSite"),
        "server.aes_key" => Some("aesKey"),
        "metrics.listen" => Some("MetricsListen"),
        _ => None,
    };
    if let Some(k) = fixed {
        return Some(k.to_owned());
    }
    let mut parts = path.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("mysql"), Some(inst), Some(field)) => {
            let name = match inst {
                "master" => DB_MASTER,
                "slave" => DB_SLAVE,
                _ => return None,
            };
            let suffix = match field {
                "host" => "host",
                "port" => "port",
                "database" => "dbname",
                "user" => "username",
                "password" => "password",
                "max_connections" => "maxconncnt",
                _ => return None,
            };
            Some(format!("{name}_{suffix}"))
        }
        (Some("redis"), Some(inst), Some(field)) => {
            let suffix = match field {
                "host" => "host",
                "port" => "port",
                "db" => "db",
                "max_connections" => "maxconncnt",
                _ => return None,
            };
            Some(format!("{inst}_{suffix}"))
        }
        _ => None,
    }
}

/// `ThreadNum` sized the original's pool of blocking workers (its example: twice the
/// cores). An async server needs no such pool: every request waits on the backends without
/// holding a thread, and on the reference machine one thread served as much as two or four
/// (BENCHMARKS.md). Any positive value runs the default worker count; others pass through
/// to be refused with the key's name.
fn async_threads(thread_num: i64) -> i64 {
    if thread_num > 0 {
        i64::try_from(crate::settings::ServerSettings::default().threads).unwrap_or(1)
    } else {
        thread_num
    }
}

/// `<db>_maxconncnt` bounded the connections the original opened on demand, one per busy
/// worker. db-proxy coalesces concurrent requests into shared statements, so a few
/// connections carry the load and more only make smaller batches: the pool is capped at
/// the default size. Others pass through to be refused with the key's name.
fn async_pool(maxconncnt: i64) -> i64 {
    let default = i64::try_from(dbproxy_model::MysqlConfig::default().max_connections).unwrap_or(4);
    if maxconncnt > 0 {
        maxconncnt.min(default)
    } else {
        maxconncnt
    }
}

/// What `--check-config` adds to a mapped key whose value is not taken as it is.
pub fn mapping_note(path: &str) -> Option<&'static str> {
    match path {
        "server.threads" => Some(
            "the original's blocking workers; an async server runs the default worker count \
             for any positive value (DBPROXY__SERVER__THREADS sets another)",
        ),
        p if p.starts_with("mysql.") && p.ends_with(".max_connections") => Some(
            "the most connections the original opened on demand; coalesced statements need few, \
             so at most the default pool size is used (DBPROXY__MYSQL__<ROLE>__MAX_CONNECTIONS \
             sets another)",
        ),
        p if p.starts_with("redis.") && p.ends_with(".max_connections") => {
            Some("accepted; commands are pipelined, each pool opens at most 2 connections")
        }
        _ => None,
    }
}

/// `config::Format` for `dbproxyserver.conf`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyFormat;

impl config::Format for LegacyFormat {
    fn parse(
        &self,
        uri: Option<&String>,
        text: &str,
    ) -> Result<Map<String, Value>, Box<dyn StdError + Send + Sync>> {
        let pairs = parse_pairs(text);
        to_tree(uri, &pairs).map_err(|e| Box::new(e) as Box<dyn StdError + Send + Sync>)
    }
}

impl config::FileStoredFormat for LegacyFormat {
    fn file_extensions(&self) -> &'static [&'static str] {
        &["conf"]
    }
}

fn to_tree(
    uri: Option<&String>,
    pairs: &HashMap<String, String>,
) -> Result<Map<String, Value>, LegacyError> {
    let get = |k: &str| -> Result<&String, LegacyError> {
        pairs
            .get(k)
            .ok_or_else(|| LegacyError::Missing(k.to_owned()))
    };
    let s = |v: &str| Value::new(uri, ValueKind::String(v.to_owned()));
    let n = |v: &str| Value::new(uri, ValueKind::I64(atoi(v)));
    let num = |v: i64| Value::new(uri, ValueKind::I64(v));
    let table = |m: Map<String, Value>| Value::new(uri, ValueKind::Table(m));

    let mut server = Map::new();
    let listen = split_listen(get("ListenIP")?)
        .iter()
        .map(|i| s(i))
        .collect::<Vec<_>>();
    server.insert("listen".into(), Value::new(uri, ValueKind::Array(listen)));
    server.insert("port".into(), n(get("ListenPort")?));
    server.insert(
        "threads".into(),
        num(async_threads(atoi(get("ThreadNum")?))),
    );
    server.insert("msfs_url".into(), s(get("MsfsSite")?));
    server.insert("aes_key".into(), s(get("aesKey")?));

    let dbs = split_instances(get("DBInstances")?);
    let mut mysql = Map::new();
    for (role, name) in [("master", DB_MASTER), ("slave", DB_SLAVE)] {
        if !dbs.iter().any(|d| d == name) {
            return Err(LegacyError::MissingInstance {
                list: "DBInstances",
                name,
                got: dbs,
            });
        }
        let k = |suffix: &str| format!("{name}_{suffix}");
        let mut inst = Map::new();
        inst.insert("host".into(), s(get(&k("host"))?));
        inst.insert("port".into(), n(get(&k("port"))?));
        inst.insert("database".into(), s(get(&k("dbname"))?));
        inst.insert("user".into(), s(get(&k("username"))?));
        inst.insert("password".into(), s(get(&k("password"))?));
        inst.insert(
            "max_connections".into(),
            num(async_pool(atoi(get(&k("maxconncnt"))?))),
        );
        mysql.insert(role.into(), table(inst));
    }

    let caches = split_instances(get("CacheInstances")?);
    let mut redis = Map::new();
    for name in CACHE_REQUIRED {
        if !caches.iter().any(|c| c == name) {
            return Err(LegacyError::MissingInstance {
                list: "CacheInstances",
                name,
                got: caches,
            });
        }
        let k = |suffix: &str| format!("{name}_{suffix}");
        let mut inst = Map::new();
        inst.insert("host".into(), s(get(&k("host"))?));
        inst.insert("port".into(), n(get(&k("port"))?));
        inst.insert("db".into(), n(get(&k("db"))?));
        inst.insert("max_connections".into(), n(get(&k("maxconncnt"))?));
        redis.insert(name.into(), table(inst));
    }
    // `sync` (Q-R07): accepted, never required, never connected. Other extra instances are ignored.

    let mut root = Map::new();
    // An extra key the original ignores, so one file serves both.
    if let Some(listen) = pairs.get("MetricsListen") {
        let mut metrics = Map::new();
        metrics.insert("listen".into(), s(listen));
        root.insert("metrics".into(), table(metrics));
    }
    root.insert("server".into(), table(server));
    root.insert("mysql".into(), table(mysql));
    root.insert("redis".into(), table(redis));
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("10600"), 10600);
        assert_eq!(atoi("  42abc"), 42);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("+7"), 7);
        assert_eq!(atoi(""), 0);
    }

    #[test]
    fn trims_only_space_and_tab() {
        assert_eq!(trim_space_tab(b" \t a b \t"), b"a b");
        assert_eq!(trim_space_tab(b"x\r"), b"x\r");
    }

    #[test]
    fn long_lines_split_at_255() {
        let line = format!("{}\n", "a".repeat(300));
        let c = chunks(line.as_bytes());
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 255);
        assert_eq!(c[1].len(), 46);
    }
}

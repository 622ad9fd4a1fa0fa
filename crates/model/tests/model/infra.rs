//! Infrastructure tests: connect, migrate, timeouts/discard, Redis facade, hostile strings.

use std::time::{Duration, Instant};

use dbproxy_model::{schema, Error, MysqlResultExt, Script, ScriptValue};
use dbproxy_testkit::TestEnv;
use diesel::sql_types::{BigInt, Integer, Text, Unsigned};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

#[derive(QueryableByName, Debug)]
struct One {
    #[diesel(sql_type = BigInt)]
    v: i64,
}

#[derive(QueryableByName, Debug)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_migrate_twice() {
    let env = TestEnv::new().await;
    schema::migrate(&env.store).await.unwrap();
    schema::migrate(&env.store).await.unwrap();
    let n: One = env
        .store
        .slave(async |c| {
            diesel::sql_query(
                "SELECT COUNT(*) AS v FROM information_schema.tables WHERE table_schema = DATABASE()",
            )
            .get_result(c)
            .await
            .ctx("count tables")
        })
        .await
        .unwrap();
    assert_eq!(n.v, 26);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_discards_connection_and_pool_recovers() {
    let env = TestEnv::with_config(|c| {
        c.timeouts.statement = Duration::from_secs(1);
        c.master.max_connections = 1;
        c.slave.max_connections = 1;
    })
    .await;
    let started = Instant::now();
    let r = env
        .store
        .master(async |c| {
            diesel::sql_query("SELECT SLEEP(3) AS v")
                .get_result::<One>(c)
                .await
                .ctx("sleep")
        })
        .await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(r.as_ref().unwrap_err().is_unavailable());
    assert!(started.elapsed() < Duration::from_millis(2500));
    // The single pooled connection was discarded; the pool creates a fresh one.
    for _ in 0..3 {
        let one: One = env
            .store
            .master(async |c| {
                diesel::sql_query("SELECT 1 AS v")
                    .get_result(c)
                    .await
                    .ctx("one")
            })
            .await
            .unwrap();
        assert_eq!(one.v, 1);
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_timeout_rolls_back() {
    let env = TestEnv::with_config(|c| {
        c.timeouts.statement = Duration::from_secs(1);
        c.master.max_connections = 1;
    })
    .await;
    let r = env
        .store
        .master_tx(async |c| {
            diesel::sql_query(
                "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) VALUES (1, 2, 0, 0, 0)",
            )
            .execute(c)
            .await
            .ctx("insert")?;
            diesel::sql_query("SELECT SLEEP(3) AS v").get_result::<One>(c).await.ctx("sleep")
        })
        .await;
    assert!(matches!(r, Err(Error::Timeout { .. })));
    // Error inside a transaction rolls back too.
    let r: Result<(), Error> = env
        .store
        .master_tx(async |c| {
            diesel::sql_query(
                "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) VALUES (3, 4, 0, 0, 0)",
            )
            .execute(c)
            .await
            .ctx("insert")?;
            Err(Error::Invalid("abort".into()))
        })
        .await;
    assert!(r.is_err());
    let n: One = env
        .store
        .master(async |c| {
            diesel::sql_query("SELECT COUNT(*) AS v FROM IMRelationShip")
                .get_result(c)
                .await
                .ctx("count")
        })
        .await
        .unwrap();
    assert_eq!(n.v, 0);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_wait_timeout() {
    let env = TestEnv::with_config(|c| {
        c.timeouts.pool_wait = Duration::from_millis(300);
        c.master.max_connections = 1;
        c.slave.max_connections = 1;
    })
    .await;
    let store = env.store.clone();
    let hold = tokio::spawn(async move {
        store
            .master(async |c| {
                diesel::sql_query("SELECT SLEEP(1) AS v")
                    .get_result::<One>(c)
                    .await
                    .ctx("hold")
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = env
        .store
        .slave(async |c| {
            diesel::sql_query("SELECT 1 AS v")
                .get_result::<One>(c)
                .await
                .ctx("one")
        })
        .await;
    assert!(matches!(r, Err(Error::Pool { .. })), "{r:?}");
    assert!(r.unwrap_err().is_unavailable());
    hold.await.unwrap().unwrap();
    env.cleanup().await;
}

async fn connection_id(store: &dbproxy_model::Store) -> i64 {
    store
        .master(async |c| {
            diesel::sql_query("SELECT CAST(CONNECTION_ID() AS SIGNED) AS v")
                .get_result::<One>(c)
                .await
                .ctx("connection id")
        })
        .await
        .unwrap()
        .v
}

/// Checkout skips the `SELECT 1` check for recently used connections, but one that idled
/// past `pool_verify_idle` is verified: killed by the server meanwhile, it is replaced and
/// the next unit of work succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_idle_connection_is_replaced_on_checkout() {
    use diesel_async::AsyncConnection;
    let env = TestEnv::with_config(|c| {
        c.timeouts.pool_verify_idle = Duration::from_millis(200);
        c.master.max_connections = 1;
        c.slave.max_connections = 1;
    })
    .await;
    let first = connection_id(&env.store).await;
    // Recently used: handed out again without a check, same connection.
    assert_eq!(connection_id(&env.store).await, first);

    let mut admin = diesel_async::AsyncMysqlConnection::establish(env.admin_url())
        .await
        .unwrap();
    diesel::sql_query(format!("KILL {first}"))
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let second = connection_id(&env.store).await;
    assert_ne!(second, first);
    env.cleanup().await;
}

/// `(connection id, eq_range_index_dive_limit)` of a pooled connection of `db`.
async fn dive_limit(store: &dbproxy_model::Store, db: dbproxy_model::Db) -> (i64, i64) {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        v: i64,
    }
    let r: Row = store
        .on(db, async |c| {
            diesel::sql_query(
                "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id, \
                 CAST(@@SESSION.eq_range_index_dive_limit AS SIGNED) AS v",
            )
            .get_result(c)
            .await
            .ctx("session variable")
        })
        .await
        .unwrap();
    (r.id, r.v)
}

/// Every new pooled connection, a replacement of a discarded one included, runs the session
/// setup: long `IN` lists are estimated from index statistics, not by index dives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_run_the_session_setup() {
    use dbproxy_model::Db;
    let env = TestEnv::with_config(|c| {
        c.master.max_connections = 1;
        c.slave.max_connections = 1;
    })
    .await;
    let (first, limit) = dive_limit(&env.store, Db::Master).await;
    assert_eq!(limit, 8);
    assert_eq!(dive_limit(&env.store, Db::Slave).await.1, 8);
    // A failed statement discards its connection; the next one is new and set up too.
    let failed = env
        .store
        .master(async |c| {
            diesel::sql_query("SELECT v FROM no_such_table")
                .get_result::<One>(c)
                .await
                .ctx("missing table")
        })
        .await;
    assert!(failed.is_err());
    let (second, limit) = dive_limit(&env.store, Db::Master).await;
    assert_ne!(second, first);
    assert_eq!(limit, 8);
    env.cleanup().await;
}

const HOSTILE: &[&str] = &[
    "' OR 1=1 --",
    "\\'; DROP TABLE IMUser; --",
    "back\\slash \"dq\" 'sq' `bt`",
    "emoji 😀🎉 中文 [语音]",
    "%_ \0 nul",
    "",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_round_trip_mysql_and_redis() {
    let env = TestEnv::new().await;
    for (i, s) in HOSTILE.iter().enumerate() {
        let s = s.to_string();
        let name = s.clone();
        let back: Name = env
            .store
            .master(async |c| {
                diesel::sql_query(
                    "INSERT INTO IMTransmitFile (fromId, toId, fileName, size, taskId, status, created, updated) VALUES (?, ?, ?, 0, ?, 0, 0, 0)",
                )
                .bind::<Unsigned<Integer>, _>(u32::MAX)
                .bind::<Unsigned<Integer>, _>(i as u32)
                .bind::<Text, _>(&name)
                .bind::<Text, _>(&name)
                .execute(c)
                .await
                .ctx("insert")?;
                diesel::sql_query("SELECT fileName AS name FROM IMTransmitFile WHERE toId = ? AND taskId = ?")
                    .bind::<Unsigned<Integer>, _>(i as u32)
                    .bind::<Text, _>(&name)
                    .get_result(c)
                    .await
                    .ctx("select")
            })
            .await
            .unwrap();
        assert_eq!(back.name, s);

        let cache = env.store.unread();
        let key = format!("k_{s}");
        cache.set(&key, &s).await.unwrap();
        assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(s.as_str()));
        cache.hset("h", &s, &s).await.unwrap();
        assert_eq!(
            cache.hget("h", &s).await.unwrap().as_deref(),
            Some(s.as_str())
        );
    }
    let all = env.store.unread().hgetall("h").await.unwrap();
    assert_eq!(all.len(), HOSTILE.len());
    env.cleanup().await;
}

static INCR_IF_EXISTS: Script = Script::new(
    "incr_if_exists",
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) else return false end",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_facade_round_trips() {
    let env = TestEnv::new().await;
    let c = env.store.unread();
    assert_eq!(c.get("missing").await.unwrap(), None);
    assert!(!c.exists("missing").await.unwrap());
    assert!(c.set_nx("nx", "1").await.unwrap());
    assert!(!c.set_nx("nx", "2").await.unwrap());
    assert_eq!(c.get("nx").await.unwrap().as_deref(), Some("1"));
    assert_eq!(c.incr_by("nx", 5).await.unwrap(), 6);
    assert!(c.exists("nx").await.unwrap());
    assert_eq!(
        c.mget(&["nx".into(), "missing".into()]).await.unwrap(),
        vec![Some("6".to_string()), None]
    );
    assert_eq!(c.mget(&[]).await.unwrap(), Vec::<Option<String>>::new());
    assert_eq!(c.hincrby("h", "10", 2).await.unwrap(), 2);
    assert_eq!(c.hincrby("h", "9", 1).await.unwrap(), 1);
    c.hset_many("h", &[("a".into(), "x".into())]).await.unwrap();
    let all = c.hgetall("h").await.unwrap();
    assert_eq!(
        all.keys().cloned().collect::<Vec<_>>(),
        vec!["10", "9", "a"]
    );
    assert_eq!(c.hget("h", "nope").await.unwrap(), None);
    assert_eq!(c.hdel("h", &["10", "nope"]).await.unwrap(), 1);
    assert_eq!(c.hdel("h", &[]).await.unwrap(), 0);
    assert!(c.hgetall("nohash").await.unwrap().is_empty());
    let many = c
        .hget_many(&[("h".into(), "9".into()), ("nohash".into(), "x".into())])
        .await
        .unwrap();
    assert_eq!(many, vec![Some("1".to_string()), None]);
    let many = c
        .hgetall_many(&["h".into(), "nohash".into()])
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[0].len(), 2);
    assert!(many[1].is_empty());
    assert_eq!(
        c.eval(&INCR_IF_EXISTS, &["nx".into()], &["1".into()])
            .await
            .unwrap(),
        ScriptValue::Int(7)
    );
    assert_eq!(
        c.eval(&INCR_IF_EXISTS, &["zz".into()], &["1".into()])
            .await
            .unwrap(),
        ScriptValue::Nil
    );
    assert_eq!(c.del(&["nx", "zz"]).await.unwrap(), 1);
    // The four instances share one pool here (same endpoint) and see the same data.
    env.store.token().set("device_1", "ios:abc").await.unwrap();
    assert_eq!(
        env.store
            .group_set()
            .get("device_1")
            .await
            .unwrap()
            .as_deref(),
        Some("ios:abc")
    );
    env.store.unread().ping().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_with_timeout() {
    let mut env =
        TestEnv::with_config(|c| c.timeouts.redis_command = Duration::from_millis(500)).await;
    env.kill_redis();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let r = env.store.unread().get("x").await;
    assert!(r.is_err());
    assert!(r.unwrap_err().is_unavailable());
    assert!(started.elapsed() < Duration::from_secs(2));
    env.cleanup().await;
}

/// `SCRIPT FLUSH` on the private redis-server over a raw connection.
fn script_flush(port: u16) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"SCRIPT FLUSH\r\n").unwrap();
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

/// Scripts run by SHA-1; a server that lost its script cache (restart, SCRIPT FLUSH) gets
/// the source again and answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let env = TestEnv::new().await;
    let c = env.store.unread();
    c.set("nx", "1").await.unwrap();
    let incr = async || {
        c.eval(&INCR_IF_EXISTS, &["nx".into()], &["1".into()])
            .await
            .unwrap()
    };
    assert_eq!(incr().await, ScriptValue::Int(2));
    assert_eq!(env.store.counters().group_incr(5, 3).await.unwrap(), 1);
    script_flush(env.redis_port);
    assert_eq!(incr().await, ScriptValue::Int(3));
    assert_eq!(env.store.counters().group_incr(5, 3).await.unwrap(), 2);
    script_flush(env.redis_port);
    assert_eq!(
        env.store.counters().group_mark_read(4, 5).await.unwrap(),
        Some(2)
    );
    env.cleanup().await;
}

//! Config loading: the shipped legacy example, the original parser's edge cases
//! (docs/compatibility.md#legacy-config-parsing-rules), TOML + environment overrides, and validation through the real binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use db_proxy::legacy::parse_pairs;
use db_proxy::settings::{load_with_env, Error, LogFormat, Settings, SourceKind};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn no_env() -> Option<HashMap<String, String>> {
    Some(HashMap::new())
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn example_text() -> String {
    std::fs::read_to_string(repo_root().join("config/dbproxyserver.conf.example")).unwrap()
}

#[test]
fn shipped_example_every_key() {
    let pairs = parse_pairs(&example_text());
    let expect = [
        ("ListenIP", "0.0.0.0"),
        ("ListenPort", "10600"),
        ("ThreadNum", "48"),
        ("MsfsSite", "127.0.0.1"),
        ("aesKey", "12345678901234567890123456789012"),
        ("DBInstances", "teamtalk_master,teamtalk_slave"),
        ("CacheInstances", "unread,group_set,token,sync,group_member"),
        ("sync_db", "2"),
        ("sync_maxconncnt", "1"),
        // db-proxy's own key, which the original ignores.
        ("MetricsListen", "127.0.0.1:9600"),
    ];
    for (k, v) in expect {
        assert_eq!(pairs.get(k).map(String::as_str), Some(v), "key {k}");
    }
    for db in ["teamtalk_master", "teamtalk_slave"] {
        for (suffix, v) in [
            ("host", "127.0.0.1"),
            ("port", "3306"),
            ("dbname", "teamtalk"),
            ("username", "test"),
            ("password", "12345"),
            ("maxconncnt", "16"),
        ] {
            let k = format!("{db}_{suffix}");
            assert_eq!(pairs.get(&k).map(String::as_str), Some(v), "key {k}");
        }
    }
    for (c, db, max) in [
        ("unread", "1", "16"),
        ("group_set", "1", "16"),
        ("token", "1", "16"),
        ("sync", "2", "1"),
        ("group_member", "1", "48"),
    ] {
        assert_eq!(pairs[&format!("{c}_host")], "127.0.0.1");
        assert_eq!(pairs[&format!("{c}_port")], "6379");
        assert_eq!(pairs[&format!("{c}_db")], db, "{c}_db");
        assert_eq!(pairs[&format!("{c}_maxconncnt")], max, "{c}_maxconncnt");
    }
    assert_eq!(pairs.len(), 7 + 12 + 20 + 1, "unexpected keys: {pairs:?}");

    // And the effective settings built from it.
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "dbproxyserver.conf", &example_text());
    let loaded = load_with_env(Some(&p), no_env()).unwrap();
    assert_eq!(loaded.kind, SourceKind::Legacy);
    let s = loaded.settings;
    assert_eq!(s.server.listen, ips(&["0.0.0.0"]));
    assert_eq!(s.server.port, 10600);
    // ThreadNum=48 and maxconncnt=16 are mapped to what serves an async server.
    assert_eq!(s.server.threads, 1);
    assert_eq!(s.server.msfs_url, "127.0.0.1");
    assert_eq!(s.server.aes_key, "12345678901234567890123456789012");
    for m in [&s.mysql.master, &s.mysql.slave] {
        assert_eq!(m.host, "127.0.0.1");
        assert_eq!(m.port, 3306);
        assert_eq!(m.database, "teamtalk");
        assert_eq!(m.user, "test");
        assert_eq!(m.password, "12345");
        assert_eq!(m.max_connections, 4);
    }
    assert_eq!(s.redis.unread.db, 1);
    assert_eq!(s.redis.group_set.max_connections, 16);
    assert_eq!(s.redis.token.port, 6379);
    assert_eq!(s.redis.group_member.max_connections, 48);
    assert_eq!(s.metrics.listen, "127.0.0.1:9600");
    // Non-legacy settings keep their defaults.
    assert_eq!(s.limits, Settings::default().limits);
}

#[test]
fn inline_hash_starts_a_comment() {
    let p = parse_pairs("ListenIP=1.2.3.4#comment\nMsfsSite = http://h/a#b\nx#=1\n");
    assert_eq!(p["ListenIP"], "1.2.3.4");
    assert_eq!(p["MsfsSite"], "http://h/a");
    assert!(!p.contains_key("x"));
}

#[test]
fn first_duplicate_wins() {
    let p = parse_pairs("ThreadNum=8\nThreadNum=16\n");
    assert_eq!(p["ThreadNum"], "8");
    // An empty first value does not count as an occurrence.
    let p = parse_pairs("ThreadNum=\nThreadNum=16\n");
    assert_eq!(p["ThreadNum"], "16");
}

#[test]
fn spaces_and_tabs_trimmed_only() {
    let p = parse_pairs(" \t ListenPort \t=\t 10600 \t\nA = b c \nCR=x\r\n");
    assert_eq!(p["ListenPort"], "10600");
    assert_eq!(p["A"], "b c");
    assert_eq!(p["CR"], "x\r", "\\r is not trimmed by the original");
}

#[test]
fn lines_without_equals_empty_key_or_value_ignored() {
    let p = parse_pairs("just words\n=value\nkey=\nkey2 =   \t\n\n  \nk=v=w\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p["k"], "v=w", "split at the first =");
}

#[test]
fn line_longer_than_255_bytes_is_split() {
    // The tail after byte 255 is read as its own line: here it defines a key.
    let text = format!("Pad={}TailKey=tail\n", "p".repeat(251));
    let p = parse_pairs(&text);
    assert_eq!(p["Pad"].len(), 251);
    assert_eq!(p["TailKey"], "tail");
}

#[test]
fn list_items_not_trimmed() {
    let text = example_text().replace(
        "DBInstances=teamtalk_master,teamtalk_slave",
        "DBInstances=teamtalk_master, teamtalk_slave",
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "a.conf", &text);
    let err = load_with_env(Some(&p), no_env()).unwrap_err().to_string();
    assert!(err.contains("DBInstances"), "{err}");
    assert!(err.contains("teamtalk_slave"), "{err}");
}

#[test]
fn listen_ip_split_on_semicolon() {
    let text = example_text().replace("ListenIP=0.0.0.0", "ListenIP=127.0.0.1;::1");
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "a.conf", &text);
    let s = load_with_env(Some(&p), no_env()).unwrap().settings;
    assert_eq!(s.server.listen, ips(&["127.0.0.1", "::1"]));
}

#[test]
fn sync_instance_optional() {
    let text = example_text().replace(
        "CacheInstances=unread,group_set,token,sync,group_member",
        "CacheInstances=unread,group_set,token,group_member",
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "a.conf", &text);
    load_with_env(Some(&p), no_env()).unwrap();
}

#[test]
fn legacy_missing_and_bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("ThreadNum=48", "ThreadNum=0", "ThreadNum"),
        ("ThreadNum=48", "ThreadNum=abc", "ThreadNum"),
        ("ListenPort=10600", "ListenPort=", "ListenPort"),
        (
            "aesKey=12345678901234567890123456789012",
            "aesKey=short",
            "aesKey",
        ),
        (
            "teamtalk_slave_port=3306",
            "teamtalk_slave_port=99999",
            "teamtalk_slave_port",
        ),
        ("group_member_host=127.0.0.1", "#", "group_member_host"),
        ("token_db=1", "token_db=99", "token_db"),
    ];
    for (from, to, key) in cases {
        let text = example_text().replacen(from, to, 1);
        let p = write(&dir, "case.conf", &text);
        let err = load_with_env(Some(&p), no_env()).unwrap_err().to_string();
        assert!(err.contains(key), "{to}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn toml_file_and_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "x.toml",
        "[server]\nport = 10700\nthreads = 2\n[mysql.master]\nhost = \"db1\"\n[log]\nformat = \"json\"\n",
    );
    let env: HashMap<String, String> = [
        ("DBPROXY__SERVER__PORT", "10800"),
        ("DBPROXY__SERVER__LISTEN", "127.0.0.1;::1"),
        ("DBPROXY__MYSQL__SLAVE__PASSWORD", "s3cret"),
        ("DBPROXY__REDIS__GROUP_MEMBER__DB", "5"),
        ("DBPROXY__LIMITS__SHUTDOWN_GRACE_MS", "1500"),
        ("DBPROXY__LIMITS__WRITE_TIMEOUT_MS", "700"),
        ("DBPROXY__LIMITS__MYSQL_VERIFY_IDLE_MS", "0"),
        ("DBPROXY__LIMITS__BATCH_MAX", "1"),
        ("DBPROXY__LIMITS__BATCH_WRITE_MAX", "24"),
        ("DBPROXY__LIMITS__BATCH_WRITE_SLOTS", "9"),
        ("DBPROXY__LIMITS__RELATION_CACHE_MS", "0"),
        ("DBPROXY_TEST_MYSQL_URL", "mysql://ignored"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let loaded = load_with_env(Some(&p), Some(env)).unwrap();
    assert_eq!(loaded.kind, SourceKind::Toml);
    let s = loaded.settings;
    assert_eq!(s.server.port, 10800, "env wins over file");
    assert_eq!(s.server.threads, 2);
    assert_eq!(s.server.listen, ips(&["127.0.0.1", "::1"]));
    assert_eq!(s.mysql.master.host, "db1");
    assert_eq!(s.mysql.slave.password, "s3cret");
    assert_eq!(s.redis.group_member.db, 5);
    assert_eq!(
        s.limits.shutdown_grace,
        std::time::Duration::from_millis(1500)
    );
    assert_eq!(s.log.format, LogFormat::Json);
    let ms = std::time::Duration::from_millis;
    assert_eq!(s.server_config().write_timeout, ms(700));
    assert_eq!(s.store_config().timeouts.pool_verify_idle, ms(0));
    assert_eq!(s.store_config().relation_ids_ttl, ms(0));
    assert_eq!(
        Settings::default().store_config().relation_ids_ttl,
        ms(5000)
    );
    let batch = s.store_config().batch;
    assert_eq!(
        (
            batch.max_batch,
            batch.write_max_batch,
            batch.read_slots,
            batch.write_slots
        ),
        (1, 24, 4, 9)
    );
}

#[test]
fn batch_limits_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[limits]\nbatch_max = 33\n", "limits.batch_max"),
        ("[limits]\nbatch_max = 0\n", "limits.batch_max"),
        ("[limits]\nbatch_write_max = 33\n", "limits.batch_write_max"),
        (
            "[limits]\nbatch_read_slots = 0\n",
            "limits.batch_read_slots",
        ),
        (
            "[limits]\nbatch_write_slots = 5000\n",
            "limits.batch_write_slots",
        ),
    ] {
        let p = write(&dir, "b.toml", text);
        let err = load_with_env(Some(&p), no_env()).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

#[test]
fn shipped_toml_equals_defaults() {
    let p = repo_root().join("config/db-proxy.toml");
    let s = load_with_env(Some(&p), no_env()).unwrap().settings;
    let mut d = Settings::default();
    d.redis.sync = s.redis.sync.clone();
    // The shipped file turns the metrics listener on (on loopback); the default is off.
    assert_eq!(s.metrics.listen, "127.0.0.1:9600");
    assert_eq!(d.metrics.listen, "");
    d.metrics.listen = s.metrics.listen.clone();
    assert_eq!(s, d);
}

#[test]
fn toml_unknown_key_and_bad_extension_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "x.toml", "[server]\nprot = 1\n");
    let err = load_with_env(Some(&p), no_env()).unwrap_err().to_string();
    assert!(err.contains("prot"), "{err}");
    let p = write(&dir, "x.ini", "");
    assert!(matches!(
        load_with_env(Some(&p), no_env()),
        Err(Error::Extension(_))
    ));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_db-proxy"))
}

#[test]
fn check_config_prints_masked_settings() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "dbproxyserver.conf", &example_text());
    let out = bin().arg("--check-config").arg(&p).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // ThreadNum=48 is read and mapped: one async worker.
    assert!(stdout.contains("threads = 1"), "{stdout}");
    assert!(!stdout.contains("12345\""), "password masked: {stdout}");
    assert!(
        !stdout.contains("12345678901234567890123456789012"),
        "{stdout}"
    );
    assert!(stdout.contains("********"));
    // How each original key was mapped.
    for line in [
        "#   ThreadNum -> server.threads (the original's blocking workers; an async server runs the default worker count",
        "#   ListenIP -> server.listen",
        "#   teamtalk_slave_maxconncnt -> mysql.slave.max_connections (the most connections the original opened on demand",
        "#   group_member_db -> redis.group_member.db",
    ] {
        assert!(stdout.contains(line), "{line} missing: {stdout}");
    }
}

#[test]
fn check_config_does_not_show_the_ignored_sync_instance_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let text = example_text().replace("sync_db=2", "sync_db=8");
    let p = write(&dir, "dbproxyserver.conf", &text);
    let out = bin().arg("--check-config").arg(&p).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("[redis.sync]"), "{stdout}");
    assert!(stdout.contains("accepted and ignored"), "{stdout}");
}

#[test]
fn check_config_failures_exit_nonzero_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("a.toml", "[server]\nthreads = 0\n", "server.threads"),
        ("b.toml", "[server]\naes_key = \"abc\"\n", "server.aes_key"),
        ("c.toml", "[mysql.slave]\nhost = \"\"\n", "mysql.slave.host"),
        ("d.toml", "[redis.token]\nport = 0\n", "redis.token.port"),
        ("e.toml", "[server]\nlisten = [\"nope\"]\n", "server.listen"),
    ];
    for (name, text, key) in cases {
        let p = write(&dir, name, text);
        let out = bin().arg("--check-config").arg(&p).output().unwrap();
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{name}: {stderr}");
    }
    let p = write(
        &dir,
        "t.conf",
        &example_text().replace("ThreadNum=48", "ThreadNum=0"),
    );
    let out = bin().arg("--check-config").arg(&p).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ThreadNum"));
}

#[test]
fn version_flag() {
    for flag in ["-v", "--version"] {
        let out = bin().arg(flag).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("DBProxyServer/1.0"));
    }
}

#[test]
fn unreachable_backend_says_what_to_start() {
    // Nothing listens on port 1: the binary must exit non-zero with one line naming MariaDB.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "x.toml",
        "[mysql.master]\nport = 1\n[mysql.slave]\nport = 1\n[limits]\nconnect_timeout_ms = 500\n",
    );
    let out = bin()
        .arg("--config")
        .arg(&p)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach MariaDB at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("start it with"), "{stderr}");
}

fn ips(list: &[&str]) -> Vec<std::net::IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

/// One source of defaults: the binary's built-in settings are the library crates' defaults
/// (and `shipped_toml_equals_defaults` ties config/db-proxy.toml to them).
#[test]
fn built_in_settings_are_the_library_defaults() {
    let s = Settings::default();
    assert_eq!(
        s.server_config(),
        dbproxy_transport::ServerConfig::default()
    );
    assert_eq!(
        s.action_settings(),
        dbproxy_action::ActionSettings::default()
    );
    let mut library = dbproxy_model::StoreConfig::default();
    // One key (limits.msfs_timeout_ms) bounds both msfs calls in the binary.
    library.timeouts.msfs_download = library.timeouts.msfs_upload;
    assert_eq!(s.store_config(), library);
    assert_eq!(s.server_config().max_in_flight_per_connection, 64);
    assert_eq!(
        s.store_config().timeouts.pool_wait,
        std::time::Duration::from_secs(5)
    );
}

#[test]
fn help_lists_every_flag_and_the_default_config_loads_as_the_defaults() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--check-config",
        "--print-default-config",
        "--version",
        "--help",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help: {help}");
    }
    let out = bin().arg("--print-default-config").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "printed.toml", &String::from_utf8_lossy(&out.stdout));
    let mut printed = load_with_env(Some(&p), no_env()).unwrap().settings;
    printed.redis.sync = Settings::default().redis.sync;
    // The printed (shipped) file turns the metrics listener on; the default is off.
    assert_eq!(printed.metrics.listen, "127.0.0.1:9600");
    printed.metrics.listen = String::new();
    assert_eq!(printed, Settings::default());
}

#[test]
fn the_ignored_sync_instance_is_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "s.toml",
        "[redis.sync]\nhost = \"\"\nport = 0\ndb = 99\nmax_connections = 0\n",
    );
    load_with_env(Some(&p), no_env()).unwrap();
}

//! Message storage/reads, voice store/read path against a fake msfs, hostile content.

use std::sync::{Arc, Mutex};

use dbproxy_model::audio::{self, VoiceExpansion};
use dbproxy_model::message::{NewGroupMessage, NewSingleMessage};
use dbproxy_model::{msfs, Db, MysqlResultExt};
use dbproxy_testkit::TestEnv;
use diesel_async::RunQueryDsl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Minimal msfs: POST stores the multipart body's payload under /p/<n> and answers JSON;
/// GET /p/<n> returns it with a Content-Length. `fail` makes POST answer error_code 1.
async fn fake_msfs(fail: bool) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
    let st = store.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let body = buf[head_end..].to_vec();
                let resp: Vec<u8> = if head.starts_with("POST / ") {
                    assert!(
                        head.contains(&format!("multipart/form-data; boundary={}", msfs::BOUNDARY))
                    );
                    let json = if fail {
                        r#"{"error_code":1,"error_msg":"bad"}"#.to_string()
                    } else {
                        let mut s = st.lock().unwrap();
                        // Recover the payload by matching the exact original body shape.
                        let prefix_len = msfs::multipart_body(b"").len() - msfs::BOUNDARY.len() - 8;
                        let payload =
                            body[prefix_len..body.len() - (msfs::BOUNDARY.len() + 8)].to_vec();
                        assert_eq!(msfs::multipart_body(&payload), body);
                        s.push(payload);
                        format!(
                            r#"{{"error_code":0,"error_msg":"ok","path":"p/{n}","url":"http://127.0.0.1:{port}/p/{n}"}}"#,
                            n = s.len() - 1
                        )
                    };
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                        json.len()
                    )
                    .into_bytes()
                } else if let Some(rest) = head.strip_prefix("GET /p/") {
                    let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
                    let data = st.lock().unwrap().get(n).cloned().unwrap_or_default();
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        data.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&data);
                    r
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                };
                let _ = sock.write_all(&resp).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("127.0.0.1:{port}"), store)
}

const HOSTILE: &[&[u8]] = &[
    b"' OR 1=1 --",
    b"\\'; DROP TABLE IMUser; --",
    "emoji 😀 中文".as_bytes(),
    b"quote\" back\\slash",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_messages_store_list_by_id_newest() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let rel = s.relations().get_or_create(11, 12).await.unwrap().unwrap();
    let s1 = s.sessions().get_or_add(11, 12, 1).await.unwrap();
    let s2 = s.sessions().get_or_add(12, 11, 1).await.unwrap();
    assert!(s.messages().newest_single(rel).await.unwrap().is_none());
    assert!(s
        .messages()
        .list_single(rel, 0, 10)
        .await
        .unwrap()
        .is_empty());
    for (i, c) in HOSTILE.iter().enumerate() {
        let id = s.messages().allocate_single(rel).await.unwrap();
        assert_eq!(id, i as u32 + 1);
        s.messages()
            .store_single(
                &NewSingleMessage {
                    relate_id: rel,
                    from_id: 11,
                    to_id: 12,
                    msg_id: id,
                    content: c,
                    kind: 1,
                    created: 1000 + i as u32,
                },
                &[s1, s2, 0],
                4_000_000_000,
            )
            .await
            .unwrap();
        s.counters().incr_single(12, 11).await.unwrap();
    }
    let all = s.messages().list_single(rel, 0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].msg_id, 4);
    for m in &all {
        assert_eq!(m.content, HOSTILE[(m.msg_id - 1) as usize]);
        assert_eq!((m.from_id, m.to_id, m.kind, m.status), (11, 12, 1, 0));
        assert_eq!(m.created, 1000 + m.msg_id - 1);
    }
    let page = s.messages().list_single(rel, 2, 1).await.unwrap();
    assert_eq!(page.iter().map(|m| m.msg_id).collect::<Vec<_>>(), vec![2]);
    assert!(s
        .messages()
        .list_single(rel, 0, 0)
        .await
        .unwrap()
        .is_empty());
    let by = s
        .messages()
        .by_ids_single(rel, &[3, 1, 3, 99])
        .await
        .unwrap();
    assert_eq!(by.iter().map(|m| m.msg_id).collect::<Vec<_>>(), vec![3, 1]);
    assert!(s
        .messages()
        .by_ids_single(rel, &[])
        .await
        .unwrap()
        .is_empty());
    let newest = s.messages().newest_single(rel).await.unwrap().unwrap();
    assert_eq!(
        (newest.msg_id, newest.kind, newest.content.as_slice()),
        (4, 1, HOSTILE[3])
    );
    // Sessions were bumped in the same transaction.
    let rec = s.sessions().recent(12, 0).await.unwrap();
    assert_eq!(rec[0].updated, 4_000_000_000);
    assert_eq!(s.counters().single_counts(12).await.unwrap(), vec![(11, 4)]);
    assert!(s.counters().clear_single(12, 11).await.unwrap());
    assert!(s.counters().single_counts(12).await.unwrap().is_empty());
    // NULL content reads as empty (Q-D03).
    env.store
        .master(async |c| {
            diesel::sql_query(format!(
                "UPDATE {} SET content = NULL WHERE msgId = 1",
                dbproxy_model::shard::message_table(rel)
            ))
            .execute(c)
            .await
            .ctx("null")
        })
        .await
        .unwrap();
    let one = s.messages().by_ids_single(rel, &[1]).await.unwrap();
    assert!(one[0].content.is_empty());
    // A failed insert (invalid UTF-8 for the utf8mb4 column) rolls the session bump back.
    let r = s
        .messages()
        .store_single(
            &NewSingleMessage {
                relate_id: rel,
                from_id: 11,
                to_id: 12,
                msg_id: 9,
                content: b"\xff\xfe",
                kind: 1,
                created: 1,
            },
            &[s1],
            7,
        )
        .await;
    if r.is_err() {
        assert_eq!(
            s.sessions().recent(11, 0).await.unwrap()[0].updated,
            4_000_000_000
        );
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_store_list_join_time_newest() {
    let env = TestEnv::new().await;
    let s = &env.store;
    let g = 13u32;
    env.store
        .master(async |c| {
            diesel::sql_query(
                "INSERT INTO IMGroup (id, name, status, lastChated) VALUES (13, 'g', 0, 0)",
            )
            .execute(c)
            .await
            .ctx("group")
        })
        .await
        .unwrap();
    let sess = s.sessions().get_or_add(1, g, 2).await.unwrap();
    for i in 0..5u32 {
        let id = s.messages().allocate_group(g).await.unwrap();
        s.messages()
            .store_group(
                &NewGroupMessage {
                    group_id: g,
                    from_id: 1 + i % 2,
                    msg_id: id,
                    content: HOSTILE[(i % 4) as usize],
                    kind: 0x11,
                    created: 100 + i,
                },
                3_000_000_000,
                &[sess],
                2_000_000_000,
            )
            .await
            .unwrap();
    }
    let all = s.messages().list_group(g, 0, 0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![5, 4, 3, 2, 1]
    );
    assert_eq!(all[0].from_id, 1);
    let joined = s.messages().list_group(g, 103, 0, 10).await.unwrap();
    assert_eq!(
        joined.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![5, 4]
    );
    let page = s.messages().list_group(g, 0, 3, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let by = s.messages().by_ids_group(g, 102, &[1, 3, 5]).await.unwrap();
    assert_eq!(by.iter().map(|m| m.msg_id).collect::<Vec<_>>(), vec![5, 3]);
    let newest = s.messages().newest_group(g).await.unwrap().unwrap();
    assert_eq!((newest.msg_id, newest.from_id, newest.kind), (5, 1, 0x11));
    assert!(s.messages().newest_group(21).await.unwrap().is_none());
    #[derive(diesel::QueryableByName)]
    struct L {
        #[diesel(sql_type = diesel::sql_types::Unsigned<diesel::sql_types::Integer>)]
        #[diesel(column_name = "lastChated")]
        last: u32,
    }
    let l: L = env
        .store
        .slave(async |c| {
            diesel::sql_query("SELECT lastChated FROM IMGroup WHERE id = 13")
                .get_result(c)
                .await
                .ctx("l")
        })
        .await
        .unwrap();
    assert_eq!(l.last, 3_000_000_000);
    assert_eq!(
        s.sessions().recent(1, 0).await.unwrap()[0].updated,
        2_000_000_000
    );
    // Unread counters and badge.
    s.counters().group_incr(g, 1).await.unwrap();
    s.counters().group_incr(g, 1).await.unwrap();
    s.counters().incr_single(2, 9).await.unwrap();
    assert_eq!(
        s.counters().group_unread(2, &[g]).await.unwrap(),
        vec![(g, Some(2))]
    );
    assert_eq!(s.counters().push_badge(2, &[g, 99]).await.unwrap(), 3);
    assert_eq!(s.counters().push_badge(1, &[g]).await.unwrap(), 0);
    assert!(s.counters().group_unread(2, &[]).await.unwrap().is_empty());
    assert_eq!(
        env.store.relations().find(Db::Slave, 1, 2).await.unwrap(),
        None
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_store_and_expand() {
    let (site, uploads) = fake_msfs(false).await;
    let env = TestEnv::with_config(|c| c.msfs_url = site.clone()).await;
    let s = &env.store;
    let mut data = 7u32.to_be_bytes().to_vec();
    data.extend_from_slice(b"\x00\x01voice-bytes\xff");
    assert_eq!(
        s.audio().store_voice(1, 2, b"\0\0\0\x07", 5).await.unwrap(),
        None
    );
    let id = s
        .audio()
        .store_voice(1, 2, &data, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(uploads.lock().unwrap().len(), 1);
    let row = s.audio().get(id).await.unwrap().unwrap();
    assert_eq!(
        (row.from_id, row.to_id, row.size, row.duration, row.created),
        (1, 2, 14, 7, 5)
    );
    assert!(row.path.ends_with("/p/0"));
    assert_eq!(
        s.audio().expand_voice(id.to_string().as_bytes()).await,
        VoiceExpansion::Data(data.clone())
    );
    assert_eq!(
        s.audio().expand_voice(b"999").await,
        VoiceExpansion::Unchanged
    );
    assert_eq!(
        s.audio().expand_voice(b"1 OR 1=1").await,
        VoiceExpansion::Unchanged
    );
    assert!(s.audio().get(999).await.unwrap().is_none());
    // Hostile path stored verbatim (Q-S04).
    let hid = s
        .audio()
        .insert(&audio::NewAudio {
            from_id: 1,
            to_id: 2,
            path: "http://x/'); DROP TABLE IMAudio; --",
            size: 0,
            duration: 0,
            created: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        s.audio().get(hid).await.unwrap().unwrap().path,
        "http://x/'); DROP TABLE IMAudio; --"
    );
    assert_eq!(
        s.audio().expand_voice(hid.to_string().as_bytes()).await,
        VoiceExpansion::Unchanged
    );
    env.cleanup().await;

    let (site, _) = fake_msfs(true).await;
    let env = TestEnv::with_config(|c| c.msfs_url = format!("http://{site}/")).await;
    assert!(env.store.audio().store_voice(1, 2, &data, 5).await.is_err());
    env.cleanup().await;
    // msfs unreachable → error, bounded.
    let env = TestEnv::with_config(|c| c.msfs_url = "127.0.0.1:1".into()).await;
    let e = env
        .store
        .audio()
        .store_voice(1, 2, &data, 5)
        .await
        .unwrap_err();
    assert!(e.is_unavailable());
    env.cleanup().await;
}

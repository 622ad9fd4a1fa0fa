//! Device tokens (Redis `token`) and offline files (IMTransmitFile).

use dbproxy_model::file::NewOfflineFile;
use dbproxy_model::token::{DeviceToken, TokenKind};
use dbproxy_testkit::TestEnv;

const HOSTILE: &str = "' OR 1=1 -- \"q\" \\back\\ 😀🐉";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_follow_the_original_key_formats() {
    let env = TestEnv::new().await;
    let tokens = env.store.tokens();
    tokens.set_device_token(5, "abc", 0x11).await.unwrap();
    assert_eq!(tokens.raw("5").await.unwrap(), Some("ios:abc".into()));
    assert_eq!(tokens.raw("abc").await.unwrap(), Some("5".into()));

    // New token supersedes the old one: reverse key blanked with "" (Q-R08).
    tokens.set_device_token(5, "def", 0x12).await.unwrap();
    assert_eq!(tokens.raw("5").await.unwrap(), Some("android:def".into()));
    assert_eq!(tokens.raw("abc").await.unwrap(), Some(String::new()));
    assert_eq!(tokens.raw("def").await.unwrap(), Some("5".into()));

    // Logout (empty token, no client type → WINDOWS): device_5 = "", device_ = 5 (Q-T01).
    tokens.set_device_token(5, "", 1).await.unwrap();
    assert_eq!(tokens.raw("5").await.unwrap(), Some(String::new()));
    assert_eq!(tokens.raw("").await.unwrap(), Some("5".into()));
    assert_eq!(tokens.raw("def").await.unwrap(), Some(String::new()));

    tokens.set_device_token(10, HOSTILE, 0x11).await.unwrap();
    tokens.set_device_token(9, "nine", 0x12).await.unwrap();
    tokens.set_device_token(11, "bare", 2).await.unwrap();
    assert_eq!(tokens.raw(HOSTILE).await.unwrap(), Some("10".into()));

    assert!(tokens.stored_values(&[]).await.unwrap().is_empty());
    // Lexicographic key order ("device_10" < "device_11" < "device_5" < "device_9"),
    // duplicates collapse, missing keys vanish.
    assert_eq!(
        tokens.stored_values(&[9, 5, 11, 10, 9, 77]).await.unwrap(),
        vec![
            (10, format!("ios:{HOSTILE}")),
            (11, "bare".into()),
            (5, String::new()),
            (9, "android:nine".into()),
        ]
    );
    assert_eq!(
        tokens.device_tokens(&[9, 5, 11, 10, 77]).await.unwrap(),
        vec![
            DeviceToken {
                user_id: 10,
                kind: TokenKind::Ios,
                token: HOSTILE.into()
            },
            DeviceToken {
                user_id: 9,
                kind: TokenKind::Android,
                token: "nine".into()
            },
        ]
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_files_add_list_delete() {
    let env = TestEnv::new().await;
    let files = env.store.files();
    assert!(files.offline_for(2).await.unwrap().is_empty());
    let f = |from: u32, task: &str, name: &str| NewOfflineFile {
        from_id: from,
        to_id: 2,
        task_id: task.into(),
        file_name: name.into(),
        size: 1234,
    };
    files.add(&f(1, "t1", "a.txt"), 200).await.unwrap();
    files.add(&f(3, HOSTILE, HOSTILE), 100).await.unwrap();
    files.add(&f(1, "t1", "a.txt"), 300).await.unwrap(); // duplicates allowed (Q-X08)
    let list = files.offline_for(2).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        (
            list[0].from_id,
            list[0].task_id.as_str(),
            list[0].file_name.as_str()
        ),
        (3, HOSTILE, HOSTILE)
    );
    assert_eq!((list[1].created, list[2].created), (200, 300));
    assert_eq!((list[0].size, list[0].status, list[0].to_id), (1234, 0, 2));

    // Q-S03: a hostile task id deletes nothing but its own row.
    assert_eq!(files.delete(1, 2, "' OR 1=1 --").await.unwrap(), 0);
    assert_eq!(files.delete(9, 9, "t1").await.unwrap(), 0);
    assert_eq!(files.delete(3, 2, HOSTILE).await.unwrap(), 1);
    assert_eq!(files.offline_for(2).await.unwrap().len(), 2);
    assert_eq!(files.delete(1, 2, "t1").await.unwrap(), 2);
    assert!(files.offline_for(2).await.unwrap().is_empty());
    env.cleanup().await;
}

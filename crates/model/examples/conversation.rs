//! Embedding `dbproxy-model` in another service: connect, make sure two users exist, store
//! a few messages between them the way db-proxy does, then read the history and the
//! receiver's unread counters.
//!
//! Run against the database `cargo xtask db-setup` creates (local MariaDB `teamtalk`,
//! user `dbproxy`, Redis db 1):
//!
//! ```text
//! cargo run -p dbproxy-model --example conversation
//! ```
//!
//! `DBPROXY_MYSQL_DATABASE` / `DBPROXY_REDIS_DB` point it at another database / Redis db.

use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_model::{message, session, unix_now, Db, Store, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = StoreConfig::default();
    if let Ok(db) = std::env::var("DBPROXY_MYSQL_DATABASE") {
        config.master.database = db.clone();
        config.slave.database = db;
    }
    if let Ok(db) = std::env::var("DBPROXY_REDIS_DB") {
        let db: u8 = db.parse()?;
        for redis in [
            &mut config.unread,
            &mut config.group_set,
            &mut config.token,
            &mut config.group_member,
        ] {
            redis.db = db;
        }
    }
    let store = Store::connect(&config).await?;
    dbproxy_model::schema::migrate(&store).await?;

    let alice = user(&store, "example_alice").await?;
    let bob = user(&store, "example_bob").await?;
    println!("users: example_alice = {alice}, example_bob = {bob}");

    // What db-proxy does for one 1:1 text message (docs/compatibility.md#sending-a-message).
    let now = unix_now();
    let alice_session = store
        .sessions()
        .get_or_add(alice, bob, session::SINGLE)
        .await?;
    let bob_session = store
        .sessions()
        .get_or_add(bob, alice, session::SINGLE)
        .await?;
    let relate_id = store
        .relations()
        .get_or_create(alice, bob)
        .await?
        .ok_or("no relation for a pair of non-zero ids")?;
    for text in ["hello bob", "are you there?"] {
        let msg = message::OutgoingSingle {
            relate_id,
            from_id: alice,
            to_id: bob,
            content: text.as_bytes(),
            kind: 1,
            created: now,
        };
        // The id is allocated, the row and both session bumps commit together, then bob's
        // unread counter is raised: one call, as the CID_MSG_DATA handler makes it.
        let msg_id = match store
            .messages()
            .send_single(&msg, &[alice_session, bob_session], now)
            .await?
        {
            message::Sent::Stored(id) => id,
            message::Sent::NotStored { error, .. } => return Err(error.into()),
        };
        println!("stored msg_id {msg_id}: {text}");
    }

    // Read the newest five messages and bob's unread counters.
    let rel = store
        .relations()
        .find(Db::Slave, bob, alice)
        .await?
        .unwrap_or(relate_id);
    for m in store.messages().list_single(rel, 0, 5).await? {
        println!(
            "  #{:<4} from {:<4} at {}: {}",
            m.msg_id,
            m.from_id,
            m.created,
            String::from_utf8_lossy(&m.content)
        );
    }
    for (peer, count) in store.counters().single_counts(bob).await? {
        println!("bob has {count} unread from user {peer}");
    }
    // Mark read, as a read-ack does.
    store.counters().clear_single(bob, alice).await?;
    println!(
        "after read-ack: {:?}",
        store.counters().single_counts(bob).await?
    );
    Ok(())
}

/// The id of the active user `name`, created (password 123456, salt 1234) when missing.
async fn user(store: &Store, name: &str) -> dbproxy_model::Result<u32> {
    if let Some(u) = store.users().find_for_login(name).await? {
        return Ok(u.id);
    }
    let new = NewUser {
        name: name.into(),
        nick: name.into(),
        password: password_hash("123456", "1234"),
        salt: "1234".into(),
        ..NewUser::default()
    };
    store.users().insert(&new, unix_now()).await
}

//! `cargo xtask seed`: demo departments, users (password `123456`), one group with members
//! (IMGroup, IMGroupMember and the Redis hash `group_member_<G>`). Skips when IMUser has rows.

use std::time::{SystemTime, UNIX_EPOCH};

use mysql_async::prelude::Queryable;

use crate::common::{self, Redis, Result};

/// Clear password of every demo user.
pub const DEMO_PASSWORD: &str = "123456";

const DEPARTMENTS: [(&str, u32); 2] = [("Engineering", 1), ("Product", 2)];
/// (name, nick, sex, department index)
const USERS: [(&str, &str, u8, usize); 4] = [
    ("alice", "Alice", 2, 0),
    ("bob", "Bob", 1, 0),
    ("carol", "Carol", 2, 1),
    ("dave", "Dave", 1, 1),
];
const GROUP_NAME: &str = "Demo group";

fn hex_md5(s: &str) -> String {
    format!("{:x}", md5::compute(s.as_bytes()))
}

/// Stored password per schema.md §4: md5hex(md5hex(clear) + salt).
pub fn stored_password(clear: &str, salt: &str) -> String {
    hex_md5(&format!("{}{salt}", hex_md5(clear)))
}

pub async fn run() -> Result<std::process::ExitCode> {
    seed().await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Returns true if data was inserted, false if IMUser already had rows.
pub async fn seed() -> Result<bool> {
    let s = common::settings()?;
    let mut db = common::app_conn(&s.mysql.master).await?;
    let existing: Option<u64> = db.query_first("SELECT COUNT(*) FROM IMUser").await?;
    if existing.unwrap_or(0) > 0 {
        println!(
            "seed: IMUser already has {} rows; nothing inserted",
            existing.unwrap_or(0)
        );
        return Ok(false);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now = u32::try_from(now).unwrap_or(u32::MAX);

    let mut tx = db.start_transaction(mysql_async::TxOpts::default()).await?;
    let mut depart_ids = Vec::new();
    for (name, priority) in DEPARTMENTS {
        tx.exec_drop(
            "INSERT INTO IMDepart (departName, priority, parentId, status, created, updated) \
             VALUES (?, ?, 0, 0, ?, ?)",
            (name, priority, now, now),
        )
        .await?;
        depart_ids.push(tx.last_insert_id().unwrap_or(0));
    }
    let mut users = Vec::new();
    for (i, (name, nick, sex, dep)) in USERS.iter().enumerate() {
        let salt = ((u64::from(now) * 7919 + i as u64 * 104_729) % 10_000).to_string();
        let password = stored_password(DEMO_PASSWORD, &salt);
        tx.exec_drop(
            "INSERT INTO IMUser (sex, name, domain, nick, password, salt, phone, email, avatar, \
             departId, status, created, updated, push_shield_status, sign_info) \
             VALUES (?, ?, ?, ?, ?, ?, '', ?, '', ?, 0, ?, ?, 0, '')",
            (
                sex,
                name,
                name,
                nick,
                password,
                salt,
                format!("{name}@example.com"),
                depart_ids.get(*dep).copied().unwrap_or(0),
                now,
                now,
            ),
        )
        .await?;
        users.push((tx.last_insert_id().unwrap_or(0), *name));
    }
    let creator = users.first().map_or(0, |u| u.0);
    tx.exec_drop(
        "INSERT INTO IMGroup (name, avatar, creator, type, userCnt, status, version, lastChated, \
         updated, created) VALUES (?, '', ?, 1, ?, 0, 1, 0, ?, ?)",
        (GROUP_NAME, creator, users.len() as u64, now, now),
    )
    .await?;
    let group_id = tx.last_insert_id().unwrap_or(0);
    for (uid, _) in &users {
        tx.exec_drop(
            "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) \
             VALUES (?, ?, 0, ?, ?)",
            (group_id, uid, now, now),
        )
        .await?;
    }
    // Redis first, commit last: a Redis failure leaves MySQL empty so seed can be re-run.
    let mut redis = Redis::connect(&s.redis.group_member).await?;
    let key = format!("group_member_{group_id}");
    for (uid, _) in &users {
        redis
            .cmd(&["HSET", &key, &uid.to_string(), &now.to_string()])
            .await?;
    }
    tx.commit().await?;
    db.disconnect().await?;

    println!("seed: demo data in `{}`:", s.mysql.master.database);
    for ((name, _), id) in DEPARTMENTS.iter().zip(&depart_ids) {
        println!("  department {id}: {name}");
    }
    for (id, name) in &users {
        println!("  user {id}: login `{name}`, password `{DEMO_PASSWORD}`");
    }
    println!(
        "  group {group_id}: `{GROUP_NAME}` with all {} users (Redis {key} in db {})",
        users.len(),
        s.redis.group_member.db
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn password_scheme_matches_spec_example() {
        assert_eq!(
            super::stored_password("123456", "1234"),
            "b605e86d02eef8bfd0646f6a704c17c9"
        );
    }
}

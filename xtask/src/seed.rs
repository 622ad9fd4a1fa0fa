//! `cargo xtask seed`: demo departments, users (password `123456`) and one group with all
//! of them, written through the model crate (so IMGroupMember and the Redis hash
//! `group_member_<G>` are created exactly as db-proxy creates them). Skips when IMUser
//! already has rows.

use dbproxy_model::group::{NewGroup, GROUP_TYPE_NORMAL};
use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_model::{unix_now, Store};

use crate::common::{self, Result};

/// Clear password of every demo user.
pub const DEMO_PASSWORD: &str = "123456";

const DEPARTMENTS: [(&str, u32); 2] = [("Engineering", 1), ("Product", 2)];
/// (login name, nick, sex, department index)
const USERS: [(&str, &str, u32, usize); 4] = [
    ("alice", "Alice", 2, 0),
    ("bob", "Bob", 1, 0),
    ("carol", "Carol", 2, 1),
    ("dave", "Dave", 1, 1),
];
const GROUP_NAME: &str = "Demo group";

pub async fn run() -> Result<std::process::ExitCode> {
    seed().await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Returns true if data was inserted, false if IMUser already had rows.
pub async fn seed() -> Result<bool> {
    let s = common::settings()?;
    let store = Store::connect(&s.store_config()).await?;
    if !store.users().is_empty().await? {
        println!("seed: IMUser already has rows; nothing inserted");
        return Ok(false);
    }
    let now = unix_now();
    let mut depart_ids = Vec::new();
    for (name, priority) in DEPARTMENTS {
        depart_ids.push(store.departments().insert(name, 0, priority, now).await?);
    }
    let mut users = Vec::new();
    for (i, (name, nick, sex, dep)) in USERS.iter().enumerate() {
        // A salt per user (decimal 0–9999, like the admin console writes).
        let salt = ((u64::from(now) * 7919 + i as u64 * 104_729) % 10_000).to_string();
        let user = NewUser {
            name: (*name).into(),
            nick: (*nick).into(),
            domain: (*name).into(),
            password: password_hash(DEMO_PASSWORD, &salt),
            salt,
            sex: *sex,
            email: format!("{name}@example.com"),
            depart_id: depart_ids.get(*dep).copied().unwrap_or(0),
            ..NewUser::default()
        };
        users.push((store.users().insert(&user, now).await?, *name));
    }
    let members: Vec<u32> = users.iter().map(|u| u.0).collect();
    let group = NewGroup {
        name: GROUP_NAME.into(),
        avatar: String::new(),
        creator: members.first().copied().unwrap_or(0),
        group_type: GROUP_TYPE_NORMAL,
    };
    let group_id = store.groups().create(&group, &members, now).await?;

    println!("seed: demo data in `{}`:", s.mysql.master.database);
    for ((name, _), id) in DEPARTMENTS.iter().zip(&depart_ids) {
        println!("  department {id}: {name}");
    }
    for (id, name) in &users {
        println!("  user {id}: login `{name}`, password `{DEMO_PASSWORD}`");
    }
    println!(
        "  group {group_id}: `{GROUP_NAME}` with all {} users",
        users.len()
    );
    Ok(true)
}

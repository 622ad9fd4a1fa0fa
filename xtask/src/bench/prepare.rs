//! Untimed preparation: seeded users and the conversations the workloads need.

use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_model::{unix_now, Store};
use futures::{StreamExt, TryStreamExt};

use super::direct;
use super::options::Args;
use crate::common::Result;

/// Clear password of every seeded user.
pub const PASSWORD: &str = "123456";
/// Messages in each fetched conversation (the fetch workload asks for this many).
pub const FETCH_COUNT: u32 = 20;
/// Concurrent model calls during preparation.
const PREP_CONCURRENCY: usize = 16;

/// One seeded account.
#[derive(Debug, Clone)]
pub struct SeedUser {
    pub id: u32,
    pub name: String,
}

/// What the workloads pick from.
#[derive(Debug, Clone, Default)]
pub struct Population {
    pub users: Vec<SeedUser>,
    /// Pairs (user ids) with at least one message: each user i with i+1..=i+K (mod U).
    pub pairs: Vec<Pair>,
    /// Pairs (i, i+1 mod U) holding at least [`FETCH_COUNT`] messages.
    pub fetch_pairs: Vec<Pair>,
    /// Of a built population: the groups of each user (same order as `users`).
    pub groups: Vec<Vec<u32>>,
    /// Of a built population: `(user, peer, messages)` of the fetch pairs.
    pub histories: Vec<(u32, u32, u32)>,
}

impl Population {
    /// The heavy users of a `cargo xtask populate` manifest, their conversations (both
    /// directions are sent in), the long ones and their groups.
    pub fn from_manifest(m: &crate::populate::Manifest) -> Population {
        let mut pop = Population::default();
        for h in &m.heavy {
            pop.users.push(SeedUser {
                id: h.id,
                name: h.name.clone(),
            });
            pop.groups.push(h.groups.clone());
            for &(peer, n) in &h.peers {
                pop.pairs.push((h.id, peer));
                if n >= FETCH_COUNT {
                    pop.fetch_pairs.push((h.id, peer));
                    pop.histories.push((h.id, peer, n));
                }
            }
        }
        pop
    }
}

/// Name of seeded user `i`.
pub fn user_name(i: u32) -> String {
    format!("bench_{i}")
}

/// Users without a database, for the in-process trivial server.
pub fn synthetic(users: u32) -> Population {
    Population {
        users: (0..users)
            .map(|i| SeedUser {
                id: i + 1,
                name: user_name(i),
            })
            .collect(),
        ..Population::default()
    }
}

/// Inserts (or finds) the seeded users and, when the mode needs them, the conversations.
pub async fn prepare(store: &Store, args: &Args) -> Result<Population> {
    let started = std::time::Instant::now();
    let users: Vec<SeedUser> = futures::stream::iter(0..args.users)
        .map(|i| seed_user(store, i))
        .buffered(PREP_CONCURRENCY)
        .try_collect()
        .await?;
    let mut pop = Population {
        users,
        ..Population::default()
    };
    if args.mode.needs_messages() {
        conversations(store, &mut pop, args.peers).await?;
    }
    eprintln!(
        "bench: prepared {} users, {} conversations ({} with >= {FETCH_COUNT} messages) in {:.1} s",
        pop.users.len(),
        pop.pairs.len(),
        pop.fetch_pairs.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(pop)
}

async fn seed_user(store: &Store, i: u32) -> Result<SeedUser> {
    let name = user_name(i);
    if let Some(u) = store.users().find_for_login(&name).await? {
        return Ok(SeedUser { id: u.id, name });
    }
    let salt = format!("{:04}", (u64::from(i) * 7919) % 10_000);
    let id = store
        .users()
        .insert(
            &NewUser {
                name: name.clone(),
                nick: format!("Bench {i}"),
                domain: name.clone(),
                password: password_hash(PASSWORD, &salt),
                salt,
                sex: 1,
                phone: String::new(),
                email: format!("{name}@bench.invalid"),
                avatar: String::new(),
                depart_id: 1,
                status: 0,
                sign_info: String::new(),
            },
            unix_now(),
        )
        .await?;
    Ok(SeedUser { id, name })
}

/// Two user ids.
type Pair = (u32, u32);

/// Ring pairs: (i, i+k mod U) for k in 1..=K, deduplicated; k = 1 are the fetch pairs.
fn ring_pairs(users: &[SeedUser], peers: u32) -> (Vec<Pair>, Vec<Pair>) {
    let n = users.len();
    let mut seen = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    let mut fetch = Vec::new();
    for i in 0..n {
        for k in 1..=(peers as usize).min(n.saturating_sub(1)) {
            let (a, b) = (users[i].id, users[(i + k) % n].id);
            if seen.insert((a.min(b), a.max(b))) {
                pairs.push((a, b));
                if k == 1 {
                    fetch.push((a, b));
                }
            }
        }
    }
    (pairs, fetch)
}

async fn conversations(store: &Store, pop: &mut Population, peers: u32) -> Result<()> {
    let (pairs, fetch) = ring_pairs(&pop.users, peers);
    let now = unix_now();
    let text = b"bench: first message of the pair";
    // The first message of every pair creates its relation and both sessions.
    futures::stream::iter(pairs.iter().copied())
        .map(|(a, b)| async move { direct::send_single(store, a, b, now, text).await })
        .buffer_unordered(PREP_CONCURRENCY)
        .try_collect::<Vec<u32>>()
        .await?;
    // Fetch pairs get FETCH_COUNT messages in all, alternating direction, in order per pair.
    futures::stream::iter(fetch.iter().copied())
        .map(|(a, b)| async move {
            for n in 1..FETCH_COUNT {
                let (from, to) = if n % 2 == 0 { (a, b) } else { (b, a) };
                direct::send_single(store, from, to, now, b"bench: history").await?;
            }
            Ok::<_, dbproxy_model::Error>(())
        })
        .buffer_unordered(PREP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    pop.pairs = pairs;
    pop.fetch_pairs = fetch;
    Ok(())
}

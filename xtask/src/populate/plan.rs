//! The population as data, drawn from a seeded generator before anything is written: users,
//! relations with their message counts and unread tails, groups with members and message
//! counts, and the heavy users the bench loads. Rows themselves are derived from this plan
//! while writing (see `write`), so the same sizes and seed always give the same data.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::Sizes;

/// One user pair: ids (small < big), messages stored, and who sent the last `tail` of them.
#[derive(Debug, Clone)]
pub struct Relation {
    pub small: u32,
    pub big: u32,
    /// Messages of the pair: msgIds 1..=count.
    pub count: u32,
    /// Sender of the last `tail` messages (the others alternate, small first).
    pub tail_from: u32,
    pub tail: u32,
    /// Whether the receiver of the tail still has it unread (`unread_<receiver>`).
    pub unread: bool,
}

impl Relation {
    /// Sender of message `msg_id` (1-based).
    pub fn sender(&self, msg_id: u32) -> u32 {
        if msg_id > self.count - self.tail {
            self.tail_from
        } else if msg_id % 2 == 1 {
            self.small
        } else {
            self.big
        }
    }

    /// The side that did not send the tail.
    pub fn tail_receiver(&self) -> u32 {
        if self.tail_from == self.small {
            self.big
        } else {
            self.small
        }
    }
}

/// One group: members (distinct, creator first) and messages stored (msgIds 1..=count).
#[derive(Debug, Clone)]
pub struct Group {
    pub members: Vec<u32>,
    pub count: u32,
}

/// A user the bench puts under load: many sessions, groups and unread peers.
#[derive(Debug, Clone)]
pub struct Heavy {
    pub id: u32,
    /// Relation ids (index + 1 into [`Plan::relations`]) of the user's single sessions.
    pub relations: Vec<u32>,
    /// Group ids the user is a member of.
    pub groups: Vec<u32>,
}

/// Everything the writer needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub users: u32,
    /// Relation id = index + 1.
    pub relations: Vec<Relation>,
    /// Group id = index + 1.
    pub groups: Vec<Group>,
    pub heavy: Vec<Heavy>,
}

/// Splits `total` into `parts` counts of at least 1 with an exponential spread (a few long
/// conversations, many short ones), summing exactly to `total`.
fn spread(rng: &mut StdRng, parts: usize, total: u64) -> Vec<u32> {
    let weights: Vec<f64> = (0..parts)
        .map(|_| -(1.0 - rng.random::<f64>()).ln())
        .collect();
    let sum: f64 = weights.iter().sum();
    let extra = total.saturating_sub(parts as u64) as f64;
    let mut counts: Vec<u32> = weights
        .iter()
        .map(|w| 1 + (extra * w / sum).floor() as u32)
        .collect();
    let mut short = total.saturating_sub(counts.iter().map(|&c| u64::from(c)).sum());
    let mut i = 0;
    while short > 0 && !counts.is_empty() {
        counts[i % parts] += 1;
        short -= 1;
        i += 1;
    }
    counts
}

/// Draws a member count in `min..=max`, skewed towards small groups (cube of a uniform).
fn group_size(rng: &mut StdRng, min: u32, max: u32) -> u32 {
    let u: f64 = rng.random();
    min + (f64::from(max - min) * u * u * u).round() as u32
}

impl Plan {
    /// Draws the population; fails when the sizes cannot hold the heavy users.
    pub fn draw(s: &Sizes, seed: u64) -> Result<Plan, String> {
        s.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let singles = s.heavy_sessions - s.heavy_groups;
        // Heavy users are ids 1..=heavy; their peers are drawn from the other users.
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(s.relations as usize);
        let mut heavy: Vec<Heavy> = Vec::with_capacity(s.heavy as usize);
        let others: Vec<u32> = (s.heavy + 1..=s.users).collect();
        for h in 1..=s.heavy {
            let mut rels = Vec::with_capacity(singles as usize);
            for &p in others.choose_multiple(&mut rng, singles as usize) {
                if seen.insert((h, p)) {
                    pairs.push((h, p));
                    rels.push(pairs.len() as u32);
                }
            }
            heavy.push(Heavy {
                id: h,
                relations: rels,
                groups: Vec::new(),
            });
        }
        // The remaining relations between random ordinary users.
        let mut attempts = 0u64;
        while pairs.len() < s.relations as usize {
            attempts += 1;
            if attempts > 100 * u64::from(s.relations) {
                return Err(format!(
                    "cannot draw {} distinct pairs among {} users",
                    s.relations, s.users
                ));
            }
            let a = rng.random_range(s.heavy + 1..=s.users);
            let b = rng.random_range(s.heavy + 1..=s.users);
            if a != b && seen.insert((a.min(b), a.max(b))) {
                pairs.push((a.min(b), a.max(b)));
            }
        }
        let counts = spread(&mut rng, pairs.len(), s.messages);
        let mut relations: Vec<Relation> = pairs
            .iter()
            .zip(&counts)
            .map(|(&(small, big), &count)| {
                let tail_from = if rng.random_bool(0.5) { small } else { big };
                Relation {
                    small,
                    big,
                    count,
                    tail_from,
                    tail: rng.random_range(1..=count.min(5)),
                    unread: rng.random_bool(0.5),
                }
            })
            .collect();
        // Each heavy user has `heavy_unread` peers whose tail it has not read; the rest of
        // its conversations end with its own messages, read by nobody in particular.
        for h in &heavy {
            let mut rels = h.relations.clone();
            rels.shuffle(&mut rng);
            for (i, &r) in rels.iter().enumerate() {
                let rel = &mut relations[r as usize - 1];
                let peer = if rel.small == h.id {
                    rel.big
                } else {
                    rel.small
                };
                rel.tail_from = if i < s.heavy_unread as usize {
                    peer
                } else {
                    h.id
                };
                rel.unread = true;
            }
        }

        let mut groups: Vec<Group> = (0..s.groups)
            .map(|_| {
                let n = group_size(&mut rng, s.min_members, s.max_members) as usize;
                let mut members: Vec<u32> = Vec::with_capacity(n);
                let mut set = HashSet::with_capacity(n);
                while members.len() < n {
                    let u = rng.random_range(1..=s.users);
                    if set.insert(u) {
                        members.push(u);
                    }
                }
                Group { members, count: 0 }
            })
            .collect();
        let ids: Vec<u32> = (1..=s.groups).collect();
        for h in &mut heavy {
            for &g in ids.choose_multiple(&mut rng, s.heavy_groups as usize) {
                let members = &mut groups[g as usize - 1].members;
                if !members.contains(&h.id) {
                    members.push(h.id);
                }
                h.groups.push(g);
            }
        }
        for (g, n) in groups
            .iter_mut()
            .zip(spread(&mut rng, s.groups as usize, s.group_messages))
        {
            g.count = n;
        }
        Ok(Plan {
            users: s.users,
            relations,
            groups,
            heavy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> Sizes {
        Sizes {
            users: 300,
            relations: 400,
            messages: 4_000,
            groups: 30,
            min_members: 3,
            max_members: 40,
            group_messages: 900,
            heavy: 4,
            heavy_sessions: 30,
            heavy_groups: 6,
            heavy_unread: 10,
        }
    }

    #[test]
    fn plans_hold_the_sizes_asked_for() {
        let s = sizes();
        let p = Plan::draw(&s, 7).expect("plan");
        assert_eq!(p.relations.len(), 400);
        let msgs: u64 = p.relations.iter().map(|r| u64::from(r.count)).sum();
        assert_eq!(msgs, 4_000);
        let pairs: HashSet<(u32, u32)> = p.relations.iter().map(|r| (r.small, r.big)).collect();
        assert_eq!(pairs.len(), 400, "distinct pairs");
        assert!(p.relations.iter().all(|r| r.small < r.big && r.count >= 1));
        assert!(p.relations.iter().all(|r| r.tail >= 1 && r.tail <= r.count));
        let gm: u64 = p.groups.iter().map(|g| u64::from(g.count)).sum();
        assert_eq!(gm, 900);
        for g in &p.groups {
            let set: HashSet<u32> = g.members.iter().copied().collect();
            assert_eq!(set.len(), g.members.len(), "distinct members");
            assert!(g.members.len() >= 3 && g.count >= 1);
        }
        for h in &p.heavy {
            assert_eq!(h.relations.len(), 24);
            assert_eq!(h.groups.len(), 6);
            let unread = h
                .relations
                .iter()
                .map(|&r| &p.relations[r as usize - 1])
                .filter(|r| r.unread && r.tail_receiver() == h.id)
                .count();
            assert_eq!(unread, 10);
            for &g in &h.groups {
                assert!(p.groups[g as usize - 1].members.contains(&h.id));
            }
        }
        // Same sizes and seed, same plan.
        let again = Plan::draw(&s, 7).expect("plan");
        assert_eq!(again.relations[17].count, p.relations[17].count);
        assert_eq!(again.groups[5].members, p.groups[5].members);
    }

    #[test]
    fn senders_alternate_then_end_with_the_tail() {
        let r = Relation {
            small: 3,
            big: 9,
            count: 6,
            tail_from: 3,
            tail: 2,
            unread: true,
        };
        let senders: Vec<u32> = (1..=6).map(|m| r.sender(m)).collect();
        assert_eq!(senders, vec![3, 9, 3, 9, 3, 3]);
        assert_eq!(r.tail_receiver(), 9);
    }

    #[test]
    fn impossible_sizes_are_refused() {
        let mut s = sizes();
        s.relations = 50; // 4 heavy users x 24 single sessions need 96
        assert!(Plan::draw(&s, 1).is_err());
    }
}

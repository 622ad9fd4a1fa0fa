//! Statement texts over the eight shards of a message table family: [`ShardLists`] (one
//! part per shard taking a list of ids) and [`ShardSlots`] (one part per id, in fixed slots).

use super::texts::BUCKETS;

/// Statements over a sharded table family with one part per shard, each part taking a list
/// of ids: `part(0) UNION ALL ... UNION ALL part(7)`, where `{in}` in a part becomes `b`
/// markers `?, ?, ...` (b in [`BUCKETS`]). Unused markers are bound to a value that matches
/// nothing. The text depends on `b` only, so each stays prepared on the connection.
///
/// Against [`ShardSlots`] (one part per id): MariaDB's cost is mostly per part, so eight
/// list parts are cheaper for many ids and dearer for a few (the costs per part measured from
/// the `mariadb` CLI are in BENCHMARKS.md, "Session 7").
pub(crate) struct ShardLists {
    texts: Vec<String>,
}

impl ShardLists {
    /// Texts for every bucket size from `part(shard)`, which must contain `{in}` once.
    pub(crate) fn new(part: impl Fn(usize) -> String) -> Self {
        let parts: Vec<String> = (0..8).map(part).collect();
        let texts = BUCKETS
            .iter()
            .map(|&b| {
                let markers = vec!["?"; b].join(", ");
                parts
                    .iter()
                    .map(|p| format!("({})", p.replace("{in}", &markers)))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            })
            .collect();
        ShardLists { texts }
    }

    /// The statements that read items of the given shards (0..8): rounds of at most 32 items
    /// per shard; in each, `items` lists the item bound to every marker in text order
    /// (shard by shard, `None` = padding).
    pub(crate) fn plan(&self, shards: &[usize]) -> Vec<SlotPlan<'_>> {
        shard_rounds(shards, &BUCKETS)
            .into_iter()
            .map(|round| {
                let i = BUCKETS.iter().position(|&b| b == round.k).unwrap_or(0);
                SlotPlan {
                    sql: self.texts[i].as_str().into(),
                    prepared: true,
                    items: round.layout,
                }
            })
            .collect()
    }
}

/// Items (given by their shard, 0..8) in rounds of at most `sizes`' largest per shard; each
/// round's `k` is the smallest of `sizes` holding its fullest shard, and `layout[s * k + j]`
/// the item in place j of shard s.
fn shard_rounds(shards: &[usize], sizes: &[usize]) -> Vec<SlotRound> {
    let max_k = sizes.last().copied().unwrap_or(1);
    let mut per_shard: [Vec<usize>; 8] = Default::default();
    for (i, &s) in shards.iter().enumerate() {
        per_shard[s % 8].push(i);
    }
    let most = per_shard.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut start = 0;
    while start < most {
        let in_round = |v: &Vec<usize>| v.len().saturating_sub(start).min(max_k);
        let widest = per_shard.iter().map(in_round).max().unwrap_or(0);
        let k = sizes
            .iter()
            .copied()
            .find(|&k| k >= widest)
            .unwrap_or(max_k);
        let mut layout = vec![None; 8 * k];
        for (s, items) in per_shard.iter().enumerate() {
            for (j, &item) in items.iter().skip(start).take(k).enumerate() {
                layout[s * k + j] = Some(item);
            }
        }
        out.push(SlotRound { k, layout });
        start += max_k;
    }
    out
}

/// Slots per shard of a [`ShardSlots`] statement.
const SLOT_SIZES: [usize; 4] = [1, 2, 4, 8];

/// Statements over a sharded table family that answer many ids at once with fixed texts:
/// `K` parenthesised parts per shard (`K` in 1, 2, 4, 8), `(s0,slot0) UNION ALL (s0,slot1)
/// ... (s7,slot K-1)`, where `{k}` in a part becomes the slot's tag `s * K + j`. Unused
/// slots are bound to values that match nothing. The text depends on `K` only, so each
/// stays prepared on the connection.
pub(crate) struct ShardSlots {
    /// What an unused slot costs MariaDB: decides when a one-off text is cheaper.
    padding: Padding,
    texts: Vec<String>,
    /// One part alone per shard (tag 0): for a single item, no padding probes at all.
    singles: Vec<String>,
    /// The parts, `{k}` not yet replaced (for one-off exact texts).
    parts: Vec<String>,
}

/// What MariaDB spends on a padding slot of a [`ShardSlots`] text, against a real one.
/// A one-off text has a fixed cost of its own: MariaDB parses and prepares it and closes it
/// again, and it takes two more round trips (costs in BENCHMARKS.md, "Session 7").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Padding {
    /// About as much as a real slot (an index probe that finds nothing, for a newest-message
    /// part): a one-off text pays once padding would be more than half of a round's parts.
    Probe,
    /// A fraction of a real slot (the part stops before reading, as `LIMIT 0` does, for a
    /// page part): a one-off text pays only once the padding outweighs its fixed cost, i.e.
    /// more than 15 padding parts beyond one per item (2 pages: padded up to 2 slots per
    /// shard; 15 pages: padded with 4 slots per shard; one-off with 8).
    Stop,
}

impl Padding {
    /// Whether a one-off text of exactly `real` items costs less than the fixed text with
    /// `padding` unused slots.
    fn one_off_pays(self, real: usize, padding: usize) -> bool {
        match self {
            Padding::Probe => padding > real,
            Padding::Stop => padding > 15 + real,
        }
    }
}

/// One statement of a [`ShardSlots`] read: its text, whether that text is one of the fixed
/// ones (kept prepared) or a one-off, and `items[tag]`: the item a row tagged `tag` answers
/// (`None`: a padding slot, bound to values that match nothing).
pub(crate) struct SlotPlan<'a> {
    pub sql: std::borrow::Cow<'a, str>,
    pub prepared: bool,
    pub items: Vec<Option<usize>>,
}

/// One statement's worth of items: `layout[s * k + j]` is the item in slot j of shard s.
pub(crate) struct SlotRound {
    pub k: usize,
    pub layout: Vec<Option<usize>>,
}

impl ShardSlots {
    pub(crate) fn new(parts: &[&str; 8], padding: Padding) -> Self {
        let texts = SLOT_SIZES
            .iter()
            .map(|&k| {
                let mut sql = String::new();
                for (s, part) in parts.iter().enumerate() {
                    for j in 0..k {
                        if !sql.is_empty() {
                            sql.push_str(" UNION ALL ");
                        }
                        sql.push('(');
                        sql.push_str(&part.replace("{k}", &(s * k + j).to_string()));
                        sql.push(')');
                    }
                }
                sql
            })
            .collect();
        let singles = parts.iter().map(|p| p.replace("{k}", "0")).collect();
        ShardSlots {
            padding,
            texts,
            singles,
            parts: parts.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The statements that read items of the given shards: per round, the fixed padded
    /// text; a lone item's part alone; or, when padding would cost more than preparing
    /// ([`Padding`]), a one-off text of exactly its items (two more round trips, to
    /// prepare and to close, but no padding parts: MariaDB's cost is per part).
    pub(crate) fn plan(&self, shards: &[usize]) -> Vec<SlotPlan<'_>> {
        Self::rounds(shards)
            .into_iter()
            .map(|round| {
                let real: Vec<usize> = round.layout.iter().flatten().copied().collect();
                match real[..] {
                    [only] => SlotPlan {
                        sql: self.single(shards[only]).into(),
                        prepared: true,
                        items: vec![Some(only)],
                    },
                    _ if self.sparse(&round) => {
                        let mut sql = String::new();
                        for (tag, &i) in real.iter().enumerate() {
                            if tag > 0 {
                                sql.push_str(" UNION ALL ");
                            }
                            sql.push('(');
                            sql.push_str(
                                &self.parts[shards[i] % 8].replace("{k}", &tag.to_string()),
                            );
                            sql.push(')');
                        }
                        SlotPlan {
                            sql: sql.into(),
                            prepared: false,
                            items: real.into_iter().map(Some).collect(),
                        }
                    }
                    _ => SlotPlan {
                        sql: self.text(&round).into(),
                        prepared: true,
                        items: round.layout,
                    },
                }
            })
            .collect()
    }

    /// Whether [`Self::plan`] of these shards needs a one-off text (a round with more
    /// padding than its [`Padding`] allows), without building it.
    pub(crate) fn needs_one_off(&self, shards: &[usize]) -> bool {
        Self::rounds(shards).iter().any(|r| self.sparse(r))
    }

    /// More than one item, and more padding than [`Padding`] allows.
    fn sparse(&self, round: &SlotRound) -> bool {
        let real = round.layout.iter().flatten().count();
        real > 1 && self.padding.one_off_pays(real, round.layout.len() - real)
    }

    /// The part of `shard` alone, tagged 0.
    pub(crate) fn single(&self, shard: usize) -> &str {
        &self.singles[shard % 8]
    }

    /// The text of a round.
    pub(crate) fn text(&self, round: &SlotRound) -> &str {
        let i = SLOT_SIZES.iter().position(|&k| k == round.k).unwrap_or(0);
        &self.texts[i]
    }

    /// Split items (given by their shard, 0..8) into rounds of at most 8 per shard.
    pub(crate) fn rounds(shards: &[usize]) -> Vec<SlotRound> {
        shard_rounds(shards, &SLOT_SIZES)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_rounds_place_every_item_once() {
        let shards = [3, 3, 0, 7, 3, 1, 3, 3, 3, 3, 3, 3, 3];
        let rounds = ShardSlots::rounds(&shards);
        assert_eq!(rounds.len(), 2, "shard 3 holds 10 items: two rounds");
        assert_eq!(rounds[0].k, 8);
        assert_eq!(rounds[1].k, 2);
        let mut seen: Vec<usize> = rounds
            .iter()
            .flat_map(|r| r.layout.iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..shards.len()).collect::<Vec<_>>());
        for r in &rounds {
            for (slot, item) in r.layout.iter().enumerate() {
                if let Some(i) = item {
                    assert_eq!(shards[*i], slot / r.k, "item {i} in its shard's slots");
                }
            }
        }
        assert!(ShardSlots::rounds(&[]).is_empty());
        let t = ShardSlots::new(
            &[
                "A{k}", "B{k}", "C{k}", "D{k}", "E{k}", "F{k}", "G{k}", "H{k}",
            ],
            Padding::Probe,
        );
        let r = &ShardSlots::rounds(&[1, 1])[0];
        assert_eq!(r.k, 2);
        assert!(t
            .text(r)
            .starts_with("(A0) UNION ALL (A1) UNION ALL (B2) UNION ALL (B3)"));
    }

    use super::*;

    #[test]
    fn one_off_texts_are_foreseen_without_building_them() {
        let parts = [
            "A{k}", "B{k}", "C{k}", "D{k}", "E{k}", "F{k}", "G{k}", "H{k}",
        ];
        for padding in [Padding::Probe, Padding::Stop] {
            let t = ShardSlots::new(&parts, padding);
            for shards in [
                &[][..],
                &[5],
                &[0, 1, 2, 3, 4, 5, 6, 7],
                &[3, 3, 0, 1, 2, 4, 5, 6, 7],
                &[2, 2],
                &[3, 3, 3],
                &[1, 1, 6, 6, 6, 6],
                &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7],
            ] {
                let one_off = t.plan(shards).iter().any(|p| !p.prepared);
                assert_eq!(t.needs_one_off(shards), one_off, "{padding:?} {shards:?}");
            }
        }
        let (probe, stop) = (
            ShardSlots::new(&parts, Padding::Probe),
            ShardSlots::new(&parts, Padding::Stop),
        );
        assert!(!probe.needs_one_off(&[0, 1, 2, 3, 4, 5, 6, 7]));
        assert!(probe.needs_one_off(&[3, 3, 3]), "3 of 32 parts");
        // 11 items, 4 slots per shard: 32 parts, 21 of them padding.
        let eleven = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
        assert!(probe.needs_one_off(&eleven));
        assert!(!stop.needs_one_off(&eleven));
        // Two items: 8 or 16 parts stay padded when padding is cheap, 32 do not.
        assert!(probe.needs_one_off(&[2, 5]) && !stop.needs_one_off(&[2, 5]));
        assert!(probe.needs_one_off(&[2, 2]) && !stop.needs_one_off(&[2, 2]));
        assert!(stop.needs_one_off(&[3, 3, 3]), "29 of 32 parts padding");
    }

    #[test]
    fn shard_lists_bind_every_item_once_in_its_shard() {
        let lists = ShardLists::new(|s| format!("SELECT {s} WHERE x IN ({{in}})"));
        // 3 items in shard 2, 1 in shard 5: one round, 4 markers per shard.
        let plans = lists.plan(&[2, 5, 2, 2]);
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!(p.sql.matches('?').count(), 32);
        assert!(p
            .sql
            .starts_with("(SELECT 0 WHERE x IN (?, ?, ?, ?)) UNION ALL (SELECT 1"));
        assert_eq!(p.items.len(), 32);
        assert_eq!(&p.items[8..12], &[Some(0), Some(2), Some(3), None]);
        assert_eq!(&p.items[20..24], &[Some(1), None, None, None]);
        assert_eq!(p.items.iter().flatten().count(), 4);
        // 40 items in one shard: a round of 32 and a round of 8.
        let plans = lists.plan(&[7; 40]);
        let sizes: Vec<usize> = plans.iter().map(|p| p.items.len()).collect();
        assert_eq!(sizes, vec![8 * 32, 8 * 8]);
        let mut seen: Vec<usize> = plans
            .iter()
            .flat_map(|p| p.items.iter().flatten().copied())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert!(lists.plan(&[]).is_empty());
    }
}

//! Statement texts of batches: fixed sizes a batch is padded to, so that every batched
//! statement has one of a few texts and stays prepared on the connection.

/// Statement sizes a batch is padded to, so that each batched statement has one of a few
/// fixed texts and stays prepared on the connection.
pub(crate) const BUCKETS: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// Most requests one batch can hold: the largest bucket.
pub(crate) const MAX_BATCH: usize = BUCKETS[BUCKETS.len() - 1];

/// `(part_0) UNION ALL (part_1) ...`: `n` copies of `part`, where `{k}` becomes the copy's
/// index (a literal tag telling which request a row answers).
pub(crate) fn tagged_union(part: &str, n: usize) -> String {
    (0..n)
        .map(|k| format!("({})", part.replace("{k}", &k.to_string())))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// One statement text per bucket size, built once: batched statements are padded to a
/// bucket so their text is one of a few and stays prepared on each connection.
pub(crate) struct BucketTexts {
    sizes: &'static [usize],
    texts: Vec<String>,
}

impl BucketTexts {
    /// Texts `build(n)` for every size in [`BUCKETS`].
    pub(crate) fn new(build: impl Fn(usize) -> String) -> Self {
        Self::with_sizes(&BUCKETS, build)
    }

    /// Texts `build(n)` for every size in `sizes` (ascending, not empty).
    pub(crate) fn with_sizes(sizes: &'static [usize], build: impl Fn(usize) -> String) -> Self {
        BucketTexts {
            sizes,
            texts: sizes.iter().map(|&n| build(n)).collect(),
        }
    }

    /// The text for `n` items and the padded size it expects: the smallest size holding `n`
    /// (the largest when none does; callers split their items into chunks of at most that).
    pub(crate) fn for_len(&self, n: usize) -> (&str, usize) {
        let i = self
            .sizes
            .iter()
            .position(|&b| b >= n)
            .unwrap_or(self.sizes.len().saturating_sub(1));
        match (self.texts.get(i), self.sizes.get(i)) {
            (Some(text), Some(&b)) => (text, b),
            _ => ("", 0),
        }
    }
}

/// `(?, ?), (?, ?), …` with `n` pairs: the list of a row-constructor `IN`, which MariaDB
/// turns into the same index ranges as an OR list of `(a = ? AND b = ?)` for about a
/// quarter less CPU (NOT NULL columns, so both mean the same).
pub(crate) fn pair_markers(n: usize) -> String {
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        s.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_tags_each_copy() {
        assert_eq!(
            tagged_union("SELECT {k} AS k FROM t WHERE a = ?", 2),
            "(SELECT 0 AS k FROM t WHERE a = ?) UNION ALL (SELECT 1 AS k FROM t WHERE a = ?)"
        );
        let texts = BucketTexts::new(|n| format!("IN {n}"));
        assert_eq!(texts.for_len(3), ("IN 4", 4));
        assert_eq!(texts.for_len(1), ("IN 1", 1));
        assert_eq!(texts.for_len(16), ("IN 16", 16));
        assert_eq!(texts.for_len(17), ("IN 32", 32));
        assert_eq!(
            texts.for_len(40),
            ("IN 32", 32),
            "callers chunk at the largest size"
        );
        let wide = BucketTexts::with_sizes(&[1, 48, 96], |n| format!("IN {n}"));
        assert_eq!(wide.for_len(2), ("IN 48", 48));
        assert_eq!(wide.for_len(48), ("IN 48", 48));
        assert_eq!(wide.for_len(80), ("IN 96", 96));
    }

    #[test]
    fn pair_markers_list_pairs() {
        assert_eq!(pair_markers(1), "(?, ?)");
        assert_eq!(pair_markers(3), "(?, ?), (?, ?), (?, ?)");
    }
}

//! Message table sharding: `IMMessage_<relateId % 8>` and `IMGroupMessage_<groupId % 8>`.
//! Table names come only from the static strings here, chosen by `id % 8`.

/// Number of shards of each message table family (hard-coded by the original).
pub(crate) const SHARDS: u32 = 8;

/// Single-chat message tables, index = relateId % 8.
pub(crate) const MESSAGE_TABLES: [&str; 8] = [
    "IMMessage_0",
    "IMMessage_1",
    "IMMessage_2",
    "IMMessage_3",
    "IMMessage_4",
    "IMMessage_5",
    "IMMessage_6",
    "IMMessage_7",
];

/// Group message tables, index = groupId % 8.
pub(crate) const GROUP_MESSAGE_TABLES: [&str; 8] = [
    "IMGroupMessage_0",
    "IMGroupMessage_1",
    "IMGroupMessage_2",
    "IMGroupMessage_3",
    "IMGroupMessage_4",
    "IMGroupMessage_5",
    "IMGroupMessage_6",
    "IMGroupMessage_7",
];

/// Shard index of an id.
pub(crate) fn shard_of(id: u32) -> usize {
    (id % SHARDS) as usize
}

/// `IMMessage_<relate_id % 8>`.
pub fn message_table(relate_id: u32) -> &'static str {
    MESSAGE_TABLES[shard_of(relate_id)]
}

/// `IMGroupMessage_<group_id % 8>`.
pub fn group_message_table(group_id: u32) -> &'static str {
    GROUP_MESSAGE_TABLES[shard_of(group_id)]
}

/// Build a `[&'static str; 8]` of SQL texts, one per shard, at compile time:
/// `shard_sql!(IMMessage, "SELECT msgId FROM ", " WHERE relateId = ?")` gives
/// `["SELECT msgId FROM IMMessage_0 WHERE relateId = ?", ...]`. Index it with
/// [`shard_of`]. No runtime string building, no input in the SQL text.
macro_rules! shard_sql {
    ($table:ident, $before:expr, $after:expr) => {
        [
            concat!($before, stringify!($table), "_0", $after),
            concat!($before, stringify!($table), "_1", $after),
            concat!($before, stringify!($table), "_2", $after),
            concat!($before, stringify!($table), "_3", $after),
            concat!($before, stringify!($table), "_4", $after),
            concat!($before, stringify!($table), "_5", $after),
            concat!($before, stringify!($table), "_6", $after),
            concat!($before, stringify!($table), "_7", $after),
        ]
    };
}
pub(crate) use shard_sql;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_by_modulo() {
        assert_eq!(message_table(0), "IMMessage_0");
        assert_eq!(message_table(15), "IMMessage_7");
        assert_eq!(group_message_table(u32::MAX), "IMGroupMessage_7");
        const Q: [&str; 8] = shard_sql!(IMMessage, "SELECT 1 FROM ", " WHERE relateId = ?");
        assert_eq!(
            Q[shard_of(9)],
            "SELECT 1 FROM IMMessage_1 WHERE relateId = ?"
        );
    }
}

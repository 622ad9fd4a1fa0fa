-- Optional read indexes (docs/compatibility.md#optional-indexes). db-proxy never applies this
-- file and works the same without it; it only makes two reads cheaper for users with many
-- sessions and groups (figures in BENCHMARKS.md, "Data-scale"). Run it once, at a quiet time
-- (each ALTER rebuilds its table's index online), with the mysql client:
--   mysql -u<admin> <database> < sql/optional/read_indexes.sql
-- Remove with: ALTER TABLE IMRecentSession DROP INDEX idx_userId_status_updated;
--              ALTER TABLE IMGroupMember DROP INDEX idx_userId_status_updated_groupId;
-- Valid on MariaDB 10.x and MySQL 5.7/8.0.

-- Recent sessions (0x0201): `userId = ? AND status = 0 AND updated > ? ORDER BY updated DESC
-- LIMIT 100` reads the newest 100 in index order instead of sorting all of the user's rows.
ALTER TABLE `IMRecentSession` ADD INDEX `idx_userId_status_updated` (`userId`, `status`, `updated`);

-- The groups of a user (unread counts, group list): the group ids come from the index
-- itself instead of one clustered-row lookup per membership.
ALTER TABLE `IMGroupMember` ADD INDEX `idx_userId_status_updated_groupId` (`userId`, `status`, `updated`, `groupId`);

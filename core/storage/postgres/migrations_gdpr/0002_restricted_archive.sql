-- Art. 18 restriction of archived messages, track "gdpr" (PostgreSQL).
--
-- An erasure keeps what a legal hold or a retention duty forbids deleting;
-- restricted marks those rows of archive_messages (a table of the "archive"
-- track, which migrates before this one) so that every ordinary read (MAM
-- of a user or a room, a new account given the erased JID) skips them and
-- only the DPO's tools read them. Restricted rows are rare: the queries
-- filter them after the (owner, id) range scan, no index needed. A column
-- with a constant default is added without rewriting the table.

ALTER TABLE archive_messages ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT false;

-- Art. 18 restriction of archived messages, track "gdpr" (SQLite).
--
-- An erasure keeps what a legal hold or a retention duty forbids deleting;
-- restricted = 1 marks those rows of archive_messages (a table of the
-- "archive" track, which migrates before this one) so that every ordinary
-- read (MAM of a user or a room, a new account given the erased JID) skips
-- them and only the DPO's tools read them. Restricted rows are rare: the
-- queries filter them after the (owner, id) range scan, no index needed.

ALTER TABLE archive_messages ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0 CHECK (restricted IN (0, 1));

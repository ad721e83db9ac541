-- Kontor archive schema, version 2 (PostgreSQL).
--
-- A data key kept by an erasure (a legal hold or a retention duty keeps
-- what it sealed) is retired: it belongs to the erased person, not to
-- whoever is given the address next. A retired key still opens what it
-- sealed (rows name their key by ID), but new messages of the same owner,
-- month and class get a new key, and a later erasure of the new account
-- does not see (or shred) it. So the slot is unique among live keys only.
ALTER TABLE archive_keys ADD COLUMN retired BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE archive_keys DROP CONSTRAINT archive_keys_owner_slice_class_key;
CREATE UNIQUE INDEX archive_keys_slot ON archive_keys (owner, slice, class) WHERE NOT retired;

-- PEP nodes and items (storage.PEPStore), track "pep" (SQLite).
--
-- config is the node configuration serialised by the pep module (opaque
-- here); max_items is kept beside it because the store enforces it. Items
-- are ordered by seq, which AUTOINCREMENT never reuses: republishing an
-- item deletes the old row and inserts a new one, so it becomes the newest.
-- size is the payload's length in bytes, summed for the per-account quota.
-- Times are UTC unix microseconds.

CREATE TABLE pep_nodes (
    owner     TEXT    NOT NULL,
    node      TEXT    NOT NULL,
    config    BLOB    NOT NULL,
    max_items INTEGER NOT NULL CHECK (max_items > 0),
    created   INTEGER NOT NULL,
    PRIMARY KEY (owner, node)
) STRICT;

CREATE TABLE pep_items (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    owner     TEXT    NOT NULL,
    node      TEXT    NOT NULL,
    item_id   TEXT    NOT NULL,
    payload   BLOB    NOT NULL,
    size      INTEGER NOT NULL CHECK (size >= 0),
    publisher TEXT    NOT NULL,
    published INTEGER NOT NULL,
    FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
) STRICT;

CREATE UNIQUE INDEX pep_items_id ON pep_items (owner, node, item_id);
CREATE INDEX pep_items_order ON pep_items (owner, node, seq);

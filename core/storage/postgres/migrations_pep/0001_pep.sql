-- PEP nodes and items (storage.PEPStore), track "pep" (PostgreSQL).
--
-- config is the node configuration serialised by the pep module (opaque
-- here); max_items is kept beside it because the store enforces it. Items
-- are ordered by seq: republishing an item deletes the old row and inserts
-- a new one, so it becomes the newest. size is the payload's length in
-- bytes, summed for the per-account quota. Times are UTC unix microseconds;
-- names compare as bytes (COLLATE "C").

CREATE TABLE pep_nodes (
    owner     TEXT COLLATE "C" NOT NULL,
    node      TEXT COLLATE "C" NOT NULL,
    config    BYTEA   NOT NULL,
    max_items INTEGER NOT NULL CHECK (max_items > 0),
    created   BIGINT  NOT NULL,
    PRIMARY KEY (owner, node)
);

CREATE TABLE pep_items (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner     TEXT COLLATE "C" NOT NULL,
    node      TEXT COLLATE "C" NOT NULL,
    item_id   TEXT COLLATE "C" NOT NULL,
    payload   BYTEA   NOT NULL,
    size      INTEGER NOT NULL CHECK (size >= 0),
    publisher TEXT    NOT NULL,
    published BIGINT  NOT NULL,
    FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
);

CREATE UNIQUE INDEX pep_items_id ON pep_items (owner, node, item_id);
CREATE INDEX pep_items_order ON pep_items (owner, node, seq);

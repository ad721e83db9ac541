package postgres

// PEP nodes and items (storage.PEPStore), in a migration track of their own
// ("pep", migrations_pep/). Writes that check a limit (the owner's node
// count, its payload quota, a node's max items) take the owner's PEP
// advisory lock first (class lockPEP), so that the check and the write
// are atomic with respect to every other such write for that owner, on any
// server sharing the database. The tables are added to ownedTables, so
// DeleteAccount removes them with the rest of an account.

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_pep/*.sql
var pepFiles embed.FS

// lockPEP is the advisory lock class of an owner's PEP writes.
const lockPEP int32 = 0x4B6E0020

func init() {
	schemas = append(schemas, schema{track: "pep", files: pepFiles, dir: "migrations_pep"})
	ownedTables = append(ownedTables, "pep_items", "pep_nodes")
}

var _ storage.PEPStore = (*Store)(nil)

// lockOwnerPEP takes the owner's PEP lock until the transaction ends.
func lockOwnerPEP(ctx context.Context, tx pgx.Tx, owner string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockPEP, owner)
	return err
}

// PEPNodes lists the owner's nodes ordered by name.
func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	rows, err := s.pool.Query(ctx, `SELECT node, config, max_items, created FROM pep_nodes
		WHERE owner = $1 ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: pep nodes: %w", err)
	}
	defer rows.Close()
	var out []storage.PEPNode
	for rows.Next() {
		n := storage.PEPNode{Owner: owner}
		var (
			max     int32
			created int64
		)
		if err := rows.Scan(&n.Node, &n.Config, &max, &created); err != nil {
			return nil, fmt.Errorf("postgres: pep nodes: %w", err)
		}
		n.MaxItems, n.Created = int(max), fromMicros(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: pep nodes: %w", err)
	}
	return out, nil
}

// PEPNode returns one node.
func (s *Store) PEPNode(ctx context.Context, owner, node string) (storage.PEPNode, error) {
	n := storage.PEPNode{Owner: owner, Node: node}
	var (
		max     int32
		created int64
	)
	err := s.pool.QueryRow(ctx, `SELECT config, max_items, created FROM pep_nodes
		WHERE owner = $1 AND node = $2`, owner, node).Scan(&n.Config, &max, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.PEPNode{}, fmt.Errorf("postgres: pep node: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.PEPNode{}, fmt.Errorf("postgres: pep node: %w", err)
	}
	n.MaxItems, n.Created = int(max), fromMicros(created)
	return n, nil
}

// CreatePEPNode creates a node within the owner's node limit.
func (s *Store) CreatePEPNode(ctx context.Context, n storage.PEPNode, maxNodes int) error {
	if n.MaxItems < 1 {
		return fmt.Errorf("postgres: create pep node: max items %d is not positive", n.MaxItems)
	}
	if n.Created.IsZero() {
		n.Created = time.Now()
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, n.Owner); err != nil {
			return err
		}
		var count, exists int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COUNT(*) FILTER (WHERE node = $2) FROM pep_nodes
			WHERE owner = $1`, n.Owner, n.Node).Scan(&count, &exists); err != nil {
			return err
		}
		if exists > 0 {
			return storage.ErrExists
		}
		if maxNodes > 0 && count >= int64(maxNodes) {
			return storage.ErrQuotaExceeded
		}
		_, err := tx.Exec(ctx, `INSERT INTO pep_nodes (owner, node, config, max_items, created)
			VALUES ($1, $2, $3, $4, $5)`, n.Owner, n.Node, nonNil(n.Config), int32(n.MaxItems), micros(n.Created))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create pep node: %w", err)
	}
	return nil
}

// ConfigurePEPNode replaces a node's configuration and trims its items.
func (s *Store) ConfigurePEPNode(ctx context.Context, owner, node string, config []byte, maxItems int) error {
	if maxItems < 1 {
		return fmt.Errorf("postgres: configure pep node: max items %d is not positive", maxItems)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, owner); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE pep_nodes SET config = $3, max_items = $4
			WHERE owner = $1 AND node = $2`, owner, node, nonNil(config), int32(maxItems))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return trimPEPNode(ctx, tx, owner, node, maxItems)
	})
	if err != nil {
		return fmt.Errorf("postgres: configure pep node: %w", err)
	}
	return nil
}

// trimPEPNode removes the oldest items of a node beyond max.
func trimPEPNode(ctx context.Context, tx pgx.Tx, owner, node string, max int) error {
	_, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND seq <= (
		SELECT seq FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT 1 OFFSET $3)`,
		owner, node, int64(max))
	return err
}

// DeletePEPNode removes a node and its items.
func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, owner); err != nil {
			return err
		}
		// The items go by ON DELETE CASCADE.
		tag, err := tx.Exec(ctx, `DELETE FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete pep node: %w", err)
	}
	return nil
}

// PublishPEPItem stores an item, replacing one with the same id, within
// the node's MaxItems and the owner's quota.
func (s *Store) PublishPEPItem(ctx context.Context, it storage.PEPItem, quotaBytes int64) error {
	if it.Published.IsZero() {
		it.Published = time.Now()
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, it.Owner); err != nil {
			return err
		}
		var max int32
		err := tx.QueryRow(ctx, `SELECT max_items FROM pep_nodes WHERE owner = $1 AND node = $2`,
			it.Owner, it.Node).Scan(&max)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND item_id = $3`,
			it.Owner, it.Node, it.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pep_items
			(owner, node, item_id, payload, size, publisher, published) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			it.Owner, it.Node, it.ID, nonNil(it.Payload), int32(len(it.Payload)), it.Publisher, micros(it.Published)); err != nil {
			return err
		}
		if err := trimPEPNode(ctx, tx, it.Owner, it.Node, int(max)); err != nil {
			return err
		}
		if quotaBytes > 0 {
			var used int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(SUM(size), 0) FROM pep_items WHERE owner = $1`,
				it.Owner).Scan(&used); err != nil {
				return err
			}
			if used > quotaBytes {
				return storage.ErrQuotaExceeded // rolls everything back
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: publish pep item: %w", err)
	}
	return nil
}

const pepItemColumns = `owner, node, item_id, payload, publisher, published`

func scanPEPItems(rows pgx.Rows) ([]storage.PEPItem, error) {
	defer rows.Close()
	var out []storage.PEPItem
	for rows.Next() {
		var (
			it storage.PEPItem
			at int64
		)
		if err := rows.Scan(&it.Owner, &it.Node, &it.ID, &it.Payload, &it.Publisher, &at); err != nil {
			return nil, err
		}
		it.Published = fromMicros(at)
		out = append(out, it)
	}
	return out, rows.Err()
}

// PEPItems returns items of a node, oldest first.
func (s *Store) PEPItems(ctx context.Context, owner, node string, ids []string, max int) ([]storage.PEPItem, error) {
	var (
		rows pgx.Rows
		err  error
	)
	switch {
	case len(ids) > 0:
		rows, err = s.pool.Query(ctx, `SELECT `+pepItemColumns+` FROM pep_items
			WHERE owner = $1 AND node = $2 AND item_id = ANY($3) ORDER BY seq`, owner, node, ids)
	case max > 0:
		rows, err = s.pool.Query(ctx, `SELECT `+pepItemColumns+` FROM (
			SELECT seq, `+pepItemColumns+` FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT $3
		) AS recent ORDER BY seq`, owner, node, int64(max))
	default:
		rows, err = s.pool.Query(ctx, `SELECT `+pepItemColumns+` FROM pep_items
			WHERE owner = $1 AND node = $2 ORDER BY seq`, owner, node)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: pep items: %w", err)
	}
	out, err := scanPEPItems(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: pep items: %w", err)
	}
	return out, nil
}

// PEPLastItems returns the newest item of each of the owner's nodes.
func (s *Store) PEPLastItems(ctx context.Context, owner string) ([]storage.PEPItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (node) `+pepItemColumns+` FROM pep_items
		WHERE owner = $1 ORDER BY node, seq DESC`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: pep last items: %w", err)
	}
	out, err := scanPEPItems(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: pep last items: %w", err)
	}
	return out, nil
}

// RetractPEPItem removes one item.
func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND item_id = $3`,
		owner, node, id)
	if err != nil {
		return fmt.Errorf("postgres: retract pep item: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: retract pep item: %w", storage.ErrNotFound)
	}
	return nil
}

// PurgePEPNode removes every item of a node.
func (s *Store) PurgePEPNode(ctx context.Context, owner, node string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, owner); err != nil {
			return err
		}
		var one int32
		err := tx.QueryRow(ctx, `SELECT 1 FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: purge pep node: %w", err)
	}
	return nil
}

// PEPUsage returns the owner's node count and payload bytes.
func (s *Store) PEPUsage(ctx context.Context, owner string) (int, int64, error) {
	var nodes, bytes int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM pep_nodes WHERE owner = $1),
		(SELECT COALESCE(SUM(size), 0)::bigint FROM pep_items WHERE owner = $1)`, owner).Scan(&nodes, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: pep usage: %w", err)
	}
	return int(nodes), bytes, nil
}

// DeletePEPOwner removes every node and item of an owner.
func (s *Store) DeletePEPOwner(ctx context.Context, owner string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockOwnerPEP(ctx, tx, owner); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM pep_items WHERE owner = $1`, owner); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pep_nodes WHERE owner = $1`, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete pep owner: %w", err)
	}
	return nil
}

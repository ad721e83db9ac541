package sqlite

// PEP nodes and items (storage.PEPStore), in a migration track of their own
// ("pep", migrations_pep/). Every write is one transaction on the single
// writer connection, so the node and quota checks and the writes they guard
// cannot interleave with another write. The tables are added to
// ownedTables, so DeleteAccount removes them with the rest of an account.

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_pep/*.sql
var pepFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "pep", files: pepFiles, dir: "migrations_pep"})
	// Items first: their foreign key would cascade anyway, but deleting
	// them by owner uses the index and does not depend on the pragma.
	ownedTables = append(ownedTables, "pep_items", "pep_nodes")
}

var _ storage.PEPStore = (*Store)(nil)

// PEPNodes lists the owner's nodes ordered by name.
func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT node, config, max_items, created FROM pep_nodes
		WHERE owner = $1 ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes: %w", err)
	}
	defer rows.Close()
	var out []storage.PEPNode
	for rows.Next() {
		n := storage.PEPNode{Owner: owner}
		var created int64
		if err := rows.Scan(&n.Node, &n.Config, &n.MaxItems, &created); err != nil {
			return nil, fmt.Errorf("sqlite: pep nodes: %w", err)
		}
		n.Created = fromMicros(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes: %w", err)
	}
	return out, nil
}

// PEPNode returns one node.
func (s *Store) PEPNode(ctx context.Context, owner, node string) (storage.PEPNode, error) {
	n := storage.PEPNode{Owner: owner, Node: node}
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT config, max_items, created FROM pep_nodes
		WHERE owner = $1 AND node = $2`, owner, node).Scan(&n.Config, &n.MaxItems, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.PEPNode{}, fmt.Errorf("sqlite: pep node: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.PEPNode{}, fmt.Errorf("sqlite: pep node: %w", err)
	}
	n.Created = fromMicros(created)
	return n, nil
}

// CreatePEPNode creates a node within the owner's node limit.
func (s *Store) CreatePEPNode(ctx context.Context, n storage.PEPNode, maxNodes int) error {
	if n.MaxItems < 1 {
		return fmt.Errorf("sqlite: create pep node: max items %d is not positive", n.MaxItems)
	}
	if n.Created.IsZero() {
		n.Created = time.Now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var exists, count int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(node = $2), 0) FROM pep_nodes
			WHERE owner = $1`, n.Owner, n.Node).Scan(&count, &exists); err != nil {
			return err
		}
		if exists > 0 {
			return storage.ErrExists
		}
		if maxNodes > 0 && count >= maxNodes {
			return storage.ErrQuotaExceeded
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pep_nodes (owner, node, config, max_items, created)
			VALUES ($1, $2, $3, $4, $5)`, n.Owner, n.Node, nonNil(n.Config), n.MaxItems, micros(n.Created))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create pep node: %w", err)
	}
	return nil
}

// ConfigurePEPNode replaces a node's configuration and trims its items.
func (s *Store) ConfigurePEPNode(ctx context.Context, owner, node string, config []byte, maxItems int) error {
	if maxItems < 1 {
		return fmt.Errorf("sqlite: configure pep node: max items %d is not positive", maxItems)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pep_nodes SET config = $3, max_items = $4
			WHERE owner = $1 AND node = $2`, owner, node, nonNil(config), maxItems)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		return trimPEPNode(ctx, tx, owner, node, maxItems)
	})
	if err != nil {
		return fmt.Errorf("sqlite: configure pep node: %w", err)
	}
	return nil
}

// trimPEPNode removes the oldest items of a node beyond max.
func trimPEPNode(ctx context.Context, tx *sql.Tx, owner, node string, max int) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND seq <= (
		SELECT seq FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT 1 OFFSET $3)`,
		owner, node, max)
	return err
}

// DeletePEPNode removes a node and its items.
func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete pep node: %w", err)
	}
	return nil
}

// PublishPEPItem stores an item, replacing one with the same id, within
// the node's MaxItems and the owner's quota.
func (s *Store) PublishPEPItem(ctx context.Context, it storage.PEPItem, quotaBytes int64) error {
	if it.Published.IsZero() {
		it.Published = time.Now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var max int
		err := tx.QueryRowContext(ctx, `SELECT max_items FROM pep_nodes WHERE owner = $1 AND node = $2`,
			it.Owner, it.Node).Scan(&max)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND item_id = $3`,
			it.Owner, it.Node, it.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pep_items
			(owner, node, item_id, payload, size, publisher, published) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			it.Owner, it.Node, it.ID, nonNil(it.Payload), len(it.Payload), it.Publisher, micros(it.Published)); err != nil {
			return err
		}
		if err := trimPEPNode(ctx, tx, it.Owner, it.Node, max); err != nil {
			return err
		}
		if quotaBytes > 0 {
			var used int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM pep_items WHERE owner = $1`,
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
		return fmt.Errorf("sqlite: publish pep item: %w", err)
	}
	return nil
}

const pepItemColumns = `owner, node, item_id, payload, publisher, published`

func scanPEPItems(rows *sql.Rows) ([]storage.PEPItem, error) {
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
		rows *sql.Rows
		err  error
	)
	switch {
	case len(ids) > 0:
		args := []any{owner, node}
		marks := make([]string, len(ids))
		for i, id := range ids {
			args = append(args, id)
			marks[i] = fmt.Sprintf("$%d", i+3)
		}
		rows, err = s.r.QueryContext(ctx, `SELECT `+pepItemColumns+` FROM pep_items
			WHERE owner = $1 AND node = $2 AND item_id IN (`+strings.Join(marks, ", ")+`) ORDER BY seq`, args...)
	case max > 0:
		rows, err = s.r.QueryContext(ctx, `SELECT `+pepItemColumns+` FROM (
			SELECT seq, `+pepItemColumns+` FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT $3
		) ORDER BY seq`, owner, node, max)
	default:
		rows, err = s.r.QueryContext(ctx, `SELECT `+pepItemColumns+` FROM pep_items
			WHERE owner = $1 AND node = $2 ORDER BY seq`, owner, node)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep items: %w", err)
	}
	out, err := scanPEPItems(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep items: %w", err)
	}
	return out, nil
}

// PEPLastItems returns the newest item of each of the owner's nodes.
func (s *Store) PEPLastItems(ctx context.Context, owner string) ([]storage.PEPItem, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+pepItemColumns+` FROM pep_items AS i
		WHERE owner = $1 AND seq = (SELECT MAX(seq) FROM pep_items WHERE owner = i.owner AND node = i.node)
		ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep last items: %w", err)
	}
	out, err := scanPEPItems(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep last items: %w", err)
	}
	return out, nil
}

// RetractPEPItem removes one item.
func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND item_id = $3`,
			owner, node, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: retract pep item: %w", err)
	}
	return nil
}

// PurgePEPNode removes every item of a node.
func (s *Store) PurgePEPNode(ctx context.Context, owner, node string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge pep node: %w", err)
	}
	return nil
}

// PEPUsage returns the owner's node count and payload bytes.
func (s *Store) PEPUsage(ctx context.Context, owner string) (int, int64, error) {
	var (
		nodes int
		bytes int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM pep_nodes WHERE owner = $1),
		(SELECT COALESCE(SUM(size), 0) FROM pep_items WHERE owner = $1)`, owner).Scan(&nodes, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: pep usage: %w", err)
	}
	return nodes, bytes, nil
}

// DeletePEPOwner removes every node and item of an owner.
func (s *Store) DeletePEPOwner(ctx context.Context, owner string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1`, owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = $1`, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete pep owner: %w", err)
	}
	return nil
}

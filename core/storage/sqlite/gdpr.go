package sqlite

// Legal holds, restrictions and the erasure and export helpers of
// storage.GDPRStore, in a migration track of their own ("gdpr",
// migrations_gdpr/). Erasing deletes with secure_delete on, so the freed
// pages are overwritten with zeros, and CompactAfterErasure checkpoints and
// truncates the WAL, which still holds the old pages until then.

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_gdpr/*.sql
var gdprFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "gdpr", files: gdprFiles, dir: "migrations_gdpr"})
}

var _ storage.GDPRStore = (*Store)(nil)

// CreateLegalHold stores an active hold.
func (s *Store) CreateLegalHold(ctx context.Context, h storage.LegalHold) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO legal_holds (subject, case_ref, reason, created_by, created)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, h.Subject, h.Case, h.Reason, h.By, micros(h.Created)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: create legal hold: %w", err)
	}
	return id, nil
}

// ReleaseLegalHold releases an active hold.
func (s *Store) ReleaseLegalHold(ctx context.Context, id int64, by string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE legal_holds SET released = $1, released_by = $2
			WHERE id = $3 AND released IS NULL`, micros(at), by, id)
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
		return fmt.Errorf("sqlite: release legal hold: %w", err)
	}
	return nil
}

// LegalHolds lists holds by ID.
func (s *Store) LegalHolds(ctx context.Context, subject string, all bool) ([]storage.LegalHold, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, subject, case_ref, reason, created_by, created,
		COALESCE(released, 0), released_by FROM legal_holds
		WHERE ($1 = '' OR subject = $1) AND ($2 OR released IS NULL) ORDER BY id`, subject, all)
	if err != nil {
		return nil, fmt.Errorf("sqlite: legal holds: %w", err)
	}
	defer rows.Close()
	var out []storage.LegalHold
	for rows.Next() {
		var (
			h                 storage.LegalHold
			created, released int64
		)
		if err := rows.Scan(&h.ID, &h.Subject, &h.Case, &h.Reason, &h.By, &created, &released, &h.ReleasedBy); err != nil {
			return nil, fmt.Errorf("sqlite: legal holds: %w", err)
		}
		h.Created = fromMicros(created)
		if released != 0 {
			h.Released = fromMicros(released)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: legal holds: %w", err)
	}
	return out, nil
}

// PutRestriction inserts or replaces a restriction.
func (s *Store) PutRestriction(ctx context.Context, r storage.Restriction) error {
	var until int64
	if !r.Until.IsZero() {
		until = micros(r.Until)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO restrictions (subject, category, until_at, case_ref, reason, created)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subject, category) DO UPDATE SET
			until_at = excluded.until_at, case_ref = excluded.case_ref, reason = excluded.reason, created = excluded.created`,
			r.Subject, r.Category, until, r.Case, r.Reason, micros(r.Created))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put restriction: %w", err)
	}
	return nil
}

// Restrictions lists restrictions by subject and category.
func (s *Store) Restrictions(ctx context.Context, subject string) ([]storage.Restriction, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT subject, category, until_at, case_ref, reason, created
		FROM restrictions WHERE ($1 = '' OR subject = $1) ORDER BY subject, category`, subject)
	if err != nil {
		return nil, fmt.Errorf("sqlite: restrictions: %w", err)
	}
	defer rows.Close()
	var out []storage.Restriction
	for rows.Next() {
		var (
			r              storage.Restriction
			until, created int64
		)
		if err := rows.Scan(&r.Subject, &r.Category, &until, &r.Case, &r.Reason, &created); err != nil {
			return nil, fmt.Errorf("sqlite: restrictions: %w", err)
		}
		if until != 0 {
			r.Until = archiveTime(until)
		}
		r.Created = fromMicros(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: restrictions: %w", err)
	}
	return out, nil
}

// PrivateXMLKeys lists owner's private XML keys.
func (s *Store) PrivateXMLKeys(ctx context.Context, owner string) ([]string, error) {
	out, err := s.strings(ctx, `SELECT key FROM private_xml WHERE owner = $1 ORDER BY key`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: private xml keys: %w", err)
	}
	return out, nil
}

// RosterReferences lists the rosters and pending requests that name contact.
func (s *Store) RosterReferences(ctx context.Context, contact string) (items, requests []string, err error) {
	if items, err = s.strings(ctx, `SELECT owner FROM roster_items WHERE contact = $1 ORDER BY owner`, contact); err != nil {
		return nil, nil, fmt.Errorf("sqlite: roster references: %w", err)
	}
	if requests, err = s.strings(ctx, `SELECT owner FROM subscription_requests WHERE from_jid = $1 ORDER BY owner`, contact); err != nil {
		return nil, nil, fmt.Errorf("sqlite: roster references: %w", err)
	}
	return items, requests, nil
}

func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ArchiveKeysOf returns every data key of owner, retired ones included.
func (s *Store) ArchiveKeysOf(ctx context.Context, owner string) ([]storage.ArchiveKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys WHERE owner = $1 ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive keys of owner: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: archive keys of owner: %w", err)
	}
	return keys, nil
}

// secureWrite runs fn in a write transaction with secure_delete on, so
// that what it deletes is overwritten in the database file.
func (s *Store) secureWrite(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// RetireArchiveKeys retires owner's live data keys.
func (s *Store) RetireArchiveKeys(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE archive_keys SET retired = 1 WHERE owner = $1 AND retired = 0`, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: retire archive keys: %w", err)
	}
	return int(n), nil
}

// ShredArchiveKeys deletes owner's data keys with these IDs.
func (s *Store) ShredArchiveKeys(ctx context.Context, owner string, ids []int64) (int, error) {
	var n int
	err := s.secureWrite(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `DELETE FROM archive_keys WHERE owner = $1 AND id = $2`, owner, id)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: shred archive keys: %w", err)
	}
	return n, nil
}

// DeleteUnkeyedArchive deletes up to limit messages whose key is gone.
func (s *Store) DeleteUnkeyedArchive(ctx context.Context, owner string, limit int) (int, error) {
	var n int64
	err := s.secureWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM archive_messages WHERE rowid IN (
			SELECT m.rowid FROM archive_messages m WHERE m.owner = $1
			AND NOT EXISTS (SELECT 1 FROM archive_keys k WHERE k.id = m.key_id) LIMIT $2)`, owner, limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete unkeyed archive: %w", err)
	}
	return int(n), nil
}

// RestrictArchive marks owner's archived messages restricted (Art. 18).
func (s *Store) RestrictArchive(ctx context.Context, owner string) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE archive_messages SET restricted = 1 WHERE owner = $1 AND restricted = 0`, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: restrict archive: %w", err)
	}
	return int(n), nil
}

// DeleteArchivePrefs removes owner's archiving preferences.
func (s *Store) DeleteArchivePrefs(ctx context.Context, owner string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM archive_prefs WHERE owner = $1`, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete archive prefs: %w", err)
	}
	return nil
}

// LDAPStableIDsOf returns the stable ids linked to jid.
func (s *Store) LDAPStableIDsOf(ctx context.Context, jid string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT stable_id FROM ldap_links WHERE jid = $1 ORDER BY stable_id`, jid)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ldap stable ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: ldap stable ids: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ldap stable ids: %w", err)
	}
	return out, nil
}

// DeleteLDAPLinksOf removes jid's directory links and managed roster items.
func (s *Store) DeleteLDAPLinksOf(ctx context.Context, jid string) (int, error) {
	var n int64
	err := s.secureWrite(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM ldap_links WHERE jid = $1`, jid)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM ldap_roster WHERE owner = $1 OR contact = $1`, jid)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete ldap links: %w", err)
	}
	return int(n), nil
}

// CompactAfterErasure checkpoints the WAL and truncates it.
func (s *Store) CompactAfterErasure(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	return nil
}

// EraseAccount deletes the account with secure_delete on. The writer has
// one connection, so the setting applies to this delete (and to any write
// that runs meanwhile, which only costs it some I/O).
func (s *Store) EraseAccount(ctx context.Context, jid string) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return fmt.Errorf("sqlite: erase account: %w", err)
	}
	defer s.w.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = OFF`)
	return s.DeleteAccount(ctx, jid)
}

// PutErasureTombstone stores a tombstone unless an active one has the same
// hashes.
func (s *Store) PutErasureTombstone(ctx context.Context, t storage.ErasureTombstone) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO erasure_tombstones (jid_hash, stable_hash, job, created)
			SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM erasure_tombstones
			WHERE jid_hash = $1 AND stable_hash = $2 AND reinstated IS NULL)`,
			nonNil(t.JIDHash), nonNil(t.StableHash), t.Job, micros(t.Created))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put erasure tombstone: %w", err)
	}
	return nil
}

// ErasureTombstones lists tombstones by ID.
func (s *Store) ErasureTombstones(ctx context.Context, all bool) ([]storage.ErasureTombstone, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, jid_hash, stable_hash, job, created, COALESCE(reinstated, 0), reinstated_by
		FROM erasure_tombstones WHERE $1 OR reinstated IS NULL ORDER BY id`, all)
	if err != nil {
		return nil, fmt.Errorf("sqlite: erasure tombstones: %w", err)
	}
	defer rows.Close()
	var out []storage.ErasureTombstone
	for rows.Next() {
		var (
			t                   storage.ErasureTombstone
			created, reinstated int64
		)
		if err := rows.Scan(&t.ID, &t.JIDHash, &t.StableHash, &t.Job, &created, &reinstated, &t.ReinstatedBy); err != nil {
			return nil, fmt.Errorf("sqlite: erasure tombstones: %w", err)
		}
		t.Created = fromMicros(created)
		if reinstated != 0 {
			t.Reinstated = fromMicros(reinstated)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: erasure tombstones: %w", err)
	}
	return out, nil
}

// ReinstateErasureTombstones marks the active tombstones of jidHash
// reinstated.
func (s *Store) ReinstateErasureTombstones(ctx context.Context, jidHash []byte, by string, at time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE erasure_tombstones SET reinstated = $1, reinstated_by = $2
			WHERE jid_hash = $3 AND reinstated IS NULL`, micros(at), by, nonNil(jidHash))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: reinstate erasure tombstones: %w", err)
	}
	return int(n), nil
}

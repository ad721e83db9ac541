package postgres

// Legal holds, restrictions and the erasure and export helpers of
// storage.GDPRStore, in a migration track of their own ("gdpr",
// migrations_gdpr/). PostgreSQL keeps deleted rows in its heap files until
// VACUUM and in its WAL until the segment is recycled: CompactAfterErasure
// vacuums the tables that held erased rows; the WAL (and any base backup or
// WAL archive) still holds them, sealed, with their keys shredded.

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	err := s.pool.QueryRow(ctx, `INSERT INTO legal_holds (subject, case_ref, reason, created_by, created)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, h.Subject, h.Case, h.Reason, h.By, micros(h.Created)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("postgres: create legal hold: %w", err)
	}
	return id, nil
}

// ReleaseLegalHold releases an active hold.
func (s *Store) ReleaseLegalHold(ctx context.Context, id int64, by string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE legal_holds SET released = $1, released_by = $2
		WHERE id = $3 AND released IS NULL`, micros(at), by, id)
	if err != nil {
		return fmt.Errorf("postgres: release legal hold: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: release legal hold: %w", storage.ErrNotFound)
	}
	return nil
}

// LegalHolds lists holds by ID.
func (s *Store) LegalHolds(ctx context.Context, subject string, all bool) ([]storage.LegalHold, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, subject, case_ref, reason, created_by, created,
		COALESCE(released, 0), released_by FROM legal_holds
		WHERE ($1 = '' OR subject = $1) AND ($2 OR released IS NULL) ORDER BY id`, subject, all)
	if err != nil {
		return nil, fmt.Errorf("postgres: legal holds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.LegalHold, error) {
		var (
			h                 storage.LegalHold
			created, released int64
		)
		err := r.Scan(&h.ID, &h.Subject, &h.Case, &h.Reason, &h.By, &created, &released, &h.ReleasedBy)
		h.Created = fromMicros(created)
		if released != 0 {
			h.Released = fromMicros(released)
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: legal holds: %w", err)
	}
	return out, nil
}

// PutRestriction inserts or replaces a restriction.
func (s *Store) PutRestriction(ctx context.Context, r storage.Restriction) error {
	var until int64
	if !r.Until.IsZero() {
		until = micros(r.Until)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO restrictions (subject, category, until_at, case_ref, reason, created)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subject, category) DO UPDATE SET
		until_at = excluded.until_at, case_ref = excluded.case_ref, reason = excluded.reason, created = excluded.created`,
		r.Subject, r.Category, until, r.Case, r.Reason, micros(r.Created))
	if err != nil {
		return fmt.Errorf("postgres: put restriction: %w", err)
	}
	return nil
}

// Restrictions lists restrictions by subject and category.
func (s *Store) Restrictions(ctx context.Context, subject string) ([]storage.Restriction, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject, category, until_at, case_ref, reason, created
		FROM restrictions WHERE ($1 = '' OR subject = $1) ORDER BY subject, category`, subject)
	if err != nil {
		return nil, fmt.Errorf("postgres: restrictions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Restriction, error) {
		var (
			r              storage.Restriction
			until, created int64
		)
		err := row.Scan(&r.Subject, &r.Category, &until, &r.Case, &r.Reason, &created)
		if until != 0 {
			r.Until = archiveTime(until)
		}
		r.Created = fromMicros(created)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: restrictions: %w", err)
	}
	return out, nil
}

func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// PrivateXMLKeys lists owner's private XML keys.
func (s *Store) PrivateXMLKeys(ctx context.Context, owner string) ([]string, error) {
	out, err := s.strings(ctx, `SELECT key FROM private_xml WHERE owner = $1 ORDER BY key COLLATE "C"`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: private xml keys: %w", err)
	}
	return out, nil
}

// RosterReferences lists the rosters and pending requests that name contact.
func (s *Store) RosterReferences(ctx context.Context, contact string) (items, requests []string, err error) {
	if items, err = s.strings(ctx, `SELECT owner FROM roster_items WHERE contact = $1 ORDER BY owner COLLATE "C"`, contact); err != nil {
		return nil, nil, fmt.Errorf("postgres: roster references: %w", err)
	}
	if requests, err = s.strings(ctx, `SELECT owner FROM subscription_requests WHERE from_jid = $1 ORDER BY owner COLLATE "C"`, contact); err != nil {
		return nil, nil, fmt.Errorf("postgres: roster references: %w", err)
	}
	return items, requests, nil
}

// ArchiveKeysOf returns every data key of owner, retired ones included.
func (s *Store) ArchiveKeysOf(ctx context.Context, owner string) ([]storage.ArchiveKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveKeyColumns+` FROM archive_keys WHERE owner = $1 ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys of owner: %w", err)
	}
	keys, err := scanArchiveKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: archive keys of owner: %w", err)
	}
	return keys, nil
}

// RetireArchiveKeys retires owner's live data keys.
func (s *Store) RetireArchiveKeys(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE archive_keys SET retired = true WHERE owner = $1 AND NOT retired`, owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: retire archive keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ShredArchiveKeys deletes owner's data keys with these IDs.
func (s *Store) ShredArchiveKeys(ctx context.Context, owner string, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM archive_keys WHERE owner = $1 AND id = ANY($2)`, owner, ids)
	if err != nil {
		return 0, fmt.Errorf("postgres: shred archive keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteUnkeyedArchive deletes up to limit messages whose key is gone.
func (s *Store) DeleteUnkeyedArchive(ctx context.Context, owner string, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM archive_messages WHERE (owner, id) IN (
		SELECT m.owner, m.id FROM archive_messages m WHERE m.owner = $1
		AND NOT EXISTS (SELECT 1 FROM archive_keys k WHERE k.id = m.key_id) LIMIT $2)`, owner, limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete unkeyed archive: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// RestrictArchive marks owner's archived messages restricted (Art. 18).
func (s *Store) RestrictArchive(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE archive_messages SET restricted = true WHERE owner = $1 AND NOT restricted`, owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: restrict archive: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteArchivePrefs removes owner's archiving preferences.
func (s *Store) DeleteArchivePrefs(ctx context.Context, owner string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM archive_prefs WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("postgres: delete archive prefs: %w", err)
	}
	return nil
}

// LDAPStableIDsOf returns the stable ids linked to jid.
func (s *Store) LDAPStableIDsOf(ctx context.Context, jid string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT stable_id FROM ldap_links WHERE jid = $1 ORDER BY stable_id`, jid)
	if err != nil {
		return nil, fmt.Errorf("postgres: ldap stable ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("postgres: ldap stable ids: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: ldap stable ids: %w", err)
	}
	return out, nil
}

// DeleteLDAPLinksOf removes jid's directory links and managed roster items.
func (s *Store) DeleteLDAPLinksOf(ctx context.Context, jid string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM ldap_links WHERE jid = $1`, jid)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM ldap_roster WHERE owner = $1 OR contact = $1`, jid)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete ldap links: %w", err)
	}
	return int(n), nil
}

// EraseAccount deletes the account; CompactAfterErasure removes the dead
// rows from the tables.
func (s *Store) EraseAccount(ctx context.Context, jid string) error { return s.DeleteAccount(ctx, jid) }

// CompactAfterErasure rewrites the small tables that held erased rows
// (VACUUM FULL: plain VACUUM leaves the old bytes in the pages' free
// space) and vacuums the archive's messages, which are sealed and too
// large to rewrite under an exclusive lock.
func (s *Store) CompactAfterErasure(ctx context.Context) error {
	for _, t := range []string{"FULL archive_keys", "archive_messages", "FULL offline_messages", "FULL vcards",
		"FULL private_xml", "FULL roster_items", "FULL subscription_requests", "FULL pep_items", "FULL pep_nodes",
		"FULL ldap_links", "FULL last_activity", "FULL blocklist", "FULL fast_tokens"} {
		if _, err := s.pool.Exec(ctx, `VACUUM `+t); err != nil {
			return fmt.Errorf("postgres: vacuum %s: %w", t, err)
		}
	}
	return nil
}

// PutErasureTombstone stores a tombstone unless an active one has the same
// hashes.
func (s *Store) PutErasureTombstone(ctx context.Context, t storage.ErasureTombstone) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO erasure_tombstones (jid_hash, stable_hash, job, created)
		SELECT $1::bytea, $2::bytea, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM erasure_tombstones
		WHERE jid_hash = $1::bytea AND stable_hash = $2::bytea AND reinstated IS NULL)`,
		nonNil(t.JIDHash), nonNil(t.StableHash), t.Job, micros(t.Created))
	if err != nil {
		return fmt.Errorf("postgres: put erasure tombstone: %w", err)
	}
	return nil
}

// ErasureTombstones lists tombstones by ID.
func (s *Store) ErasureTombstones(ctx context.Context, all bool) ([]storage.ErasureTombstone, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, jid_hash, stable_hash, job, created, COALESCE(reinstated, 0), reinstated_by
		FROM erasure_tombstones WHERE $1 OR reinstated IS NULL ORDER BY id`, all)
	if err != nil {
		return nil, fmt.Errorf("postgres: erasure tombstones: %w", err)
	}
	defer rows.Close()
	var out []storage.ErasureTombstone
	for rows.Next() {
		var (
			t                   storage.ErasureTombstone
			created, reinstated int64
		)
		if err := rows.Scan(&t.ID, &t.JIDHash, &t.StableHash, &t.Job, &created, &reinstated, &t.ReinstatedBy); err != nil {
			return nil, fmt.Errorf("postgres: erasure tombstones: %w", err)
		}
		t.Created = fromMicros(created)
		if reinstated != 0 {
			t.Reinstated = fromMicros(reinstated)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: erasure tombstones: %w", err)
	}
	return out, nil
}

// ReinstateErasureTombstones marks the active tombstones of jidHash
// reinstated.
func (s *Store) ReinstateErasureTombstones(ctx context.Context, jidHash []byte, by string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE erasure_tombstones SET reinstated = $1, reinstated_by = $2
		WHERE jid_hash = $3 AND reinstated IS NULL`, micros(at), by, nonNil(jidHash))
	if err != nil {
		return 0, fmt.Errorf("postgres: reinstate erasure tombstones: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

package postgres

// Directory sync state (storage.LDAPState), in a migration track of its own
// ("ldap", migrations_ldap/). Batches are one transaction; the lease is one
// INSERT ... ON CONFLICT statement, atomic across every server on the
// database. No advisory lock is taken here.

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_ldap/*.sql
var ldapFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "ldap", files: ldapFiles, dir: "migrations_ldap"})
}

var _ storage.LDAPState = (*Store)(nil)

const ldapLinkColumns = `stable_id, jid, dn, attrs, disabled, gone_since, updated`

func scanLDAPLink(row pgx.Row) (storage.LDAPLink, error) {
	var (
		l       storage.LDAPLink
		gone    *int64
		updated int64
	)
	if err := row.Scan(&l.StableID, &l.JID, &l.DN, &l.Attrs, &l.Disabled, &gone, &updated); err != nil {
		return l, err
	}
	if gone != nil {
		l.GoneSince = fromMicros(*gone)
	}
	l.Updated = fromMicros(updated)
	return l, nil
}

// LDAPLinks returns every link of source ordered by stable id.
func (s *Store) LDAPLinks(ctx context.Context, source string) ([]storage.LDAPLink, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+ldapLinkColumns+` FROM ldap_links
		WHERE source = $1 ORDER BY stable_id`, source)
	if err != nil {
		return nil, fmt.Errorf("postgres: ldap links: %w", err)
	}
	defer rows.Close()
	var links []storage.LDAPLink
	for rows.Next() {
		l, err := scanLDAPLink(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: ldap links: %w", err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: ldap links: %w", err)
	}
	return links, nil
}

// LDAPLinkByJID returns the link of an account.
func (s *Store) LDAPLinkByJID(ctx context.Context, source, jid string) (storage.LDAPLink, error) {
	l, err := scanLDAPLink(s.pool.QueryRow(ctx, `SELECT `+ldapLinkColumns+` FROM ldap_links
		WHERE source = $1 AND jid = $2`, source, jid))
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.LDAPLink{}, fmt.Errorf("postgres: ldap link: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.LDAPLink{}, fmt.Errorf("postgres: ldap link: %w", err)
	}
	return l, nil
}

// PutLDAPLinks upserts links by stable id in one transaction. A JID linked
// to another stable id is refused with ErrExists, whether the check finds
// it or, under a concurrent writer, the unique index does.
func (s *Store) PutLDAPLinks(ctx context.Context, source string, links []storage.LDAPLink) error {
	now := micros(time.Now())
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, l := range links {
			var other string
			err := tx.QueryRow(ctx, `SELECT stable_id FROM ldap_links
				WHERE source = $1 AND jid = $2 AND stable_id <> $3`, source, l.JID, l.StableID).Scan(&other)
			if err == nil {
				return fmt.Errorf("%s is linked to %s: %w", l.JID, other, storage.ErrExists)
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			var gone *int64
			if !l.GoneSince.IsZero() {
				g := micros(l.GoneSince)
				gone = &g
			}
			if _, err := tx.Exec(ctx, `INSERT INTO ldap_links
				(source, stable_id, jid, dn, attrs, disabled, gone_since, updated)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (source, stable_id) DO UPDATE SET jid = excluded.jid, dn = excluded.dn,
				attrs = excluded.attrs, disabled = excluded.disabled, gone_since = excluded.gone_since,
				updated = excluded.updated`,
				source, l.StableID, l.JID, l.DN, nonNil(l.Attrs), l.Disabled, gone, now); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "23505" {
					return fmt.Errorf("%s is linked to another entry: %w", l.JID, storage.ErrExists)
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put ldap links: %w", err)
	}
	return nil
}

// DeleteLDAPLink removes a link.
func (s *Store) DeleteLDAPLink(ctx context.Context, source, stableID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM ldap_links WHERE source = $1 AND stable_id = $2`, source, stableID); err != nil {
		return fmt.Errorf("postgres: delete ldap link: %w", err)
	}
	return nil
}

// LDAPGroups returns every group of source ordered by stable id.
func (s *Store) LDAPGroups(ctx context.Context, source string) ([]storage.LDAPGroup, error) {
	rows, err := s.pool.Query(ctx, `SELECT stable_id, dn, name, members, attrs FROM ldap_groups
		WHERE source = $1 ORDER BY stable_id`, source)
	if err != nil {
		return nil, fmt.Errorf("postgres: ldap groups: %w", err)
	}
	defer rows.Close()
	var groups []storage.LDAPGroup
	for rows.Next() {
		var g storage.LDAPGroup
		if err := rows.Scan(&g.StableID, &g.DN, &g.Name, &g.Members, &g.Attrs); err != nil {
			return nil, fmt.Errorf("postgres: ldap groups: %w", err)
		}
		g.Members = nilIfEmpty(g.Members)
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: ldap groups: %w", err)
	}
	return groups, nil
}

// PutLDAPGroups upserts groups by stable id in one transaction.
func (s *Store) PutLDAPGroups(ctx context.Context, source string, groups []storage.LDAPGroup) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, g := range groups {
			members := g.Members
			if members == nil {
				members = []string{}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO ldap_groups (source, stable_id, dn, name, members, attrs)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (source, stable_id) DO UPDATE SET dn = excluded.dn, name = excluded.name,
				members = excluded.members, attrs = excluded.attrs`,
				source, g.StableID, g.DN, g.Name, members, nonNil(g.Attrs)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put ldap groups: %w", err)
	}
	return nil
}

// DeleteLDAPGroup removes a group.
func (s *Store) DeleteLDAPGroup(ctx context.Context, source, stableID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM ldap_groups WHERE source = $1 AND stable_id = $2`, source, stableID); err != nil {
		return fmt.Errorf("postgres: delete ldap group: %w", err)
	}
	return nil
}

// LDAPRosterItems returns the managed items of owner ordered by contact.
func (s *Store) LDAPRosterItems(ctx context.Context, source, owner string) ([]storage.LDAPRosterItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT contact, name, groups FROM ldap_roster
		WHERE source = $1 AND owner = $2 ORDER BY contact`, source, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: ldap roster items: %w", err)
	}
	defer rows.Close()
	var items []storage.LDAPRosterItem
	for rows.Next() {
		var it storage.LDAPRosterItem
		if err := rows.Scan(&it.Contact, &it.Name, &it.Groups); err != nil {
			return nil, fmt.Errorf("postgres: ldap roster items: %w", err)
		}
		it.Groups = nilIfEmpty(it.Groups)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: ldap roster items: %w", err)
	}
	return items, nil
}

// AllLDAPRosterItems returns the managed items of every owner.
func (s *Store) AllLDAPRosterItems(ctx context.Context, source string) (map[string][]storage.LDAPRosterItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT owner, contact, name, groups FROM ldap_roster
		WHERE source = $1 ORDER BY owner, contact`, source)
	if err != nil {
		return nil, fmt.Errorf("postgres: all ldap roster items: %w", err)
	}
	defer rows.Close()
	all := map[string][]storage.LDAPRosterItem{}
	for rows.Next() {
		var (
			owner string
			it    storage.LDAPRosterItem
		)
		if err := rows.Scan(&owner, &it.Contact, &it.Name, &it.Groups); err != nil {
			return nil, fmt.Errorf("postgres: all ldap roster items: %w", err)
		}
		it.Groups = nilIfEmpty(it.Groups)
		all[owner] = append(all[owner], it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: all ldap roster items: %w", err)
	}
	return all, nil
}

// PutLDAPRosterItems upserts managed items of owner in one transaction
// (one round trip: a batch).
func (s *Store) PutLDAPRosterItems(ctx context.Context, source, owner string, items []storage.LDAPRosterItem) error {
	if len(items) == 0 {
		return nil
	}
	var b pgx.Batch
	for _, item := range items {
		groups := item.Groups
		if groups == nil {
			groups = []string{}
		}
		b.Queue(`INSERT INTO ldap_roster (source, owner, contact, name, groups)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (source, owner, contact) DO UPDATE SET name = excluded.name, groups = excluded.groups`,
			source, owner, item.Contact, item.Name, groups)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, &b).Close() })
	if err != nil {
		return fmt.Errorf("postgres: put ldap roster items: %w", err)
	}
	return nil
}

// DeleteLDAPRosterItems removes managed items of owner in one statement.
func (s *Store) DeleteLDAPRosterItems(ctx context.Context, source, owner string, contacts []string) error {
	if len(contacts) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM ldap_roster WHERE source = $1 AND owner = $2 AND contact = ANY($3)`,
		source, owner, contacts); err != nil {
		return fmt.Errorf("postgres: delete ldap roster items: %w", err)
	}
	return nil
}

// LDAPMarks returns the marks of source.
func (s *Store) LDAPMarks(ctx context.Context, source string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, value FROM ldap_marks WHERE source = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("postgres: ldap marks: %w", err)
	}
	defer rows.Close()
	marks := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("postgres: ldap marks: %w", err)
		}
		marks[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: ldap marks: %w", err)
	}
	return marks, nil
}

// SetLDAPMarks sets (or, for empty values, deletes) marks in one
// transaction.
func (s *Store) SetLDAPMarks(ctx context.Context, source string, marks map[string]string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for k, v := range marks {
			var err error
			if v == "" {
				_, err = tx.Exec(ctx, `DELETE FROM ldap_marks WHERE source = $1 AND name = $2`, source, k)
			} else {
				_, err = tx.Exec(ctx, `INSERT INTO ldap_marks (source, name, value) VALUES ($1, $2, $3)
					ON CONFLICT (source, name) DO UPDATE SET value = excluded.value`, source, k, v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: set ldap marks: %w", err)
	}
	return nil
}

// AcquireLDAPLease takes or renews the lease in one statement: the row is
// written only if it is new, already holder's, or expired.
func (s *Store) AcquireLDAPLease(ctx context.Context, source, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO ldap_leases (source, holder, expires) VALUES ($1, $2, $3)
		ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE ldap_leases.holder = excluded.holder OR ldap_leases.expires <= $4
		RETURNING holder`, source, holder, micros(now.Add(ttl)), micros(now)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: acquire ldap lease: %w", err)
	}
	return got == holder, nil
}

// ReleaseLDAPLease gives the lease up if holder has it.
func (s *Store) ReleaseLDAPLease(ctx context.Context, source, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM ldap_leases WHERE source = $1 AND holder = $2`, source, holder); err != nil {
		return fmt.Errorf("postgres: release ldap lease: %w", err)
	}
	return nil
}

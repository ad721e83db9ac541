package sqlite

// Directory sync state (storage.LDAPState), in a migration track of its own
// ("ldap", migrations_ldap/). Every write goes through the single writer
// connection; batches are one transaction.

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_ldap/*.sql
var ldapFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "ldap", files: ldapFiles, dir: "migrations_ldap"})
}

var _ storage.LDAPState = (*Store)(nil)

const ldapLinkColumns = `stable_id, jid, dn, attrs, disabled, gone_since, updated`

func scanLDAPLink(sc interface{ Scan(...any) error }) (storage.LDAPLink, error) {
	var (
		l       storage.LDAPLink
		gone    sql.NullInt64
		updated int64
	)
	if err := sc.Scan(&l.StableID, &l.JID, &l.DN, &l.Attrs, &l.Disabled, &gone, &updated); err != nil {
		return l, err
	}
	if gone.Valid {
		l.GoneSince = fromMicros(gone.Int64)
	}
	l.Updated = fromMicros(updated)
	return l, nil
}

// LDAPLinks returns every link of source ordered by stable id.
func (s *Store) LDAPLinks(ctx context.Context, source string) ([]storage.LDAPLink, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+ldapLinkColumns+` FROM ldap_links
		WHERE source = $1 ORDER BY stable_id`, source)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ldap links: %w", err)
	}
	defer rows.Close()
	var links []storage.LDAPLink
	for rows.Next() {
		l, err := scanLDAPLink(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: ldap links: %w", err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ldap links: %w", err)
	}
	return links, nil
}

// LDAPLinkByJID returns the link of an account.
func (s *Store) LDAPLinkByJID(ctx context.Context, source, jid string) (storage.LDAPLink, error) {
	l, err := scanLDAPLink(s.r.QueryRowContext(ctx, `SELECT `+ldapLinkColumns+` FROM ldap_links
		WHERE source = $1 AND jid = $2`, source, jid))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.LDAPLink{}, fmt.Errorf("sqlite: ldap link: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.LDAPLink{}, fmt.Errorf("sqlite: ldap link: %w", err)
	}
	return l, nil
}

// PutLDAPLinks upserts links by stable id in one transaction.
func (s *Store) PutLDAPLinks(ctx context.Context, source string, links []storage.LDAPLink) error {
	now := micros(time.Now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, l := range links {
			var other string
			err := tx.QueryRowContext(ctx, `SELECT stable_id FROM ldap_links
				WHERE source = $1 AND jid = $2 AND stable_id <> $3`, source, l.JID, l.StableID).Scan(&other)
			if err == nil {
				return fmt.Errorf("%s is linked to %s: %w", l.JID, other, storage.ErrExists)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			var gone sql.NullInt64
			if !l.GoneSince.IsZero() {
				gone = sql.NullInt64{Int64: micros(l.GoneSince), Valid: true}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO ldap_links
				(source, stable_id, jid, dn, attrs, disabled, gone_since, updated)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (source, stable_id) DO UPDATE SET jid = excluded.jid, dn = excluded.dn,
				attrs = excluded.attrs, disabled = excluded.disabled, gone_since = excluded.gone_since,
				updated = excluded.updated`,
				source, l.StableID, l.JID, l.DN, nonNil(l.Attrs), l.Disabled, gone, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put ldap links: %w", err)
	}
	return nil
}

// DeleteLDAPLink removes a link.
func (s *Store) DeleteLDAPLink(ctx context.Context, source, stableID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM ldap_links WHERE source = $1 AND stable_id = $2`, source, stableID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete ldap link: %w", err)
	}
	return nil
}

// LDAPGroups returns every group of source ordered by stable id.
func (s *Store) LDAPGroups(ctx context.Context, source string) ([]storage.LDAPGroup, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT stable_id, dn, name, members, attrs FROM ldap_groups
		WHERE source = $1 ORDER BY stable_id`, source)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ldap groups: %w", err)
	}
	defer rows.Close()
	var groups []storage.LDAPGroup
	for rows.Next() {
		var (
			g       storage.LDAPGroup
			members string
		)
		if err := rows.Scan(&g.StableID, &g.DN, &g.Name, &members, &g.Attrs); err != nil {
			return nil, fmt.Errorf("sqlite: ldap groups: %w", err)
		}
		if g.Members, err = ldapDecodeList(members); err != nil {
			return nil, fmt.Errorf("sqlite: ldap groups: %w", err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ldap groups: %w", err)
	}
	return groups, nil
}

// PutLDAPGroups upserts groups by stable id in one transaction.
func (s *Store) PutLDAPGroups(ctx context.Context, source string, groups []storage.LDAPGroup) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, g := range groups {
			members, err := ldapEncodeList(g.Members)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO ldap_groups (source, stable_id, dn, name, members, attrs)
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
		return fmt.Errorf("sqlite: put ldap groups: %w", err)
	}
	return nil
}

// DeleteLDAPGroup removes a group.
func (s *Store) DeleteLDAPGroup(ctx context.Context, source, stableID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM ldap_groups WHERE source = $1 AND stable_id = $2`, source, stableID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete ldap group: %w", err)
	}
	return nil
}

// LDAPRosterItems returns the managed items of owner ordered by contact.
func (s *Store) LDAPRosterItems(ctx context.Context, source, owner string) ([]storage.LDAPRosterItem, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT contact, name, groups FROM ldap_roster
		WHERE source = $1 AND owner = $2 ORDER BY contact`, source, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ldap roster items: %w", err)
	}
	defer rows.Close()
	var items []storage.LDAPRosterItem
	for rows.Next() {
		var (
			it     storage.LDAPRosterItem
			groups string
		)
		if err := rows.Scan(&it.Contact, &it.Name, &groups); err != nil {
			return nil, fmt.Errorf("sqlite: ldap roster items: %w", err)
		}
		if it.Groups, err = ldapDecodeList(groups); err != nil {
			return nil, fmt.Errorf("sqlite: ldap roster items: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ldap roster items: %w", err)
	}
	return items, nil
}

// AllLDAPRosterItems returns the managed items of every owner.
func (s *Store) AllLDAPRosterItems(ctx context.Context, source string) (map[string][]storage.LDAPRosterItem, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT owner, contact, name, groups FROM ldap_roster
		WHERE source = $1 ORDER BY owner, contact`, source)
	if err != nil {
		return nil, fmt.Errorf("sqlite: all ldap roster items: %w", err)
	}
	defer rows.Close()
	all := map[string][]storage.LDAPRosterItem{}
	for rows.Next() {
		var (
			owner, groups string
			it            storage.LDAPRosterItem
		)
		if err := rows.Scan(&owner, &it.Contact, &it.Name, &groups); err != nil {
			return nil, fmt.Errorf("sqlite: all ldap roster items: %w", err)
		}
		if it.Groups, err = ldapDecodeList(groups); err != nil {
			return nil, fmt.Errorf("sqlite: all ldap roster items: %w", err)
		}
		all[owner] = append(all[owner], it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: all ldap roster items: %w", err)
	}
	return all, nil
}

// PutLDAPRosterItems upserts managed items of owner in one transaction.
func (s *Store) PutLDAPRosterItems(ctx context.Context, source, owner string, items []storage.LDAPRosterItem) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, item := range items {
			groups, err := ldapEncodeList(item.Groups)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO ldap_roster (source, owner, contact, name, groups)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (source, owner, contact) DO UPDATE SET name = excluded.name, groups = excluded.groups`,
				source, owner, item.Contact, item.Name, groups); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put ldap roster items: %w", err)
	}
	return nil
}

// DeleteLDAPRosterItems removes managed items of owner in one transaction.
func (s *Store) DeleteLDAPRosterItems(ctx context.Context, source, owner string, contacts []string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, c := range contacts {
			if _, err := tx.ExecContext(ctx, `DELETE FROM ldap_roster WHERE source = $1 AND owner = $2 AND contact = $3`,
				source, owner, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete ldap roster items: %w", err)
	}
	return nil
}

// LDAPMarks returns the marks of source.
func (s *Store) LDAPMarks(ctx context.Context, source string) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, value FROM ldap_marks WHERE source = $1`, source)
	if err != nil {
		return nil, fmt.Errorf("sqlite: ldap marks: %w", err)
	}
	defer rows.Close()
	marks := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("sqlite: ldap marks: %w", err)
		}
		marks[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: ldap marks: %w", err)
	}
	return marks, nil
}

// SetLDAPMarks sets (or, for empty values, deletes) marks in one
// transaction.
func (s *Store) SetLDAPMarks(ctx context.Context, source string, marks map[string]string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for k, v := range marks {
			var err error
			if v == "" {
				_, err = tx.ExecContext(ctx, `DELETE FROM ldap_marks WHERE source = $1 AND name = $2`, source, k)
			} else {
				_, err = tx.ExecContext(ctx, `INSERT INTO ldap_marks (source, name, value) VALUES ($1, $2, $3)
					ON CONFLICT (source, name) DO UPDATE SET value = excluded.value`, source, k, v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set ldap marks: %w", err)
	}
	return nil
}

// AcquireLDAPLease takes or renews the lease of source. The check and the
// write are one BEGIN IMMEDIATE transaction, so two processes cannot both
// take it.
func (s *Store) AcquireLDAPLease(ctx context.Context, source, holder string, ttl time.Duration) (bool, error) {
	now := time.Now()
	got := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var (
			cur     string
			expires int64
		)
		err := tx.QueryRowContext(ctx, `SELECT holder, expires FROM ldap_leases WHERE source = $1`, source).Scan(&cur, &expires)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur != holder && expires > micros(now):
			return nil // held by someone else
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ldap_leases (source, holder, expires) VALUES ($1, $2, $3)
			ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, expires = excluded.expires`,
			source, holder, micros(now.Add(ttl))); err != nil {
			return err
		}
		got = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire ldap lease: %w", err)
	}
	return got, nil
}

// ReleaseLDAPLease gives the lease up if holder has it.
func (s *Store) ReleaseLDAPLease(ctx context.Context, source, holder string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM ldap_leases WHERE source = $1 AND holder = $2`, source, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release ldap lease: %w", err)
	}
	return nil
}

// ldapEncodeList stores a string list as a JSON array ("[]" for none).
func ldapEncodeList(list []string) (string, error) {
	if len(list) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(list)
	return string(b), err
}

// ldapDecodeList reads it back; an empty array is nil.
func ldapDecodeList(s string) ([]string, error) {
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

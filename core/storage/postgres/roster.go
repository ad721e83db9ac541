package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

// RosterItems returns the owner's items ordered by contact, and the roster
// version, read in one statement (one snapshot), so the version always
// describes exactly these items.
func (s *Store) RosterItems(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT COALESCE(v.version, 0),
		i.contact, i.name, i.subscription, i.ask_out, i.groups
		FROM (SELECT 1) AS one
		LEFT JOIN roster_versions AS v ON v.owner = $1
		LEFT JOIN roster_items AS i ON i.owner = $1
		ORDER BY i.contact`, owner)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: roster items: %w", err)
	}
	defer rows.Close()
	var (
		items   []storage.RosterItem
		version int64
	)
	for rows.Next() {
		var (
			contact, name, sub *string
			askOut             *bool
			groups             []string
		)
		if err := rows.Scan(&version, &contact, &name, &sub, &askOut, &groups); err != nil {
			return nil, 0, fmt.Errorf("postgres: roster items: %w", err)
		}
		if contact == nil {
			continue // no items: the one row carries only the version
		}
		items = append(items, storage.RosterItem{
			Contact:      *contact,
			Name:         *name,
			Subscription: storage.Subscription(*sub),
			AskOut:       *askOut,
			Groups:       nilIfEmpty(groups),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("postgres: roster items: %w", err)
	}
	return items, version, nil
}

// RosterItem returns one item, ErrNotFound if contact is not in the roster.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	item := storage.RosterItem{Contact: contact}
	var sub string
	err := s.pool.QueryRow(ctx, `SELECT name, subscription, ask_out, groups
		FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact).
		Scan(&item.Name, &sub, &item.AskOut, &item.Groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item: %w", err)
	}
	item.Subscription = storage.Subscription(sub)
	item.Groups = nilIfEmpty(item.Groups)
	return item, nil
}

// PutRosterItem inserts or replaces an item (an empty Subscription means
// none) and returns the new roster version.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (int64, error) {
	if item.Subscription == "" {
		item.Subscription = storage.SubNone
	}
	groups := item.Groups
	if groups == nil {
		groups = []string{} // the column is NOT NULL
	}
	var version int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The version row first: its row lock orders concurrent writers
		// of one roster.
		var err error
		if version, err = bumpRosterVersion(ctx, tx, owner); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO roster_items
			(owner, contact, name, subscription, ask_out, groups) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name,
				subscription = excluded.subscription, ask_out = excluded.ask_out, groups = excluded.groups`,
			owner, item.Contact, item.Name, string(item.Subscription), item.AskOut, groups)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: put roster item: %w", err)
	}
	return version, nil
}

// DeleteRosterItem removes an item and returns the new roster version;
// ErrNotFound (and no new version) if it was not there.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (int64, error) {
	var version int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if version, err = bumpRosterVersion(ctx, tx, owner); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound // rolls the version back
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete roster item: %w", err)
	}
	return version, nil
}

// RosterVersion returns the owner's roster version, 0 if none.
func (s *Store) RosterVersion(ctx context.Context, owner string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM roster_versions WHERE owner = $1`, owner).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: roster version: %w", err)
	}
	return v, nil
}

func bumpRosterVersion(ctx context.Context, tx pgx.Tx, owner string) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `INSERT INTO roster_versions (owner, version) VALUES ($1, 1)
		ON CONFLICT (owner) DO UPDATE SET version = roster_versions.version + 1
		RETURNING version`, owner).Scan(&v)
	return v, err
}

// PutSubscriptionRequest records or replaces a pending inbound request; a
// zero At means now.
func (s *Store) PutSubscriptionRequest(ctx context.Context, owner string, req storage.SubscriptionRequest) error {
	if req.At.IsZero() {
		req.At = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO subscription_requests (owner, from_jid, stanza, at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner, from_jid) DO UPDATE SET stanza = excluded.stanza, at = excluded.at`,
		owner, req.From, nonNil(req.Stanza), micros(req.At))
	if err != nil {
		return fmt.Errorf("postgres: put subscription request: %w", err)
	}
	return nil
}

// DeleteSubscriptionRequest removes a pending request; no error when absent.
func (s *Store) DeleteSubscriptionRequest(ctx context.Context, owner, from string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM subscription_requests WHERE owner = $1 AND from_jid = $2`, owner, from)
	if err != nil {
		return fmt.Errorf("postgres: delete subscription request: %w", err)
	}
	return nil
}

// SubscriptionRequests lists pending requests, oldest first (ties by JID).
func (s *Store) SubscriptionRequests(ctx context.Context, owner string) ([]storage.SubscriptionRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT from_jid, stanza, at FROM subscription_requests
		WHERE owner = $1 ORDER BY at, from_jid`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: subscription requests: %w", err)
	}
	defer rows.Close()
	var reqs []storage.SubscriptionRequest
	for rows.Next() {
		var (
			r  storage.SubscriptionRequest
			at int64
		)
		if err := rows.Scan(&r.From, &r.Stanza, &at); err != nil {
			return nil, fmt.Errorf("postgres: subscription requests: %w", err)
		}
		r.At = fromMicros(at)
		reqs = append(reqs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: subscription requests: %w", err)
	}
	return reqs, nil
}

// RosterWithRequests reads the roster (items and version, as RosterItems)
// and the pending subscription requests (as SubscriptionRequests) in one
// statement: the rows of both, told apart by the first column.
func (s *Store) RosterWithRequests(ctx context.Context, owner string) ([]storage.RosterItem, int64, []storage.SubscriptionRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT 0 AS k, COALESCE(v.version, 0),
		i.contact, i.name, i.subscription, i.ask_out, i.groups, NULL::bytea, 0::bigint AS at
		FROM (SELECT 1) AS one
		LEFT JOIN roster_versions AS v ON v.owner = $1
		LEFT JOIN roster_items AS i ON i.owner = $1
		UNION ALL
		SELECT 1, 0, r.from_jid, NULL, NULL, NULL, NULL, r.stanza, r.at
		FROM subscription_requests AS r WHERE r.owner = $1
		ORDER BY 1, 9, 3`, owner)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("postgres: roster with requests: %w", err)
	}
	defer rows.Close()
	var (
		items   []storage.RosterItem
		reqs    []storage.SubscriptionRequest
		version int64
	)
	for rows.Next() {
		var (
			kind, ver          int64
			contact, name, sub *string
			askOut             *bool
			groups             []string
			stz                []byte
			at                 int64
		)
		if err := rows.Scan(&kind, &ver, &contact, &name, &sub, &askOut, &groups, &stz, &at); err != nil {
			return nil, 0, nil, fmt.Errorf("postgres: roster with requests: %w", err)
		}
		switch {
		case kind == 1:
			reqs = append(reqs, storage.SubscriptionRequest{From: *contact, Stanza: stz, At: fromMicros(at)})
		case contact == nil:
			version = ver // no items: the one row carries only the version
		default:
			version = ver
			items = append(items, storage.RosterItem{
				Contact:      *contact,
				Name:         *name,
				Subscription: storage.Subscription(*sub),
				AskOut:       *askOut,
				Groups:       nilIfEmpty(groups),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, nil, fmt.Errorf("postgres: roster with requests: %w", err)
	}
	return items, version, reqs, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"kontor.im/kontor/core/storage"
)

// VCard returns the owner's vCard, ErrNotFound if none was set.
func (s *Store) VCard(ctx context.Context, owner string) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM vcards WHERE owner = $1`, owner).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: vcard: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: vcard: %w", err)
	}
	return data, nil
}

// SetVCard replaces the owner's vCard; nil or empty deletes it.
func (s *Store) SetVCard(ctx context.Context, owner string, vcard []byte) error {
	var err error
	if len(vcard) == 0 {
		_, err = s.w.ExecContext(ctx, `DELETE FROM vcards WHERE owner = $1`, owner)
	} else {
		_, err = s.w.ExecContext(ctx, `INSERT INTO vcards (owner, data) VALUES ($1, $2)
			ON CONFLICT (owner) DO UPDATE SET data = excluded.data`, owner, vcard)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set vcard: %w", err)
	}
	return nil
}

// Private returns the element stored under key, ErrNotFound if none.
func (s *Store) Private(ctx context.Context, owner, key string) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM private_xml WHERE owner = $1 AND key = $2`,
		owner, key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: private xml: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: private xml: %w", err)
	}
	return data, nil
}

// SetPrivate replaces the element stored under key; nil or empty deletes it.
func (s *Store) SetPrivate(ctx context.Context, owner, key string, xml []byte) error {
	var err error
	if len(xml) == 0 {
		_, err = s.w.ExecContext(ctx, `DELETE FROM private_xml WHERE owner = $1 AND key = $2`, owner, key)
	} else {
		_, err = s.w.ExecContext(ctx, `INSERT INTO private_xml (owner, key, data) VALUES ($1, $2, $3)
			ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data`, owner, key, xml)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set private xml: %w", err)
	}
	return nil
}

// SetLastActivity records when the owner last logged out and with which
// status.
func (s *Store) SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO last_activity (owner, at, status) VALUES ($1, $2, $3)
		ON CONFLICT (owner) DO UPDATE SET at = excluded.at, status = excluded.status`,
		owner, micros(at), status)
	if err != nil {
		return fmt.Errorf("sqlite: set last activity: %w", err)
	}
	return nil
}

// LastActivity returns what SetLastActivity recorded, ErrNotFound if never.
func (s *Store) LastActivity(ctx context.Context, owner string) (time.Time, string, error) {
	var (
		at     int64
		status string
	)
	err := s.r.QueryRowContext(ctx, `SELECT at, status FROM last_activity WHERE owner = $1`, owner).Scan(&at, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", fmt.Errorf("sqlite: last activity: %w", storage.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("sqlite: last activity: %w", err)
	}
	return fromMicros(at), status, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/storage"
)

// VCard returns the owner's vCard, ErrNotFound if none was set.
func (s *Store) VCard(ctx context.Context, owner string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM vcards WHERE owner = $1`, owner).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: vcard: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: vcard: %w", err)
	}
	return data, nil
}

// SetVCard replaces the owner's vCard; nil or empty deletes it.
func (s *Store) SetVCard(ctx context.Context, owner string, vcard []byte) error {
	var err error
	if len(vcard) == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM vcards WHERE owner = $1`, owner)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO vcards (owner, data) VALUES ($1, $2)
			ON CONFLICT (owner) DO UPDATE SET data = excluded.data`, owner, vcard)
	}
	if err != nil {
		return fmt.Errorf("postgres: set vcard: %w", err)
	}
	return nil
}

// Private returns the element stored under key, ErrNotFound if none.
func (s *Store) Private(ctx context.Context, owner, key string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM private_xml WHERE owner = $1 AND key = $2`,
		owner, key).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: private xml: %w", storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: private xml: %w", err)
	}
	return data, nil
}

// SetPrivate replaces the element stored under key; nil or empty deletes it.
func (s *Store) SetPrivate(ctx context.Context, owner, key string, xml []byte) error {
	var err error
	if len(xml) == 0 {
		_, err = s.pool.Exec(ctx, `DELETE FROM private_xml WHERE owner = $1 AND key = $2`, owner, key)
	} else {
		_, err = s.pool.Exec(ctx, `INSERT INTO private_xml (owner, key, data) VALUES ($1, $2, $3)
			ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data`, owner, key, xml)
	}
	if err != nil {
		return fmt.Errorf("postgres: set private xml: %w", err)
	}
	return nil
}

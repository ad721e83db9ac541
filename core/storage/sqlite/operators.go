package sqlite

// Operators and access requests (storage.Operators), in a migration track
// of their own ("operators", migrations_operators/). Writes go through the
// single writer connection in BEGIN IMMEDIATE transactions, so the check
// and the mark of UseAccessRequest and VoteAccessRequest are atomic against
// every other writer, in this process and others.

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

//go:embed migrations_operators/*.sql
var operatorFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "operators", files: operatorFiles, dir: "migrations_operators"})
}

var _ storage.Operators = (*Store)(nil)

const operatorColumns = `id, display_name, roles, token_hash, disabled, created`

func encodeRoles(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	return string(b), err
}

func decodeRoles(s string) ([]string, error) {
	var roles []string
	if err := json.Unmarshal([]byte(s), &roles); err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		return nil, nil
	}
	return roles, nil
}

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanOperator(r rowScanner) (storage.Operator, error) {
	var (
		o       storage.Operator
		roles   string
		created int64
	)
	if err := r.Scan(&o.ID, &o.DisplayName, &roles, &o.TokenHash, &o.Disabled, &created); err != nil {
		return o, err
	}
	var err error
	o.Roles, err = decodeRoles(roles)
	o.Created = fromMicros(created)
	return o, err
}

func isUniqueViolation(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateOperator stores a new operator; a zero Created means now.
func (s *Store) CreateOperator(ctx context.Context, o storage.Operator) error {
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	roles, err := encodeRoles(o.Roles)
	if err != nil {
		return fmt.Errorf("sqlite: create operator: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO operators (`+operatorColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO NOTHING`, o.ID, o.DisplayName, roles, o.TokenHash, o.Disabled, micros(o.Created))
		if err != nil {
			if isUniqueViolation(err) {
				return storage.ErrExists
			}
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create operator: %w", err)
	}
	return nil
}

// CreateFirstOperator creates o while the table is empty. SQLite has one
// writer: the check and the insert in one write transaction cannot
// interleave with another's.
func (s *Store) CreateFirstOperator(ctx context.Context, o storage.Operator) error {
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	roles, err := encodeRoles(o.Roles)
	if err != nil {
		return fmt.Errorf("sqlite: create first operator: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO operators (`+operatorColumns+`)
			SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM operators)`,
			o.ID, o.DisplayName, roles, o.TokenHash, o.Disabled, micros(o.Created))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create first operator: %w", err)
	}
	return nil
}

// Operator returns one operator.
func (s *Store) Operator(ctx context.Context, id string) (storage.Operator, error) {
	o, err := scanOperator(s.r.QueryRowContext(ctx, `SELECT `+operatorColumns+` FROM operators WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Operator{}, fmt.Errorf("sqlite: operator: %w", err)
	}
	return o, nil
}

// OperatorByTokenHash finds an operator by token hash.
func (s *Store) OperatorByTokenHash(ctx context.Context, hash []byte) (storage.Operator, error) {
	if len(hash) == 0 {
		return storage.Operator{}, fmt.Errorf("sqlite: operator by token: %w", storage.ErrNotFound)
	}
	o, err := scanOperator(s.r.QueryRowContext(ctx, `SELECT `+operatorColumns+` FROM operators WHERE token_hash = $1`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Operator{}, fmt.Errorf("sqlite: operator by token: %w", err)
	}
	return o, nil
}

// ListOperators lists every operator ordered by ID.
func (s *Store) ListOperators(ctx context.Context) ([]storage.Operator, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list operators: %w", err)
	}
	defer rows.Close()
	var out []storage.Operator
	for rows.Next() {
		o, err := scanOperator(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list operators: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list operators: %w", err)
	}
	return out, nil
}

func (s *Store) updateOperator(ctx context.Context, what, query string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			if isUniqueViolation(err) {
				return storage.ErrExists
			}
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
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return nil
}

// SetOperatorDisabled disables or enables an operator.
func (s *Store) SetOperatorDisabled(ctx context.Context, id string, disabled bool) error {
	return s.updateOperator(ctx, "disable operator", `UPDATE operators SET disabled = $2 WHERE id = $1`, id, disabled)
}

// SetOperatorToken replaces an operator's token hash.
func (s *Store) SetOperatorToken(ctx context.Context, id string, hash []byte) error {
	if len(hash) == 0 {
		hash = nil
	}
	return s.updateOperator(ctx, "set operator token", `UPDATE operators SET token_hash = $2 WHERE id = $1`, id, hash)
}

// CreateAccessRequest stores a new request; a zero Created means now.
func (s *Store) CreateAccessRequest(ctx context.Context, r storage.AccessRequest) error {
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	var used any
	if !r.Used.IsZero() {
		used = micros(r.Used)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO access_requests
			(id, action, subject, case_number, purpose, requester, created, expires, used)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
			r.ID, r.Action, r.Subject, r.CaseNumber, r.Purpose, r.Requester, micros(r.Created), micros(r.Expires), used)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create access request: %w", err)
	}
	return nil
}

const requestColumns = `id, action, subject, case_number, purpose, requester, created, expires, used`

func scanRequest(r rowScanner) (storage.AccessRequest, error) {
	var (
		q                storage.AccessRequest
		created, expires int64
		used             sql.NullInt64
	)
	if err := r.Scan(&q.ID, &q.Action, &q.Subject, &q.CaseNumber, &q.Purpose, &q.Requester, &created, &expires, &used); err != nil {
		return q, err
	}
	q.Created, q.Expires = fromMicros(created), fromMicros(expires)
	if used.Valid {
		q.Used = fromMicros(used.Int64)
	}
	return q, nil
}

// votes reads the votes of the requests in reqs, in place.
func (s *Store) votes(ctx context.Context, reqs []storage.AccessRequest) error {
	for i := range reqs {
		rows, err := s.r.QueryContext(ctx, `SELECT by_id, roles, approve, comment, at FROM access_request_votes
			WHERE request_id = $1 ORDER BY at, by_id`, reqs[i].ID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				v     storage.RequestVote
				roles string
				at    int64
			)
			if err := rows.Scan(&v.By, &roles, &v.Approve, &v.Comment, &at); err != nil {
				rows.Close()
				return err
			}
			if v.Roles, err = decodeRoles(roles); err != nil {
				rows.Close()
				return err
			}
			v.At = fromMicros(at)
			reqs[i].Votes = append(reqs[i].Votes, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// AccessRequest returns one request with its votes.
func (s *Store) AccessRequest(ctx context.Context, id string) (storage.AccessRequest, error) {
	q, err := scanRequest(s.r.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err == nil {
		reqs := []storage.AccessRequest{q}
		err = s.votes(ctx, reqs)
		q = reqs[0]
	}
	if err != nil {
		return storage.AccessRequest{}, fmt.Errorf("sqlite: access request: %w", err)
	}
	return q, nil
}

// AccessRequests lists requests, newest first.
func (s *Store) AccessRequests(ctx context.Context, since time.Time, limit int) ([]storage.AccessRequest, error) {
	var from int64
	if !since.IsZero() {
		from = micros(since)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE created >= $1
		ORDER BY created DESC, id DESC LIMIT $2`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: access requests: %w", err)
	}
	var out []storage.AccessRequest
	for rows.Next() {
		q, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: access requests: %w", err)
		}
		out = append(out, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: access requests: %w", err)
	}
	if err := s.votes(ctx, out); err != nil {
		return nil, fmt.Errorf("sqlite: access requests: %w", err)
	}
	return out, nil
}

// VoteAccessRequest records one operator's answer.
func (s *Store) VoteAccessRequest(ctx context.Context, id string, v storage.RequestVote) error {
	if v.At.IsZero() {
		v.At = time.Now()
	}
	roles, err := encodeRoles(v.Roles)
	if err != nil {
		return fmt.Errorf("sqlite: vote access request: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var used sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT used FROM access_requests WHERE id = $1`, id).Scan(&used); errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		if used.Valid {
			return storage.ErrUsed
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO access_request_votes (request_id, by_id, roles, approve, comment, at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, by_id) DO NOTHING`,
			id, v.By, roles, v.Approve, v.Comment, micros(v.At))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: vote access request: %w", err)
	}
	return nil
}

// UseAccessRequest marks a request used, once.
func (s *Store) UseAccessRequest(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE access_requests SET used = $2 WHERE id = $1 AND used IS NULL`, id, micros(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM access_requests WHERE id = $1`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		return storage.ErrUsed
	})
	if err != nil {
		return fmt.Errorf("sqlite: use access request: %w", err)
	}
	return nil
}

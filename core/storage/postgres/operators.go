package postgres

// Operators and access requests (storage.Operators), in a migration track
// of their own ("operators", migrations_operators/).
//
// Locking: VoteAccessRequest and UseAccessRequest lock the request's row
// (SELECT ... FOR UPDATE, or an UPDATE with a condition) in their
// transaction, so that a vote cannot land on a request that is being used
// and two uses of one request cannot both succeed.

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

//go:embed migrations_operators/*.sql
var operatorFiles embed.FS

func init() {
	schemas = append(schemas, schema{track: "operators", files: operatorFiles, dir: "migrations_operators"})
}

var _ storage.Operators = (*Store)(nil)

const operatorColumns = `id, display_name, roles, token_hash, disabled, created`

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func nonNilRoles(r []string) []string {
	if r == nil {
		return []string{}
	}
	return r
}

func scanOperator(r pgx.Row) (storage.Operator, error) {
	var (
		o       storage.Operator
		created int64
	)
	if err := r.Scan(&o.ID, &o.DisplayName, &o.Roles, &o.TokenHash, &o.Disabled, &created); err != nil {
		return o, err
	}
	if len(o.Roles) == 0 {
		o.Roles = nil
	}
	o.Created = fromMicros(created)
	return o, nil
}

// CreateOperator stores a new operator; a zero Created means now.
func (s *Store) CreateOperator(ctx context.Context, o storage.Operator) error {
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO operators (`+operatorColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO NOTHING`, o.ID, o.DisplayName, nonNilRoles(o.Roles), o.TokenHash, o.Disabled, micros(o.Created))
	switch {
	case isUniqueViolation(err):
		err = storage.ErrExists
	case err == nil && tag.RowsAffected() == 0:
		err = storage.ErrExists
	}
	if err != nil {
		return fmt.Errorf("postgres: create operator: %w", err)
	}
	return nil
}

// CreateFirstOperator creates o while the table is empty. The table lock
// (SHARE ROW EXCLUSIVE conflicts with itself and with every insert) makes
// concurrent bootstraps, from any number of processes, take turns: the
// first inserts, the others then see a row.
func (s *Store) CreateFirstOperator(ctx context.Context, o storage.Operator) error {
	if o.Created.IsZero() {
		o.Created = time.Now()
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE operators IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO operators (`+operatorColumns+`)
			SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM operators)`,
			o.ID, o.DisplayName, nonNilRoles(o.Roles), o.TokenHash, o.Disabled, micros(o.Created))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create first operator: %w", err)
	}
	return nil
}

func (s *Store) oneOperator(ctx context.Context, what, where string, arg any) (storage.Operator, error) {
	o, err := scanOperator(s.pool.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Operator{}, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return o, nil
}

// Operator returns one operator.
func (s *Store) Operator(ctx context.Context, id string) (storage.Operator, error) {
	return s.oneOperator(ctx, "operator", `id = $1`, id)
}

// OperatorByTokenHash finds an operator by token hash.
func (s *Store) OperatorByTokenHash(ctx context.Context, hash []byte) (storage.Operator, error) {
	if len(hash) == 0 {
		return storage.Operator{}, fmt.Errorf("postgres: operator by token: %w", storage.ErrNotFound)
	}
	return s.oneOperator(ctx, "operator by token", `token_hash = $1`, hash)
}

// ListOperators lists every operator ordered by ID.
func (s *Store) ListOperators(ctx context.Context) ([]storage.Operator, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list operators: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Operator, error) { return scanOperator(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list operators: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (s *Store) updateOperator(ctx context.Context, what, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	switch {
	case isUniqueViolation(err):
		err = storage.ErrExists
	case err == nil && tag.RowsAffected() == 0:
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", what, err)
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
	var used *int64
	if !r.Used.IsZero() {
		u := micros(r.Used)
		used = &u
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO access_requests
		(id, action, subject, case_number, purpose, requester, created, expires, used)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
		r.ID, r.Action, r.Subject, r.CaseNumber, r.Purpose, r.Requester, micros(r.Created), micros(r.Expires), used)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrExists
	}
	if err != nil {
		return fmt.Errorf("postgres: create access request: %w", err)
	}
	return nil
}

const requestColumns = `id, action, subject, case_number, purpose, requester, created, expires, used`

func scanRequest(r pgx.Row) (storage.AccessRequest, error) {
	var (
		q                storage.AccessRequest
		created, expires int64
		used             *int64
	)
	if err := r.Scan(&q.ID, &q.Action, &q.Subject, &q.CaseNumber, &q.Purpose, &q.Requester, &created, &expires, &used); err != nil {
		return q, err
	}
	q.Created, q.Expires = fromMicros(created), fromMicros(expires)
	if used != nil {
		q.Used = fromMicros(*used)
	}
	return q, nil
}

// votes reads the votes of the requests in reqs, in place.
func (s *Store) votes(ctx context.Context, reqs []storage.AccessRequest) error {
	for i := range reqs {
		rows, err := s.pool.Query(ctx, `SELECT by_id, roles, approve, comment, at FROM access_request_votes
			WHERE request_id = $1 ORDER BY at, by_id`, reqs[i].ID)
		if err != nil {
			return err
		}
		vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.RequestVote, error) {
			var (
				v  storage.RequestVote
				at int64
			)
			err := r.Scan(&v.By, &v.Roles, &v.Approve, &v.Comment, &at)
			if len(v.Roles) == 0 {
				v.Roles = nil
			}
			v.At = fromMicros(at)
			return v, err
		})
		if err != nil {
			return err
		}
		if len(vs) > 0 {
			reqs[i].Votes = vs
		}
	}
	return nil
}

// AccessRequest returns one request with its votes.
func (s *Store) AccessRequest(ctx context.Context, id string) (storage.AccessRequest, error) {
	q, err := scanRequest(s.pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err == nil {
		reqs := []storage.AccessRequest{q}
		err = s.votes(ctx, reqs)
		q = reqs[0]
	}
	if err != nil {
		return storage.AccessRequest{}, fmt.Errorf("postgres: access request: %w", err)
	}
	return q, nil
}

// AccessRequests lists requests, newest first.
func (s *Store) AccessRequests(ctx context.Context, since time.Time, limit int) ([]storage.AccessRequest, error) {
	var from int64
	if !since.IsZero() {
		from = micros(since)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+requestColumns+` FROM access_requests WHERE created >= $1
		ORDER BY created DESC, id DESC LIMIT $2`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: access requests: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.AccessRequest, error) { return scanRequest(r) })
	if err == nil {
		err = s.votes(ctx, out)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: access requests: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// VoteAccessRequest records one operator's answer.
func (s *Store) VoteAccessRequest(ctx context.Context, id string, v storage.RequestVote) error {
	if v.At.IsZero() {
		v.At = time.Now()
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var used *int64
		if err := tx.QueryRow(ctx, `SELECT used FROM access_requests WHERE id = $1 FOR UPDATE`, id).Scan(&used); errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		if used != nil {
			return storage.ErrUsed
		}
		tag, err := tx.Exec(ctx, `INSERT INTO access_request_votes (request_id, by_id, roles, approve, comment, at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, by_id) DO NOTHING`,
			id, v.By, nonNilRoles(v.Roles), v.Approve, v.Comment, micros(v.At))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: vote access request: %w", err)
	}
	return nil
}

// UseAccessRequest marks a request used, once.
func (s *Store) UseAccessRequest(ctx context.Context, id string, at time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE access_requests SET used = $2 WHERE id = $1 AND used IS NULL`, id, micros(at))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM access_requests WHERE id = $1`, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		return storage.ErrUsed
	})
	if err != nil {
		return fmt.Errorf("postgres: use access request: %w", err)
	}
	return nil
}

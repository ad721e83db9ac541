package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/pgtest"
	"kontor.im/kontor/core/storage/postgres"
	"kontor.im/kontor/core/storage/storagetest"
)

// auditDBs opens stores on a database of t's own (the same database on
// later calls with that t) and tampers with that database directly.
type auditDBs struct {
	mu   sync.Mutex
	dsns map[*testing.T]string
}

func (d *auditDBs) dsn(t *testing.T) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	dsn, ok := d.dsns[t]
	if !ok {
		dsn = pgtest.DSN(t)
		d.dsns[t] = dsn
		t.Cleanup(func() {
			d.mu.Lock()
			delete(d.dsns, t)
			d.mu.Unlock()
		})
	}
	return dsn
}

func (d *auditDBs) open(t *testing.T) storage.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), d.dsn(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// tamper disables the append-only triggers, as the table's owner can, and
// runs stmt.
func (d *auditDBs) tamper(t *testing.T, stmt string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), d.dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `ALTER TABLE audit_log DISABLE TRIGGER USER`); err != nil {
		t.Fatalf("tamper: disable triggers: %v", err)
	}
	if _, err := conn.Exec(t.Context(), stmt, args...); err != nil {
		t.Fatalf("tamper: %s: %v", stmt, err)
	}
}

func TestAuditConformance(t *testing.T) {
	d := &auditDBs{dsns: map[*testing.T]string{}}
	storagetest.RunAudit(t, d.open, d.tamper)
}

// TestAuditAppendOnly: the table refuses changes made through SQL, as long
// as its triggers are enabled.
func TestAuditAppendOnly(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	if _, err := audit.New(s).Append(t.Context(), audit.Entry{Actor: "alice", Action: "account.create"}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tests := []struct {
		name, stmt string
		appendOnly bool // refused by the trigger, not a constraint
	}{
		{"update", `UPDATE audit_log SET reason = 'x'`, true},
		{"delete", `DELETE FROM audit_log`, true},
		{"truncate", `TRUNCATE audit_log`, true},
		{"insert a short hash", `INSERT INTO audit_log VALUES (2, 0, 'a', 'b', '', '', '', '{}', '\x00'::bytea, '\x00'::bytea)`, false},
		{"insert seq 0", `INSERT INTO audit_log VALUES (0, 0, 'a', 'b', '', '', '', '{}', sha256('x'), sha256('y'))`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.Exec(t.Context(), tt.stmt)
			if err == nil {
				t.Fatalf("%s succeeded", tt.stmt)
			}
			if tt.appendOnly && !strings.Contains(err.Error(), "append-only") {
				t.Errorf("error = %v, want the append-only trigger's", err)
			}
		})
	}
	if _, err := audit.New(s).Verify(t.Context(), audit.VerifyOptions{}); err != nil {
		t.Errorf("Verify after refused changes: %v", err)
	}
}

// TestAuditLockReleased: no append leaves its advisory lock behind.
func TestAuditLockReleased(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	tr := audit.New(s)
	for range 3 {
		if _, err := tr.Append(t.Context(), audit.Entry{Actor: "a", Action: "x.y"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Append(t.Context(), audit.Entry{Actor: "", Action: "x.y"}); err == nil {
		t.Fatal("invalid entry appended")
	}
	if locks := query(t, dsn, `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); locks != 0 {
		t.Errorf("%d advisory locks held after appends, want 0", locks)
	}
}

func BenchmarkAuditAppend(b *testing.B) { storagetest.BenchAuditAppend(b, benchAuditStore(b)) }

func BenchmarkAuditVerify10k(b *testing.B) {
	storagetest.BenchAuditVerify(b, benchAuditStore(b), 10000)
}

func benchAuditStore(b *testing.B) *postgres.Store {
	s, err := postgres.Open(context.Background(), pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

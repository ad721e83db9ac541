package sqlite_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/storage/sqlite"
	"kontor.im/kontor/core/storage/storagetest"
)

// auditFiles opens stores on a file of t's own (the same file on later
// calls with that t) and tampers with that file directly.
type auditFiles struct {
	mu    sync.Mutex
	paths map[*testing.T]string
}

func (f *auditFiles) path(t *testing.T) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.paths[t]
	if !ok {
		p = filepath.Join(t.TempDir(), "kontor.db")
		f.paths[t] = p
		t.Cleanup(func() {
			f.mu.Lock()
			delete(f.paths, t)
			f.mu.Unlock()
		})
	}
	return p
}

func (f *auditFiles) open(t *testing.T) storage.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), f.path(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// rawDB opens the file with database/sql, as any SQLite tool would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tamper drops the append-only triggers and runs stmt: what someone who
// can write the file can do.
func (f *auditFiles) tamper(t *testing.T, stmt string, args ...any) {
	t.Helper()
	db := rawDB(t, f.path(t))
	for _, drop := range []string{`DROP TRIGGER IF EXISTS audit_log_no_update`, `DROP TRIGGER IF EXISTS audit_log_no_delete`} {
		if _, err := db.ExecContext(t.Context(), drop); err != nil {
			t.Fatalf("tamper: %s: %v", drop, err)
		}
	}
	if _, err := db.ExecContext(t.Context(), stmt, args...); err != nil {
		t.Fatalf("tamper: %s: %v", stmt, err)
	}
}

func TestAuditConformance(t *testing.T) {
	f := &auditFiles{paths: map[*testing.T]string{}}
	storagetest.RunAudit(t, f.open, f.tamper)
}

// TestAuditAppendOnly: the table refuses changes made through SQL, as long
// as nobody drops its triggers.
func TestAuditAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kontor.db")
	s := open(t, path)
	if _, err := audit.New(s).Append(t.Context(), audit.Entry{Actor: "alice", Action: "account.create"}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	tests := []struct{ name, stmt string }{
		{"update", `UPDATE audit_log SET reason = 'x'`},
		{"delete", `DELETE FROM audit_log`},
		{"insert a wrong type", `INSERT INTO audit_log VALUES (2, 'now', 'a', 'b', '', '', '', '{}', zeroblob(32), zeroblob(32))`},
		{"insert a short hash", `INSERT INTO audit_log VALUES (2, 0, 'a', 'b', '', '', '', '{}', zeroblob(32), zeroblob(31))`},
		{"insert seq 0", `INSERT INTO audit_log VALUES (0, 0, 'a', 'b', '', '', '', '{}', randomblob(32), zeroblob(32))`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ExecContext(t.Context(), tt.stmt)
			if err == nil {
				t.Fatalf("%s succeeded", tt.stmt)
			}
			if tt.name == "update" || tt.name == "delete" {
				if !strings.Contains(err.Error(), "append-only") {
					t.Errorf("error = %v, want the append-only trigger's", err)
				}
			}
		})
	}
	if _, err := audit.New(s).Verify(t.Context(), audit.VerifyOptions{}); err != nil {
		t.Errorf("Verify after refused changes: %v", err)
	}
}

func BenchmarkAuditAppend(b *testing.B) { storagetest.BenchAuditAppend(b, benchAuditStore(b)) }

func BenchmarkAuditVerify10k(b *testing.B) {
	storagetest.BenchAuditVerify(b, benchAuditStore(b), 10000)
}

func benchAuditStore(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "kontor.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestDSNGivesFreshEmptyDatabase(t *testing.T) {
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 2 {
		dsn := DSN(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		var db string
		var tables int
		if err := conn.QueryRow(ctx, `SELECT current_database(),
			(SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public')`).Scan(&db, &tables); err != nil {
			t.Fatal(err)
		}
		if seen[db] {
			t.Errorf("database %s handed out twice", db)
		}
		seen[db] = true
		if tables != 0 {
			t.Errorf("database %d has %d tables, want none", i, tables)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE t (x int)`); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDataDir(t *testing.T) {
	DSN(t) // starts the server
	dir := DataDir()
	if os.Getenv(EnvDSN) != "" {
		if dir != "" {
			t.Errorf("DataDir() = %q with an external server, want \"\"", dir)
		}
		return
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Errorf("DataDir() = %q is not a data directory: %v", dir, err)
	}
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"url", "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/kt_x?sslmode=disable"},
		{"url without path", "postgresql://127.0.0.1", "postgresql://127.0.0.1/kt_x"},
		{"keywords", "host=127.0.0.1 dbname=postgres", "host=127.0.0.1 dbname=postgres dbname=kt_x"},
		{"keywords without dbname", "host=127.0.0.1 ", "host=127.0.0.1  dbname=kt_x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withDatabase(tt.dsn, "kt_x")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("withDatabase(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
			if _, err := pgx.ParseConfig(got); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
		})
	}
}

func TestDBName(t *testing.T) {
	long := "TestSomething/with a very long subtest name, ünïcödé and more and more and more"
	a, b := dbName(long), dbName(long)
	if a == b {
		t.Errorf("dbName is not unique: %q twice", a)
	}
	if len(a) > 63 {
		t.Errorf("dbName = %q, longer than 63 bytes", a)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			t.Fatalf("dbName = %q contains %q", a, r)
		}
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9.6", "15", true},
		{"15", "16", true},
		{"16", "15", false},
		{"15", "15", false},
		{"9.5", "9.6", true},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

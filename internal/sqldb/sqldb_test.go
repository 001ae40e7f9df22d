package sqldb_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/agentkeys/agentkeys/internal/sqldb"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

func TestSQLitePath(t *testing.T) {
	for _, c := range []struct{ dsn, want, err string }{
		{"/var/lib/a.db", "/var/lib/a.db", ""},
		{"sqlite:/x/a.db", "/x/a.db", ""},
		{"sqlite:///x/a.db", "/x/a.db", ""},
		{"file:rel.db", "rel.db", ""},
		{"file:///x/a.db", "/x/a.db", ""},
		{"", "", "empty"},
		{":memory:", "", "not durable"},
		{"file::memory:?cache=shared", "", "not durable"},
		{"sqlite:file:a.db", "", "URIs"},
		{"/x/a.db?mode=ro", "", "must not contain"},
		{"/x/a.db#frag", "", "must not contain"},
	} {
		got, err := sqldb.SQLitePath(c.dsn)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SQLitePath(%q) = %q, %v; want an error containing %q", c.dsn, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q", c.dsn, got, err, c.want)
		}
	}
}

func TestRedactHidesPassword(t *testing.T) {
	got := sqldb.Redact("postgres://u:hunter2-secret@db:5432/x?sslmode=disable")
	if strings.Contains(got, "hunter2-secret") || !strings.Contains(got, "db:5432") {
		t.Fatalf("Redact = %q", got)
	}
	if got := sqldb.Redact("postgres://u:p@[::1"); strings.Contains(got, "u:p") {
		t.Fatalf("Redact of an unparsable URL = %q", got)
	}
	if got := sqldb.Redact("/data/a.db"); got != "/data/a.db" {
		t.Fatalf("Redact(path) = %q", got)
	}
}

// twoSchemas are two independent migration sets, as the store and the audit
// ledger have, with their own goose bookkeeping.
func migrations(table string) fstest.MapFS {
	up := "-- +goose Up\nCREATE TABLE " + table + " (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n-- +goose Down\nDROP TABLE " + table + ";\n"
	return fstest.MapFS{
		"sqlite/00001_init.sql":   {Data: []byte(up)},
		"postgres/00001_init.sql": {Data: []byte(up)},
	}
}

func TestTwoSchemasShareOneDatabase(t *testing.T) {
	sqldbtest.ForEach(t, func(t *testing.T, e sqldbtest.Engine) {
		ctx := context.Background()
		dsn := e.NewDSN(t)
		a, err := sqldb.Open(ctx, dsn, sqldb.Options{Name: "a", Migrations: migrations("alpha")})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := sqldb.Open(ctx, dsn, sqldb.Options{Name: "b", Migrations: migrations("beta"), GooseTable: "beta_goose", LockID: 42})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if a.Engine.String() != e.Name || b.Engine != a.Engine {
			t.Fatalf("engine = %v/%v, want %s", a.Engine, b.Engine, e.Name)
		}
		// Both schemas exist: goose kept their versions apart.
		for _, tbl := range []string{"alpha", "beta"} {
			if _, err := a.ExecContext(ctx, "INSERT INTO "+tbl+" (id, v) VALUES (1, 'x')"); err != nil {
				t.Fatalf("insert into %s: %v", tbl, err)
			}
		}
		// Reopening applies nothing twice.
		a2, err := sqldb.Open(ctx, dsn, sqldb.Options{Name: "a", Migrations: migrations("alpha")})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		a2.Close()
	})
}

func TestSQLiteFileIsPrivate(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "sub")
	path := filepath.Join(dir, "x.db")
	if _, err := sqldb.Open(ctx, path, sqldb.Options{Name: "x"}); err == nil {
		t.Fatal("opened a file in a missing directory without CreateDir")
	}
	db, err := sqldb.Open(ctx, path, sqldb.Options{Name: "x", CreateDir: true, PrivateFile: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	testkit.WantPerm(t, dir, 0o700)
	testkit.WantPerm(t, path, 0o600)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.Open(ctx, path, sqldb.Options{Name: "x", PrivateFile: true}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 file was accepted: %v", err)
	}
}

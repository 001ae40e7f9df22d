// Package sqldbtest gives tests throwaway databases on both engines: a
// SQLite file in the test's temporary directory, or a fresh PostgreSQL
// database on the server named by AGENTKEYS_TEST_POSTGRES_URL, dropped when
// the test ends.
//
// Without that variable (or with the server unreachable) the PostgreSQL
// half is skipped, loudly, unless AGENTKEYS_REQUIRE_POSTGRES=1, which turns
// the skip into a failure (CI sets it).
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
)

// Environment variables.
const (
	EnvPostgresURL     = "AGENTKEYS_TEST_POSTGRES_URL"
	EnvRequirePostgres = "AGENTKEYS_REQUIRE_POSTGRES"
)

// Engine names a way to make a fresh, empty database.
type Engine struct {
	Name   string
	NewDSN func(t testing.TB) string
}

// Engines are SQLite and PostgreSQL, in that order.
var Engines = []Engine{
	{"sqlite", SQLiteDSN},
	{"postgres", PostgresDSN},
}

// ForEach runs fn as a subtest per engine.
func ForEach(t *testing.T, fn func(t *testing.T, e Engine)) {
	for _, e := range Engines {
		t.Run(e.Name, func(t *testing.T) { fn(t, e) })
	}
}

// SQLiteDSN is a database file path in t's temporary directory.
func SQLiteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "agentkeys.db")
}

// PostgresDSN creates a database that is dropped when t ends and returns
// its URL.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgresURL)
	required := os.Getenv(EnvRequirePostgres) == "1"
	if admin == "" {
		if required {
			t.Fatalf("%s=1 but %s is not set", EnvRequirePostgres, EnvPostgresURL)
		}
		t.Skipf("PostgreSQL half skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", EnvPostgresURL)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresURL, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if required {
			t.Fatalf("PostgreSQL at %s unreachable: %v", EnvPostgresURL, err)
		}
		t.Skipf("PostgreSQL unreachable, skipped: %v", err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "agentkeys_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create throwaway database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			t.Errorf("drop throwaway database %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop throwaway database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

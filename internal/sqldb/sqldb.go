// Package sqldb opens the SQL databases AgentKeys keeps — the backend's
// store and the broker's audit ledger — in one way: one DSN syntax, one set
// of SQLite connection settings, one PostgreSQL pool policy and one goose
// migration routine. The packages that own the schemas (store/sqlstore,
// audit) hand in their embedded migrations and their goose bookkeeping
// names; everything else is decided here.
//
// A DSN is either a PostgreSQL URL ("postgres://…" or "postgresql://…") or a
// SQLite database file path, optionally prefixed with "sqlite:", "sqlite://",
// "file:" or "file://". SQLite paths may not carry URI parameters, and an
// in-memory SQLite database is refused: neither the store nor the ledger
// may silently lose what it was given.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// Engine is a database engine.
type Engine int

// The engines.
const (
	SQLite Engine = iota
	Postgres
)

// String names the engine ("sqlite", "postgres").
func (e Engine) String() string {
	if e == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// EngineOf names the engine a DSN selects.
func EngineOf(dsn string) Engine {
	if IsPostgres(dsn) {
		return Postgres
	}
	return SQLite
}

// SQLitePath extracts the file path from a SQLite DSN and refuses what
// cannot be a durable database file.
func SQLitePath(dsn string) (string, error) {
	path := dsn
	for _, prefix := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			path = rest
			break
		}
	}
	switch {
	case path == "":
		return "", errors.New("empty SQLite database path")
	case path == ":memory:" || strings.HasPrefix(path, ":memory:"):
		return "", errors.New("in-memory SQLite databases are not durable; give a file path")
	case strings.HasPrefix(path, "file:"):
		return "", errors.New("SQLite URIs are not supported; give a file path")
	case strings.ContainsAny(path, "?#"):
		return "", errors.New("SQLite database path must not contain '?' or '#'")
	}
	return path, nil
}

// Redact returns dsn safe for logs and errors: a PostgreSQL URL without its
// password (and nothing at all when it does not parse), a SQLite path as is.
func Redact(dsn string) string {
	if !IsPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// Options says how to open one kind of database. Name prefixes every error
// ("sqlstore", "audit"); Migrations holds the directories "sqlite" and
// "postgres" with goose SQL files.
type Options struct {
	Name       string
	Migrations fs.FS
	// GooseTable and LockID keep one schema's goose bookkeeping apart from
	// another's in a shared PostgreSQL database (defaults: goose's own).
	GooseTable string
	LockID     int64
	// MaxConns bounds the pool per engine (defaults 8 and 16).
	SQLiteMaxConns   int
	PostgresMaxConns int
	// BusyTimeout is how long a SQLite writer waits for another process's
	// lock before failing (default 5 s).
	BusyTimeout time.Duration
	// WALAutoCheckpoint (pages) and JournalSizeLimit (bytes) bound a SQLite
	// WAL: it is checkpointed into the database once it holds that many
	// pages and truncated back to the limit afterwards (defaults: SQLite's,
	// 1000 pages and no limit).
	WALAutoCheckpoint int
	JournalSizeLimit  int64
	// ForeignKeys turns SQLite's foreign-key enforcement on.
	ForeignKeys bool
	// CreateDir creates a missing parent directory 0700 for a SQLite file.
	CreateDir bool
	// PrivateFile refuses a SQLite file readable by group or others.
	PrivateFile bool
}

// DB is an open, migrated database.
type DB struct {
	*sql.DB
	Engine Engine
}

// Open connects to dsn, checks the connection and applies pending
// migrations. A missing SQLite file is created 0600 (its -wal and -shm files
// inherit the mode).
func Open(ctx context.Context, dsn string, o Options) (*DB, error) {
	if o.Name == "" {
		o.Name = "sqldb"
	}
	var (
		db  *sql.DB
		err error
	)
	e := EngineOf(dsn)
	if e == Postgres {
		db, err = openPostgres(dsn, o)
	} else {
		db, err = openSQLite(dsn, o)
	}
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, db, e, o); err != nil {
		db.Close()
		return nil, err
	}
	return &DB{DB: db, Engine: e}, nil
}

func openSQLite(dsn string, o Options) (*sql.DB, error) {
	path, err := SQLitePath(dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	if o.CreateDir {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("%s: create database directory: %w", o.Name, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: create database file: %w", o.Name, err)
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: stat database file: %w", o.Name, err)
	}
	if o.PrivateFile && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: database file %s has mode %04o; it must not be readable by group or others (chmod 600)", o.Name, path, st.Mode().Perm())
	}
	busy := o.BusyTimeout
	if busy <= 0 {
		busy = 5 * time.Second
	}
	// WAL with synchronous=FULL makes every commit durable before it
	// returns; busy_timeout lets a writer wait for another process instead
	// of failing at once; _txlock=immediate takes the write lock at BEGIN,
	// so two writers never deadlock upgrading a read lock.
	params := "_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)"
	if o.WALAutoCheckpoint > 0 {
		params += "&_pragma=wal_autocheckpoint(" + strconv.Itoa(o.WALAutoCheckpoint) + ")"
	}
	if o.JournalSizeLimit > 0 {
		params += "&_pragma=journal_size_limit(" + strconv.FormatInt(o.JournalSizeLimit, 10) + ")"
	}
	if o.ForeignKeys {
		params += "&_pragma=foreign_keys(1)"
	}
	params += "&_txlock=immediate"
	db, err := sql.Open("sqlite", path+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("%s: open sqlite: %w", o.Name, err)
	}
	return pooled(db, o.SQLiteMaxConns, 8), nil
}

// pooled sizes db's pool to n connections (def when n is not positive),
// all of them kept idle between uses.
func pooled(db *sql.DB, n, def int) *sql.DB {
	if n <= 0 {
		n = def
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return db
}

func openPostgres(dsn string, o Options) (*sql.DB, error) {
	if _, err := url.Parse(dsn); err != nil {
		// url.Error would quote the DSN, password included.
		return nil, fmt.Errorf("%s: malformed PostgreSQL URL", o.Name)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: open postgres: %w", o.Name, err) // pgx redacts the password
	}
	return pooled(db, o.PostgresMaxConns, 16), nil
}

// migrate checks the connection and brings the schema up to date. On
// PostgreSQL a session-level advisory lock lets one of several processes
// starting at once migrate while the others wait.
func migrate(ctx context.Context, db *sql.DB, e Engine, o Options) error {
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("%s: connect: %w", o.Name, err)
	}
	if o.Migrations == nil {
		return nil
	}
	dir, dialect := "sqlite", goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if o.GooseTable != "" {
		opts = append(opts, goose.WithTableName(o.GooseTable))
	}
	if e == Postgres {
		dir, dialect = "postgres", goose.DialectPostgres
		lockOpts := []lock.SessionLockerOption{lock.WithLockTimeout(1, 300)}
		if o.LockID != 0 {
			lockOpts = append(lockOpts, lock.WithLockID(o.LockID))
		}
		locker, err := lock.NewPostgresSessionLocker(lockOpts...)
		if err != nil {
			return fmt.Errorf("%s: migration lock: %w", o.Name, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(o.Migrations, dir)
	if err != nil {
		return fmt.Errorf("%s: migrations: %w", o.Name, err)
	}
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("%s: migrations: %w", o.Name, err)
	}
	// p.Close would close db, so the provider is simply dropped.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("%s: migrate: %w", o.Name, err)
	}
	return nil
}

// Package sqlstore implements store.Store over database/sql for two engines:
// SQLite (modernc.org/sqlite, a file on local disk) and PostgreSQL
// (github.com/jackc/pgx/v5). Both engines share the SQL text; the few
// dialect differences are spelled out in dialect.
//
// Transactions run through Store.Tx are serializable on both engines
// (SQLite: an in-process gate plus BEGIN IMMEDIATE; PostgreSQL: SERIALIZABLE
// isolation, retried on serialization failures and deadlocks, repeated
// losers queueing on an advisory lock), so a
// check-then-write inside Tx behaves the same whichever engine backs the
// store, while PostgreSQL still runs unrelated transactions in parallel.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/agentkeys/agentkeys/internal/store"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// sqliteParams configures every SQLite connection. _txlock=immediate makes
// BeginTx take the write lock up front, so two write transactions never
// deadlock upgrading a read lock; busy_timeout makes a writer wait for
// another process instead of failing at once.
const sqliteParams = "_pragma=busy_timeout(5000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(1)" +
	"&_txlock=immediate"

// Pool sizes. SQLite in WAL mode serves readers concurrently while writers
// take turns; PostgreSQL gets a bound so a burst cannot exhaust the server's
// connection slots.
const (
	sqliteMaxConns   = 8
	postgresMaxConns = 16
)

// maxTxAttempts bounds how often a PostgreSQL transaction that lost a
// serialization conflict is run again. From lockAfter attempts on, a retry
// also takes contendedLockID, so transactions that keep colliding (a hot
// row) queue up behind each other instead of colliding forever.
const (
	maxTxAttempts         = 20
	lockAfter             = 3
	contendedLockID int64 = 0x6167656e746b6579 // "agentkey"
)

// Store is a store.Store backed by SQLite or PostgreSQL. Its methods outside
// Tx run as single autocommit statements (or one short transaction where a
// method needs several statements).
type Store struct {
	queries
	db *sql.DB
	// gate admits one Tx at a time on SQLite so in-process writers queue in
	// Go instead of spinning in SQLite's busy handler. nil on PostgreSQL.
	gate chan struct{}
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn and applies pending migrations.
//
// dsn is either a PostgreSQL URL ("postgres://..." or "postgresql://...") or
// a SQLite database file path, optionally prefixed with "sqlite:",
// "sqlite://", "file:" or "file://". A missing SQLite file is created with
// mode 0600 (its -wal and -shm files inherit the mode); its directory must
// exist. SQLite paths may not carry URI query parameters.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if isPostgres(dsn) {
		return openPostgres(ctx, dsn)
	}
	path, err := sqlitePath(dsn)
	if err != nil {
		return nil, err
	}
	return openSQLite(ctx, path)
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sqlitePath extracts the file path from a SQLite DSN.
func sqlitePath(dsn string) (string, error) {
	path := dsn
	for _, prefix := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			path = rest
			break
		}
	}
	switch {
	case path == "":
		return "", errors.New("sqlstore: empty SQLite database path")
	case path == ":memory:":
		return "", errors.New("sqlstore: in-memory SQLite databases are not supported; use a file")
	case strings.HasPrefix(path, "file:"):
		return "", errors.New("sqlstore: SQLite URIs are not supported; give a file path")
	case strings.ContainsAny(path, "?#"):
		return "", errors.New("sqlstore: SQLite database path must not contain '?' or '#'")
	}
	return path, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlstore: create database file: %w", err)
	}
	db, err := sql.Open("sqlite", path+"?"+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	s := newStore(db, dialectSQLite)
	if err := s.setup(ctx, goose.DialectSQLite3, "migrations/sqlite"); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	if _, err := url.Parse(dsn); err != nil {
		// url.Error would quote the DSN, password included.
		return nil, errors.New("sqlstore: malformed PostgreSQL URL")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open postgres: %w", err) // pgx redacts the password
	}
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	s := newStore(db, dialectPostgres)
	if err := s.setup(ctx, goose.DialectPostgres, "migrations/postgres"); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(db *sql.DB, d dialect) *Store {
	s := &Store{db: db}
	if d == dialectSQLite {
		s.gate = make(chan struct{}, 1)
	}
	s.queries = queries{q: db, d: d, outer: s}
	return s
}

// setup checks the connection and brings the schema up to date.
func (s *Store) setup(ctx context.Context, dialect goose.Dialect, dir string) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: connect: %w", err)
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if dialect == goose.DialectPostgres {
		// Several processes may start at once against one database: the
		// session-level advisory lock lets one migrate while the others wait.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("sqlstore: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	// p.Close would close s.db, so the provider is simply dropped.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	return nil
}

// Tx runs fn in a read-write transaction, committing if fn returns nil and
// rolling back if it returns an error or panics (the panic is re-raised).
// fn must use only the Queries it is given: calling the Store itself from
// inside fn may wait for a connection or lock that fn holds. On PostgreSQL
// fn may run more than once (a serialization failure rolls the attempt
// back and retries it), so it must not have effects outside the database.
func (s *Store) Tx(ctx context.Context, fn func(q store.Queries) error) (err error) {
	if s.gate != nil {
		select {
		case s.gate <- struct{}{}:
			defer func() { <-s.gate }()
		case <-ctx.Done():
			return fmt.Errorf("sqlstore: begin: %w", ctx.Err())
		}
	}
	for attempt := 1; ; attempt++ {
		err = s.tx(ctx, attempt > lockAfter, fn)
		if s.d != dialectPostgres || !retryable(err) || attempt == maxTxAttempts {
			return err
		}
		// Back off, exponentially up to 50ms, with jitter, so conflicting
		// transactions do not collide again in lockstep.
		d := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
		d = d/2 + time.Duration(rand.Int64N(int64(d)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return err
		}
	}
}

// retryable reports a PostgreSQL serialization failure or deadlock.
func retryable(err error) bool {
	_, state := codes(err)
	return state == "40001" || state == "40P01"
}

func (s *Store) tx(ctx context.Context, contended bool, fn func(q store.Queries) error) error {
	var opts *sql.TxOptions
	if s.d == dialectPostgres {
		opts = &sql.TxOptions{Isolation: sql.LevelSerializable}
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if contended && s.d == dialectPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", contendedLockID); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlstore: begin: lock: %w", err)
		}
	}
	if err := fn(&queries{q: tx, d: s.d}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb"
	"github.com/agentkeys/agentkeys/internal/store"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

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
	// queryTimeout and txTimeout bound every statement and transaction.
	queryTimeout, txTimeout time.Duration
	path                    string // SQLite file, for the write probe
	// audit groups appends made outside a transaction (group commit).
	audit auditGroup
	// stmts holds prepared statements (SQLite only; nil on PostgreSQL).
	stmts *stmtCache
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
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations: %w", err)
	}
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{
		Name:           "sqlstore",
		Migrations:     sub,
		SQLiteMaxConns: sqliteMaxConns, PostgresMaxConns: postgresMaxConns,
		BusyTimeout: 5 * time.Second,
		ForeignKeys: true,
		// A bounded WAL: SQLite's default lets it grow to 4 MiB and more
		// before a checkpoint, enough to fill a small volume.
		WALAutoCheckpoint: 256, JournalSizeLimit: 1 << 20,
	})
	if err != nil {
		return nil, err
	}
	d := dialectSQLite
	if db.Engine == sqldb.Postgres {
		d = dialectPostgres
	}
	s := newStore(db.DB, d)
	if d == dialectSQLite {
		s.path, _ = sqldb.SQLitePath(dsn)
	}
	return s, nil
}

func newStore(db *sql.DB, d dialect) *Store {
	s := &Store{db: db, queryTimeout: QueryTimeout, txTimeout: TxTimeout}
	var e execer = db
	if d == dialectSQLite {
		s.gate = make(chan struct{}, 1)
		s.stmts = newStmtCache(db)
		e = cachedExecer{c: s.stmts, e: db}
	}
	s.queries = queries{q: deadlineExecer{e, QueryTimeout}, d: d, outer: s}
	return s
}

// Tx runs fn in a read-write transaction, committing if fn returns nil and
// rolling back if it returns an error or panics (the panic is re-raised).
// fn must use only the Queries it is given: calling the Store itself from
// inside fn may wait for a connection or lock that fn holds. On PostgreSQL
// fn may run more than once (a serialization failure rolls the attempt
// back and retries it), so it must not have effects outside the database.
func (s *Store) Tx(ctx context.Context, fn func(q store.Queries) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.txTimeout)
	defer cancel()
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
	var e execer = tx
	if s.stmts != nil {
		e = cachedExecer{c: s.stmts, tx: tx, e: tx}
	}
	if err := fn(&queries{q: deadlineExecer{e, s.queryTimeout}, d: s.d}); err != nil {
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
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	if s.stmts != nil {
		s.stmts.close()
	}
	return s.db.Close()
}

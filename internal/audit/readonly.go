package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "modernc.org/sqlite"             // registers driver "sqlite"

	"github.com/agentkeys/agentkeys/internal/sqldb"
)

// ErrNotLedger means the database holds no audit ledger (an empty file, a
// file of another kind, or a database the broker never migrated).
var ErrNotLedger = errors.New("not an audit ledger")

// OpenReadOnly opens an existing ledger for checking only: it never
// creates, migrates or writes anything, accepts any file mode (a 0644
// backup, a read-only copy or file system) and refuses a database that
// holds no ledger. Ledgers written before per-replica chains are read as
// one chain, DefaultChain.
func OpenReadOnly(ctx context.Context, dsn string) (*SQL, error) {
	s := &SQL{readOnly: true, chain: DefaultChain, opts: Options{Now: time.Now, ProbeCache: defaultProbeCache},
		closing: make(chan struct{}), done: make(chan struct{})}
	close(s.done) // no writer
	var err error
	if sqldb.IsPostgres(dsn) {
		s.engine = enginePostgres
		s.db, err = openPostgresReadOnly(ctx, dsn)
	} else {
		s.engine = engineSQLite
		s.db, err = openSQLiteReadOnly(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := s.detectSchema(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func openPostgresReadOnly(ctx context.Context, dsn string) (*sql.DB, error) {
	if _, err := url.Parse(dsn); err != nil {
		return nil, errors.New("audit: malformed PostgreSQL URL")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: open postgres: %w", err)
	}
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: connect: %w", err)
	}
	return db, nil
}

func openSQLiteReadOnly(ctx context.Context, dsn string) (*sql.DB, error) {
	path, err := sqldb.SQLitePath(dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit: ledger %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("audit: ledger %s is not a regular file", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("audit: ledger %s is an empty file: %w", path, ErrNotLedger)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("audit: ledger %s: %w", path, err)
	}
	open := func(extra string) (*sql.DB, error) {
		u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro" + extra + "&_pragma=busy_timeout(10000)"}
		db, err := sql.Open("sqlite", u.String())
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master").Scan(&n); err != nil {
			db.Close()
			return nil, err
		}
		return db, nil
	}
	db, err := open("")
	if err != nil {
		// A WAL-mode copy on a read-only file system cannot get its -shm
		// file. Without a -wal file there is nothing the WAL could add,
		// so reading the file as immutable is exact.
		if _, werr := os.Stat(abs + "-wal"); errors.Is(werr, os.ErrNotExist) {
			if db2, err2 := open("&immutable=1"); err2 == nil {
				return db2, nil
			}
		}
		return nil, fmt.Errorf("audit: ledger %s: cannot be read as a SQLite database (%v): %w", path, err, ErrNotLedger)
	}
	return db, nil
}

// detectSchema checks that the ledger tables exist and notes a ledger that
// predates per-replica chains.
func (s *SQL) detectSchema(ctx context.Context) error {
	has := func(table string) (bool, error) {
		var n int
		q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
		if s.engine == enginePostgres {
			q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
		}
		err := s.db.QueryRowContext(ctx, q, table).Scan(&n)
		return n > 0, err
	}
	log, err := has("mint_log")
	if err != nil {
		return fmt.Errorf("audit: read schema: %w", err)
	}
	chains, err := has("mint_log_chains")
	if err != nil {
		return fmt.Errorf("audit: read schema: %w", err)
	}
	head, err := has("mint_log_head")
	if err != nil {
		return fmt.Errorf("audit: read schema: %w", err)
	}
	switch {
	case log && chains:
	case log && head:
		s.legacy = true
	default:
		return fmt.Errorf("audit: the database has no mint_log table (was a broker ever started on it?): %w", ErrNotLedger)
	}
	return nil
}

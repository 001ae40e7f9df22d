package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentkeys/agentkeys/internal/store"
)

// classify maps a driver error to the store's sentinel errors and prefixes
// the operation. It returns nil for nil. Messages name the operation only,
// never the arguments, which may be secrets or hashes of them.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	lite, pg := codes(err)
	switch {
	case lite == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || lite == sqlite3.SQLITE_CONSTRAINT_UNIQUE || pg == "23505":
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrConflict)
	case lite == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY || pg == "23503":
		return fmt.Errorf("sqlstore: %s: referenced row: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// codes returns err's SQLite extended result code (0 if none) and its
// PostgreSQL SQLSTATE ("" if none).
func codes(err error) (sqliteCode int, sqlState string) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return 0, pe.Code
	}
	return 0, ""
}

package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb"
)

// Deadlines. A database that stops answering (a frozen or partitioned
// PostgreSQL keeps its TCP connections open) must not hang requests: every
// statement gets QueryTimeout and every transaction TxTimeout, whatever
// the caller's context says.
const (
	QueryTimeout = 10 * time.Second
	TxTimeout    = 20 * time.Second
)

// deadlineExecer gives every statement a deadline.
type deadlineExecer struct {
	e execer
	d time.Duration
}

func (x deadlineExecer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, x.d)
	defer cancel()
	return x.e.ExecContext(ctx, query, args...)
}

// QueryContext and QueryRowContext cannot cancel on return (the rows are
// read afterwards); their context ends at the deadline instead.
func (x deadlineExecer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(x.d, cancel)
	return x.e.QueryContext(ctx, query, args...)
}

func (x deadlineExecer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(x.d, cancel)
	return x.e.QueryRowContext(ctx, query, args...)
}

// probeHost keys this process's row in health_probe.
var probeHost = func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "backend"
	}
	return h
}()

// ProbeWrite checks that the database takes a write now: it commits one
// row to health_probe (never API data) and, on SQLite, that the volume has
// room for the WAL to grow.
func (s *Store) ProbeWrite(ctx context.Context) error {
	q := "INSERT INTO health_probe (host, probed_at) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET probed_at = excluded.probed_at"
	if s.d == dialectPostgres {
		q = "INSERT INTO health_probe (host, probed_at) VALUES ($1, $2) ON CONFLICT (host) DO UPDATE SET probed_at = excluded.probed_at"
	}
	ctx, cancel := context.WithTimeout(ctx, s.queryTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, q, probeHost, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("sqlstore: write probe: %w", err)
	}
	// That write can land in WAL space SQLite already holds while a new
	// credential needs the WAL to grow (up to its bound) first.
	if s.path != "" {
		if _, free, ok := sqldb.VolumeSpace(s.path); ok && free < minFreeBytes {
			return fmt.Errorf("sqlstore: database volume full (%d bytes free)", free)
		}
	}
	return nil
}

// minFreeBytes is the free space a SQLite store needs to take writes: its
// WAL may grow to its 1 MiB bound before a checkpoint returns the space.
const minFreeBytes = 1 << 20

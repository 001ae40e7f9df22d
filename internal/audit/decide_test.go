package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// TestAppendErrorMeansNoRow: a caller whose deadline passes while the
// ledger is locked gets an error, and its row must not be committed once
// the lock is released. Before, the writer committed the batch after the
// deadline: the ledger said "ok" for a mint whose caller got 500.
func TestAppendErrorMeansNoRow(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		dsn := e.dsn(t)
		s := openWith(t, dsn, audit.Options{Chain: "replica-a"})
		appendN(t, s, 1)
		// Another process holds the lock the writer needs: the SQLite write
		// lock, or this chain's head row on PostgreSQL.
		lock := rawDB(t, e, dsn)
		conn, err := lock.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if e.pg {
			if _, err := conn.ExecContext(context.Background(), "BEGIN; SELECT 1 FROM mint_log_chains WHERE chain = 'replica-a' FOR UPDATE"); err != nil {
				t.Fatal(err)
			}
		} else if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = s.Append(ctx, sample(2))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Append against a locked ledger = %v, want the deadline", err)
		}
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		appendN(t, s, 1) // the writer has finished the locked batch
		rep, err := s.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != 2 {
			t.Fatalf("%d rows: the append that returned an error was written after all", rep.Rows)
		}
	})
}

package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Concurrent appends outside a transaction each come back with the id of
// their own committed row, whichever caller led the batch.
func TestAuditGroupCommit(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := open(t, e.newDSN(t))
			const n = 64
			ids := make([]int64, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					ids[i], errs[i] = s.AppendAudit(context.Background(), agentkeys.AuditEvent{
						Time: time.Now(), Owner: "0xowner", Agent: "0xagent", Service: "svc",
						Action: "read", Result: "ok", Detail: fmt.Sprintf("row-%d", i),
					})
				})
			}
			wg.Wait()
			seen := map[int64]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("append %d: %v", i, errs[i])
				}
				if seen[ids[i]] {
					t.Fatalf("id %d returned twice", ids[i])
				}
				seen[ids[i]] = true
				if got := count(t, s, `SELECT COUNT(*) FROM audit_log WHERE id = $1 AND detail = $2`, ids[i], fmt.Sprintf("row-%d", i)); got != 1 {
					t.Fatalf("append %d: id %d does not hold its row", i, ids[i])
				}
			}
			if got := count(t, s, `SELECT COUNT(*) FROM audit_log`); got != n {
				t.Fatalf("%d rows stored, want %d", got, n)
			}
		})
	}
}

// A caller whose request is cancelled while its batch commits does not
// abort the batch: its row and the others' still commit.
func TestAuditGroupCommitIgnoresCancel(t *testing.T) {
	s := open(t, engines[0].newDSN(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id, err := s.AppendAudit(ctx, agentkeys.AuditEvent{Time: time.Now(), Owner: "0xo", Agent: "0xa", Service: "s", Action: "read", Result: "ok"})
	if err != nil || id == 0 {
		t.Fatalf("append with a cancelled context: id %d, %v", id, err)
	}
}

// When the database refuses the write, every caller in the batch gets an
// error and no id: nothing may proceed as if its row were stored.
func TestAuditGroupCommitFailsClosed(t *testing.T) {
	s := open(t, engines[0].newDSN(t))
	s.db.Close()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			id, err := s.AppendAudit(context.Background(), agentkeys.AuditEvent{Time: time.Now(), Owner: "0xo", Agent: "0xa", Service: "s", Action: "read", Result: "ok"})
			if err == nil || id != 0 {
				t.Errorf("append %d on a closed database: id %d, err %v", i, id, err)
			}
		})
	}
	wg.Wait()
}

// A batch is written in one statement (PostgreSQL) or a few multi-row
// INSERTs in one transaction (SQLite; 13 rows: 8, 4 and 1); every caller
// still gets the id of its own row, ids rising in order.
func TestAuditBatchIDsFollowTheRows(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := open(t, e.newDSN(t))
			ctx := context.Background()
			batch := make([]*auditWaiter, 13)
			for i := range batch {
				batch[i] = &auditWaiter{e: agentkeys.AuditEvent{
					Time: time.Now(), Owner: "0xowner", Agent: "0xagent", Service: "svc",
					Action: "read", Result: "ok", Detail: fmt.Sprintf("row-%d", i),
				}}
			}
			if err := s.writeAuditBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			for i, w := range batch {
				if i > 0 && w.id <= batch[i-1].id {
					t.Fatalf("row %d got id %d after id %d", i, w.id, batch[i-1].id)
				}
				if got := count(t, s, `SELECT COUNT(*) FROM audit_log WHERE id = $1 AND detail = $2`, w.id, fmt.Sprintf("row-%d", i)); got != 1 {
					t.Fatalf("row %d: id %d does not hold it", i, w.id)
				}
			}
		})
	}
}

package sqlstore

import (
	"context"
	"sync"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// maxAuditBatch bounds how many audit rows share one transaction.
const maxAuditBatch = 256

// auditGroup batches audit appends made outside a transaction: concurrent
// callers' rows are written in one transaction (one fsync on SQLite, one
// WAL flush on PostgreSQL), and each caller returns only after the
// transaction holding its row committed. There is no writer goroutine: the
// first caller to find the group idle becomes the leader, commits what is
// queued (itself included) and hands leadership to the next queued caller.
type auditGroup struct {
	mu      sync.Mutex
	pending []*auditWaiter
	busy    bool // a leader is committing; false implies pending is empty
}

type auditWaiter struct {
	e    agentkeys.AuditEvent
	id   int64
	err  error
	lead bool          // set before wake when this waiter is to lead
	wake chan struct{} // signalled once: result ready, or lead
}

// AppendAudit stores e durably and returns its id. Outside a transaction,
// rows from concurrent callers commit together; the call returns after
// its row committed, or with the error that kept it from committing.
func (s *Store) AppendAudit(ctx context.Context, e agentkeys.AuditEvent) (int64, error) {
	w := &auditWaiter{e: e, wake: make(chan struct{}, 1)}
	g := &s.audit
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if !lead {
		<-w.wake // bounded by the leader's transaction timeout
		if !w.lead {
			return w.id, w.err
		}
	}
	s.commitAuditBatch(ctx)
	return w.id, w.err
}

// commitAuditBatch takes the queued rows (the leader's own first), commits
// them, wakes their callers and passes leadership on.
func (s *Store) commitAuditBatch(ctx context.Context) {
	g := &s.audit
	g.mu.Lock()
	n := min(len(g.pending), maxAuditBatch)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()

	// The batch is shared: one caller's cancellation must not abort the
	// others' rows. Tx bounds it with its own timeout.
	ctx = context.WithoutCancel(ctx)
	err := s.Tx(ctx, func(q store.Queries) error {
		for _, w := range batch {
			var err error
			if w.id, err = q.AppendAudit(ctx, w.e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		// Keep one bad row from failing the others: write each alone.
		for _, w := range batch {
			w.id, w.err = s.queries.AppendAudit(ctx, w.e)
		}
	} else if err != nil {
		batch[0].id, batch[0].err = 0, err
	}

	g.mu.Lock()
	var next *auditWaiter
	if len(g.pending) == 0 {
		g.busy = false
		g.pending = nil
	} else {
		next = g.pending[0]
		next.lead = true
	}
	g.mu.Unlock()
	for _, w := range batch[1:] {
		w.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

package sqlstore

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strings"
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
	err := s.writeAuditBatch(ctx, batch)
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

// writeAuditBatch commits the batch's rows, all or none, and sets each
// waiter's id.
func (s *Store) writeAuditBatch(ctx context.Context, batch []*auditWaiter) error {
	if s.d == dialectPostgres {
		// One statement, atomic on its own: no BEGIN and COMMIT round
		// trips.
		return s.queries.appendAuditArrays(ctx, batch)
	}
	return s.Tx(ctx, func(q store.Queries) error {
		return q.(*queries).appendAuditBatch(ctx, batch)
	})
}

// auditInserts[k] inserts 1<<k audit rows in one statement and returns
// their ids (SQLite). A batch is written as a sum of these sizes, so there
// are only a few statement texts (each prepared once) and one statement
// per size instead of one per row. OR ROLLBACK: a constraint failure
// rolls the whole batch back (as any error does), so SQLite keeps no
// statement journal for the multi-row INSERT (it spilled to a temporary
// file, a write per page).
var auditInserts = func() []string {
	out := make([]string, bits.Len(maxAuditBatch))
	for k := range out {
		var sb strings.Builder
		sb.WriteString(`INSERT OR ROLLBACK INTO audit_log (ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip) VALUES `)
		for i := range 1 << k {
			if i > 0 {
				sb.WriteString(", ")
			}
			n := 8 * i
			fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
		}
		sb.WriteString(" RETURNING id")
		out[k] = sb.String()
	}
	return out
}()

// appendAuditBatch inserts the batch's rows, in order, and sets each
// waiter's id (SQLite, in a transaction). A multi-row INSERT inserts its
// rows in the order of its VALUES list and each row's id is larger than
// every earlier one (AUTOINCREMENT), so the ids sorted ascending belong to
// the rows in list order, whatever order RETURNING answers in.
func (q *queries) appendAuditBatch(ctx context.Context, batch []*auditWaiter) error {
	for len(batch) > 0 {
		k := bits.Len(uint(len(batch))) - 1
		chunk := batch[:1<<k]
		batch = batch[len(chunk):]
		args := make([]any, 0, 8*len(chunk))
		for _, w := range chunk {
			e := w.e
			args = append(args, toMS(e.Time), string(e.Owner), string(e.Agent), e.Service, e.Action, e.Result, e.Detail, e.ClientIP)
		}
		if err := q.insertReturningIDs(ctx, chunk, auditInserts[k], args); err != nil {
			return err
		}
	}
	return nil
}

// auditInsertArrays inserts the rows given as eight PostgreSQL arrays, one
// per column, in array order, and returns their ids: one statement
// whatever the batch's size.
const auditInsertArrays = `INSERT INTO audit_log (ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip)
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
	RETURNING id`

// appendAuditArrays is appendAuditBatch for PostgreSQL in one statement
// (unnest yields the rows in array order; ids are assigned in that order).
func (q *queries) appendAuditArrays(ctx context.Context, batch []*auditWaiter) error {
	ts := make([]int64, len(batch))
	cols := make([][]string, 7)
	for i := range cols {
		cols[i] = make([]string, len(batch))
	}
	for i, w := range batch {
		e := w.e
		ts[i] = toMS(e.Time)
		for c, v := range []string{string(e.Owner), string(e.Agent), e.Service, e.Action, e.Result, e.Detail, e.ClientIP} {
			cols[c][i] = v
		}
	}
	return q.insertReturningIDs(ctx, batch, auditInsertArrays, []any{ts, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6]})
}

// insertReturningIDs runs query, which inserts the rows of ws in order and
// returns their ids, and gives each waiter its id: the ids ascending, in
// the rows' order.
func (q *queries) insertReturningIDs(ctx context.Context, ws []*auditWaiter, query string, args []any) error {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return classify("append audit", err)
	}
	defer rows.Close()
	ids := make([]int64, 0, len(ws))
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return classify("append audit", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return classify("append audit", err)
	}
	if len(ids) != len(ws) {
		return fmt.Errorf("sqlstore: append audit: %d rows inserted, %d ids returned", len(ws), len(ids))
	}
	slices.Sort(ids)
	for i, w := range ws {
		w.id = ids[i]
	}
	return nil
}

package sqlstore

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// The write probe keeps one row per host, keyed by the host name, so
// several backends sharing a database each refresh their own row.
func TestProbeWriteRowPerHost(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skipf("no host name: %v", err)
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := open(t, e.newDSN(t))
			if err := s.ProbeWrite(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s, `SELECT COUNT(*) FROM health_probe WHERE host = $1`, host); n != 1 {
				t.Fatalf("%d probe rows for host %q, want 1", n, host)
			}
		})
	}
}

// waitAudit spins until the audit group holds a leader and pending
// queued rows.
func waitAudit(s *Store, pending int) {
	for {
		s.audit.mu.Lock()
		ok := s.audit.busy && len(s.audit.pending) == pending
		s.audit.mu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
}

// One bad row in a shared audit batch does not fail the others: its
// caller gets the error, the other callers get the ids of their stored
// rows.
func TestAuditGroupCommitIsolatesBadRow(t *testing.T) {
	s := open(t, engines[0].newDSN(t)) // SQLite: a trigger refuses the bad row
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, `CREATE TRIGGER refuse_bad BEFORE INSERT ON audit_log
		WHEN NEW.detail = 'bad' BEGIN SELECT RAISE(ABORT, 'bad row refused'); END`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		id  int64
		err error
	}
	appendRow := func(detail string) chan result {
		ch := make(chan result, 1)
		go func() {
			id, err := s.AppendAudit(ctx, agentkeys.AuditEvent{Time: time.Now(), Owner: "0xo", Agent: "0xa",
				Service: "s", Action: "read", Result: "ok", Detail: detail})
			ch <- result{id, err}
		}()
		return ch
	}
	// The first caller leads alone and waits at the writer gate, held
	// here, while the next two queue: they form the next batch.
	s.gate <- struct{}{}
	first := appendRow("first")
	waitAudit(s, 0)
	bad := appendRow("bad")
	waitAudit(s, 1)
	good := appendRow("good")
	waitAudit(s, 2)
	<-s.gate

	if r := <-first; r.err != nil || r.id == 0 {
		t.Fatalf("first row: id %d, %v", r.id, r.err)
	}
	if r := <-bad; r.err == nil || r.id != 0 {
		t.Fatalf("bad row: id %d, %v; want an error", r.id, r.err)
	}
	r := <-good
	if r.err != nil || r.id == 0 {
		t.Fatalf("good row batched with a bad one: id %d, %v", r.id, r.err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM audit_log WHERE id = $1 AND detail = 'good'`, r.id); n != 1 {
		t.Fatalf("good row: id %d does not hold it", r.id)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM audit_log`); n != 2 {
		t.Fatalf("%d rows stored, want 2", n)
	}
}

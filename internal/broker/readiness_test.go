package broker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestReadyzReportsFullLedgerDisk: readiness used to check only that the
// ledger answered reads, so it said ready while every mint failed on a full
// disk. Now /readyz names the audit ledger as failing exactly when mints
// fail, and recovers with the disk.
func TestReadyzReportsFullLedgerDisk(t *testing.T) {
	dir := testkit.Tmpfs(t, "2m")
	ledger, err := audit.OpenWith(context.Background(), filepath.Join(dir, "audit.sqlite"), audit.Options{ProbeCache: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	h := newHarness(t, withSink(ledger))
	tok, _ := h.backend.newSession("master", nil)
	if r := h.do("GET", PathReadyz, "", ""); r.status != 200 {
		t.Fatalf("empty volume: %d %s", r.status, r.body)
	}
	for i := 0; i < 100_000; i++ {
		if ledger.Append(context.Background(), audit.Record{Outcome: audit.OutcomeOK, RequesterWallet: "0xfill", RequestID: "filler"}) != nil {
			break
		}
	}
	h.mintJWT(tok).wantErrorf(t, 500, KindAuditError, "mint on a full ledger volume")
	r := h.do("GET", PathReadyz, "", "")
	m := r.json(t)
	if r.status != 503 || m["audit_ok"] != false || m["backend_ok"] != true || m["keys_ok"] != true {
		t.Fatalf("readyz on a full ledger volume: %d %s", r.status, r.body)
	}
	if f, _ := m["failed"].([]any); len(f) != 1 || f[0] != "audit" {
		t.Fatalf("readyz should name only the audit ledger: %s", r.body)
	}
	testkit.GrowTmpfs(t, dir, "8m")
	if r := h.do("GET", PathReadyz, "", ""); r.status != 200 {
		t.Fatalf("readyz after the volume grew: %d %s", r.status, r.body)
	}
	if r := h.mintJWT(tok); r.status != 200 {
		t.Fatalf("mint after the volume grew: %d %s", r.status, r.body)
	}
}

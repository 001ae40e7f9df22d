package audit_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// TestChainNameLength: a chain name may be as long as a host name (253
// bytes) and no longer; a ledger opens on a 253-byte chain, appends to it
// and verifies, and refuses a 254-byte one.
func TestChainNameLength(t *testing.T) {
	ctx := context.Background()
	longest := strings.Repeat("a", 253)
	s, err := audit.OpenWith(ctx, filepath.Join(t.TempDir(), "audit.sqlite"), audit.Options{Chain: longest})
	if err != nil {
		t.Fatalf("253-byte chain refused: %v", err)
	}
	defer s.Close()
	if s.Chain() != longest {
		t.Fatalf("Chain() = %q", s.Chain())
	}
	if err := s.Append(ctx, sample(1)); err != nil {
		t.Fatal(err)
	}
	last, ok, err := s.Last(ctx)
	if err != nil || !ok || last.Chain != longest {
		t.Fatalf("last row chain %q ok=%v err=%v", last.Chain, ok, err)
	}
	if _, err := s.Verify(ctx); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if _, err := audit.OpenWith(ctx, filepath.Join(t.TempDir(), "audit.sqlite"), audit.Options{Chain: longest + "a"}); err == nil || !strings.Contains(err.Error(), "invalid chain name") {
		t.Fatalf("254-byte chain: err = %v", err)
	}
	if audit.ValidChain("") || !audit.ValidChain("a") || !audit.ValidChain(longest) || audit.ValidChain(longest+"a") {
		t.Fatal("ValidChain length bounds are not [1, 253]")
	}
}

// TestLeadingNULIsReplaced: a NUL byte at the very start of a field (a
// client-chosen request id, say) is replaced like one anywhere else, so
// PostgreSQL takes the row and the chain verifies.
func TestLeadingNULIsReplaced(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := open(t, e.dsn(t))
		r := sample(1)
		r.RequestID = "\x00req"
		r.Detail = "\x00detail"
		if err := s.Append(ctx, r); err != nil {
			t.Fatalf("append: %v", err)
		}
		last, ok, err := s.Last(ctx)
		if err != nil || !ok {
			t.Fatalf("last: ok=%v err=%v", ok, err)
		}
		if last.RequestID != "\uFFFDreq" || last.Detail != "\uFFFDdetail" {
			t.Fatalf("stored request_id %q detail %q, want the NUL replaced by U+FFFD", last.RequestID, last.Detail)
		}
		if _, err := s.Verify(ctx); err != nil {
			t.Fatalf("verify: %v", err)
		}
	})
}

// TestCheckpointErrorNamesTheLine: an operator fixing a checkpoint file is
// told which line is wrong, counting blank lines.
func TestCheckpointErrorNamesTheLine(t *testing.T) {
	_, err := audit.ParseCheckpoints(strings.NewReader("\n\nnot a checkpoint\n"))
	if err == nil || !strings.Contains(err.Error(), "checkpoint line 3:") {
		t.Fatalf("err = %v, want it to name line 3", err)
	}
}

// TestCheckpointDefaults: with a signer and no checkpoint policy, a
// checkpoint is due after 1000 rows or a minute, not after every row.
func TestCheckpointDefaults(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	s, err := audit.OpenWith(context.Background(), filepath.Join(t.TempDir(), "audit.sqlite"), audit.Options{
		Signer: newSigner(t), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 3)
	if cks, err := s.Checkpoints(context.Background()); err != nil || len(cks) != 0 {
		t.Fatalf("checkpoints after 3 rows under the default policy: %d %v", len(cks), err)
	}
}

// TestPingCachesSuccessByDefault: readiness probes hit the ledger at most
// once per 2 s by default; a failure after that shows on the next probe
// past the cache.
func TestPingCachesSuccessByDefault(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Unix(1_900_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := audit.OpenWith(ctx, filepath.Join(t.TempDir(), "audit.sqlite"), audit.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec("DROP TABLE mint_log_probe"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping within the 2 s cache probed again: %v", err)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping past the cache did not notice the broken ledger")
	}
}

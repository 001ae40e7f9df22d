package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
)

// TestStuckReplicaDoesNotBlockOthers: two replicas share a PostgreSQL
// ledger. Replica A is frozen in the middle of an append — it holds its
// chain head's row lock and does nothing (SIGSTOP, a network partition) —
// for 4 s. Replica B keeps appending, and no append of B waits more than
// 1 s. With one chain head shared by all replicas, every append of B waited
// for the whole freeze.
func TestStuckReplicaDoesNotBlockOthers(t *testing.T) {
	a, b := replicas(t, sqldbtest.PostgresDSN(t))
	appendN(t, a, 1)
	appendN(t, b, 1)

	// Freeze A holding its head lock exactly as its writer does.
	tx, err := a.DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := tx.QueryRow("SELECT last_id FROM mint_log_chains WHERE chain = $1 FOR UPDATE", "replica-a").Scan(&id); err != nil {
		t.Fatal(err)
	}
	const freeze = 4 * time.Second
	thaw := time.AfterFunc(freeze, func() { tx.Rollback() })
	defer thaw.Stop()

	// A's own appends queue behind the freeze; they must not hold up B.
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Append(ctx, sample(100)); err != nil {
			t.Errorf("replica A after the thaw: %v", err)
		}
	})

	start := time.Now()
	var worst time.Duration
	n := 0
	for time.Since(start) < freeze {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := b.Append(ctx, sample(n))
		cancel()
		if err != nil {
			t.Fatalf("replica B append during the freeze: %v", err)
		}
		worst = max(worst, time.Since(t0))
		n++
	}
	wg.Wait()
	t.Logf("replica B: %d appends during a %v freeze of replica A, slowest %v", n, freeze, worst)
	if worst > time.Second {
		t.Fatalf("an append of replica B waited %v for frozen replica A", worst)
	}
	if rep, err := b.Verify(context.Background()); err != nil || rep.Heads["replica-a"].ID != 2 {
		t.Fatalf("verify after the freeze: %+v %v", rep, err)
	}
}

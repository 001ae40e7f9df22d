package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
)

// BenchmarkFrozenReplica measures what a frozen replica costs the others on
// a shared PostgreSQL ledger: replica B's append rate while replica A holds
// its chain head for a second, relative to B's rate before (frozen-ratio,
// 1 = unaffected), and B's slowest append meanwhile.
func BenchmarkFrozenReplica(b *testing.B) {
	ra, rb := replicas(b, sqldbtest.PostgresDSN(b))
	appendN(b, ra, 1)
	rate := func(d time.Duration) (float64, time.Duration) {
		n, worst, start := 0, time.Duration(0), time.Now()
		for time.Since(start) < d {
			t0 := time.Now()
			if err := rb.Append(context.Background(), sample(n)); err != nil {
				b.Fatal(err)
			}
			worst = max(worst, time.Since(t0))
			n++
		}
		return float64(n) / time.Since(start).Seconds(), worst
	}
	for b.Loop() {
		before, _ := rate(time.Second)
		tx, err := ra.DB().BeginTx(context.Background(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec("SELECT 1 FROM mint_log_chains WHERE chain = 'replica-a' FOR UPDATE"); err != nil {
			b.Fatal(err)
		}
		during, worst := rate(time.Second)
		tx.Rollback()
		b.ReportMetric(during/before, "frozen-ratio")
		b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
	}
}

package backend

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkCredentialReadWithAwaiters measures GET /credential/read on
// SQLite while openers hold long polls on /auth-request/await: with none,
// and with 500. Each pass reports the p90 latency as p90-ms; make bench
// prints both and their ratio.
func BenchmarkCredentialReadWithAwaiters(b *testing.B) {
	for _, n := range []int{0, 500} {
		b.Run(fmt.Sprintf("awaiters=%d", n), func(b *testing.B) {
			var cs *countingStore
			e := newEnv(b, func(o *Options) {
				cs = &countingStore{Store: o.Store}
				o.Store = cs
				o.Frontdoor.MaxAwaitersPerIP = -1
				o.AwaitWindow = time.Hour
			})
			m := e.master("bench")
			a := e.agent(m, []string{"x"}, false)
			if err := e.client.StoreCredential(ctx, m.Token, a.Wallet, "x", secret()); err != nil {
				b.Fatal(err)
			}
			hold, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			for range n {
				o := e.open(pairReq("x"), "")
				wg.Go(func() { getCtx(hold, e.http.URL+"/auth-request/await?request_id="+o.ID, o.AwaitToken) })
			}
			deadline := time.Now().Add(time.Minute)
			for cs.requestReads.Load() < int64(n) {
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d awaiters started", cs.requestReads.Load(), n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "x"); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
		})
	}
}

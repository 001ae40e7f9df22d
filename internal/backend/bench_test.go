package backend

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/loadbench"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
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
			e.storeCredential(m.Token, a.Wallet, "x", secret())
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

// benchEngines are the databases a benchmark runs on: a SQLite file, and a
// PostgreSQL database of its own (dropped at the end) when
// AGENTKEYS_TEST_POSTGRES_URL answers.
var benchEngines = []struct {
	name string
	dsn  func(testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "backend.db") }},
	{"postgres", sqldbtest.PostgresDSN},
}

// BenchmarkCredentialRead measures GET /credential/read over loopback at
// 16 and 64 concurrent clients, each an agent with its own session, on
// SQLite and on PostgreSQL (when AGENTKEYS_TEST_POSTGRES_URL answers):
// reads/s, p50-ms and p99-ms. Every read appends its durable audit row
// before the value leaves. make bench compares it with the broker's mint.
func BenchmarkCredentialRead(b *testing.B) {
	for _, eng := range benchEngines {
		for _, clients := range []int{16, 64} {
			b.Run(fmt.Sprintf("engine=%s/clients=%d", eng.name, clients), func(b *testing.B) {
				// Access lines are discarded, as in the broker's mint
				// benchmark it is compared with (the test logger keeps
				// every line in memory for assertions).
				e := newEnvDSN(b, eng.dsn(b), func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) })
				m := e.master("bench")
				urls := make([]string, clients)
				toks := make([]string, clients)
				for i := range clients {
					a := e.agent(m, []string{"x"}, false)
					e.storeCredential(m.Token, a.Wallet, "x", secret())
					urls[i] = e.http.URL + "/credential/read?service=x&agent_id=" + string(a.Wallet)
					toks[i] = "Bearer " + string(a.Token)
				}
				hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}}
				defer hc.CloseIdleConnections()
				loadbench.Run(b, clients, "reads/s", func(c int) error {
					req, _ := http.NewRequest(http.MethodGet, urls[c], nil)
					req.Header.Set("Authorization", toks[c])
					return loadbench.Do(hc, req, "read")
				})
			})
		}
	}
}

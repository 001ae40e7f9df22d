// Package loadbench runs a benchmark's operations from many concurrent
// clients and reports throughput and latency percentiles. It is for
// benchmarks only.
package loadbench

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Result is one measured configuration.
type Result struct {
	PerSec   float64
	P50, P99 time.Duration
}

// Run runs b.N operations spread over n concurrent clients and reports
// throughput as unit (e.g. "mints/s") and the p50 and p99 latencies as
// p50-ms and p99-ms.
func Run(b *testing.B, n int, unit string, op func(client int) error) Result {
	var next atomic.Int64
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for c := range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := op(c); err != nil {
					failed.Store(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	r := Result{PerSec: float64(b.N) / elapsed.Seconds(), P50: pct(0.50), P99: pct(0.99)}
	b.ReportMetric(r.PerSec, unit)
	b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
	return r
}

// Do sends req on c, drains and closes the answer's body (so the connection
// is reused) and returns an error unless the answer is 200; what names the
// operation in that error.
func Do(c *http.Client, req *http.Request, what string) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", what, resp.StatusCode)
	}
	return nil
}

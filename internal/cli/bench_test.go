package cli

import (
	"os/exec"
	"sort"
	"testing"
	"time"
)

// BenchmarkRunTrue measures `agentkeys run <agent> -- true` end to end
// against a backend on loopback (target: ≤ 8 ms median), with two
// credentials to inject. It reports the median as ms/median.
func BenchmarkRunTrue(b *testing.B) {
	w := newWorld(b)
	w.initMaster()
	w.must("agent", "create", "bot", "--services", "openrouter,github")
	w.mustIn(newSecret(), "store", "bot", "openrouter")
	w.mustIn(newSecret(), "store", "bot", "github")
	env := w.env()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		cmd := exec.Command(binPath, "run", "bot", "--", "true")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms/median")
}

package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentkeys/agentkeys/internal/services"
)

// BenchmarkGateway measures what the gateway adds on loopback against a
// direct call to the same HTTPS API fixture, in the same run: the latency
// of a small request (p50 and p99 over 2000 sequential requests, each
// side on a kept-alive connection) and the throughput of a streamed
// response (SSE-like 1 KiB lines, 32 MiB). Targets: at most 1 ms added
// p50, and at least 80 % of the direct throughput.
func BenchmarkGateway(b *testing.B) {
	const (
		requests    = 2000
		streamBytes = 32 << 20
	)
	line := []byte("data: " + strings.Repeat("x", 1017) + "\n\n")
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			for sent := 0; sent < streamBytes; sent += len(line) {
				w.Write(line)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c1","choices":[{"message":{"content":"ok"}}]}`)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()
	key := newKey(b)
	g, err := New(Options{
		Services:  []services.Service{{Name: "openai", APIBase: up.URL, Auth: services.Bearer}},
		Source:    SourceFunc(func(context.Context, string) ([]byte, error) { return []byte(key), nil }),
		Audit:     &memAudit{got: make(chan struct{}, 1)},
		Transport: up.Client().Transport,
		Rate:      rate.Inf,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	gw := httptest.NewServer(g)
	defer gw.Close()
	direct := up.Client()
	via := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	get := func(c *http.Client, url string) (time.Duration, int64) {
		start := time.Now()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return time.Since(start), n
	}
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	for b.Loop() {
		var dl, gl []time.Duration
		for range 50 { // warm both paths' connections
			get(direct, up.URL+"/v1/chat/completions")
			get(via, gw.URL+"/openai/v1/chat/completions")
		}
		for range requests {
			d, _ := get(direct, up.URL+"/v1/chat/completions")
			dl = append(dl, d)
			d, _ = get(via, gw.URL+"/openai/v1/chat/completions")
			gl = append(gl, d)
		}
		dp50, dp99, gp50, gp99 := pct(dl, .5), pct(dl, .99), pct(gl, .5), pct(gl, .99)
		b.ReportMetric(dp50, "direct-p50-ms")
		b.ReportMetric(gp50-dp50, "added-p50-ms")
		b.ReportMetric(gp99-dp99, "added-p99-ms")

		dd, dn := get(direct, up.URL+"/v1/stream")
		gd, gn := get(via, gw.URL+"/openai/v1/stream")
		if dn != gn {
			b.Fatalf("stream lengths differ: direct %d, gateway %d", dn, gn)
		}
		dm, gm := float64(dn)/dd.Seconds()/1e6, float64(gn)/gd.Seconds()/1e6
		b.ReportMetric(dm, "direct-MB/s")
		b.ReportMetric(gm, "gateway-MB/s")
		b.ReportMetric(gm/dm, "throughput-ratio")
	}
}

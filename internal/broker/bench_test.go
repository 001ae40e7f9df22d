package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/oidc"
)

// benchResult is one measured configuration.
type benchResult struct {
	perSec   float64
	p50, p99 time.Duration
}

// runClients runs b.N operations spread over n concurrent clients and
// reports throughput and latency percentiles.
func runClients(b *testing.B, n int, op func(client int) error) benchResult {
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
	r := benchResult{perSec: float64(b.N) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
	b.ReportMetric(r.perSec, "mints/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	return r
}

// BenchmarkMintOIDCJWT compares the HTTP mint path (backend validation on
// loopback on every mint, durable SQLite audit with synchronous=FULL) with
// the raw limit measured in the same run (ES256 sign + durable audit append,
// nothing else), at 1, 16 and 64 concurrent clients. Each clients=N pair
// ends with a JSON line for machines.
func BenchmarkMintOIDCJWT(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		var raw, viaHTTP benchResult
		b.Run(fmt.Sprintf("raw/clients=%d", clients), func(b *testing.B) {
			dir := b.TempDir()
			iss, err := oidc.NewIssuer(oidc.Config{Issuer: "https://oidc.bench.invalid", TTL: 5 * time.Minute, KeyFile: filepath.Join(dir, "keys.json")})
			if err != nil {
				b.Fatal(err)
			}
			sink, err := audit.Open(context.Background(), filepath.Join(dir, "audit.sqlite"))
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			wallet := string(agentkeys.NewWallet())
			hash := string(agentkeys.NewToken().Hash())
			raw = runClients(b, clients, func(int) error {
				tok, err := iss.Mint(oidc.Subject{Wallet: wallet, Access: oidc.AccessWrite})
				if err != nil {
					return err
				}
				return sink.Append(context.Background(), audit.Record{
					RequesterTokenHash: hash, RequesterWallet: wallet, RequestedRole: audit.RoleOIDCJWT,
					DurationSeconds: 300, STSSessionName: tok.KID, Outcome: audit.OutcomeOK,
					CredentialID: tok.ID, CredentialExpiresAt: tok.Expires.Unix(),
				})
			})
		})
		b.Run(fmt.Sprintf("http/clients=%d", clients), func(b *testing.B) {
			dir := b.TempDir()
			backend := newFakeBackend(b)
			cfg := Defaults()
			cfg.Issuer = "https://oidc.bench.invalid"
			cfg.BackendURL = backend.URL
			cfg.KeyFile = filepath.Join(dir, "keys.json")
			cfg.AuditDB = filepath.Join(dir, "audit.sqlite")
			cfg.RatePerBearer, cfg.RatePerIP = 0, 0
			cfg.ValidateCache = benchValidateCache
			if err := cfg.Validate(); err != nil {
				b.Fatal(err)
			}
			iss, err := oidc.NewIssuer(oidc.Config{Issuer: cfg.Issuer, TTL: cfg.JWTTTL, KeyFile: cfg.KeyFile})
			if err != nil {
				b.Fatal(err)
			}
			sink, err := audit.Open(context.Background(), cfg.AuditDB)
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			srv := httptest.NewServer(NewServer(cfg, Deps{Validator: NewHTTPValidator(cfg.BackendURL, cfg.BackendTimeout), Issuer: iss, Audit: sink}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}}
			tokens := make([]string, clients)
			for i := range tokens {
				tokens[i], _ = backend.newSession("master", nil)
			}
			viaHTTP = runClients(b, clients, func(c int) error {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+PathMintJWT, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[c])
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("mint answered %d", resp.StatusCode)
				}
				return nil
			})
		})
		if raw.perSec > 0 && viaHTTP.perSec > 0 {
			line, _ := json.Marshal(map[string]any{
				"bench": "broker_mint_oidc_jwt", "clients": clients,
				"raw_mints_per_s": int(raw.perSec), "http_mints_per_s": int(viaHTTP.perSec),
				"ratio":       float64(int(viaHTTP.perSec/raw.perSec*1000)) / 1000,
				"http_p50_ms": float64(viaHTTP.p50.Microseconds()) / 1000, "http_p99_ms": float64(viaHTTP.p99.Microseconds()) / 1000,
				"raw_p99_ms": float64(raw.p99.Microseconds()) / 1000,
			})
			b.Logf("clients=%d: HTTP %.0f mints/s (p50 %v, p99 %v) = %.0f%% of raw %.0f mints/s\n%s",
				clients, viaHTTP.perSec, viaHTTP.p50, viaHTTP.p99, 100*viaHTTP.perSec/raw.perSec, raw.perSec, line)
		}
	}
}

// benchValidateCache is the broker default: a session is re-validated with
// the backend at most every 2 s.
var benchValidateCache = DefaultValidateCache

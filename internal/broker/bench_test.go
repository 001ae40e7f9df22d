package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/loadbench"
	"github.com/agentkeys/agentkeys/internal/oidc"
)

// runClients runs b.N mints spread over n concurrent clients.
func runClients(b *testing.B, n int, op func(client int) error) loadbench.Result {
	return loadbench.Run(b, n, "mints/s", op)
}

// BenchmarkMintOIDCJWT compares the HTTP mint path (backend validation on
// loopback on every mint, durable SQLite audit with synchronous=FULL) with
// the raw limit measured in the same run (ES256 sign + durable audit append,
// nothing else), at 1, 16 and 64 concurrent clients. Each clients=N pair
// ends with a JSON line for machines.
func BenchmarkMintOIDCJWT(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		var raw, viaHTTP loadbench.Result
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
			backend := newFakeBackend(b)
			brokerURL, _ := loopbackBroker(b, backend.URL, "https://oidc.bench.invalid", func(cfg *Config) { cfg.ValidateCache = benchValidateCache })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}}
			tokens := make([]string, clients)
			for i := range tokens {
				tokens[i], _ = backend.newSession("master", nil)
			}
			viaHTTP = runClients(b, clients, func(c int) error {
				req, _ := http.NewRequest(http.MethodPost, brokerURL+PathMintJWT, nil)
				req.Header.Set("Authorization", "Bearer "+tokens[c])
				return loadbench.Do(client, req, "mint")
			})
		})
		if raw.PerSec > 0 && viaHTTP.PerSec > 0 {
			line, _ := json.Marshal(map[string]any{
				"bench": "broker_mint_oidc_jwt", "clients": clients,
				"raw_mints_per_s": int(raw.PerSec), "http_mints_per_s": int(viaHTTP.PerSec),
				"ratio":       float64(int(viaHTTP.PerSec/raw.PerSec*1000)) / 1000,
				"http_p50_ms": float64(viaHTTP.P50.Microseconds()) / 1000, "http_p99_ms": float64(viaHTTP.P99.Microseconds()) / 1000,
				"raw_p99_ms": float64(raw.P99.Microseconds()) / 1000,
			})
			b.Logf("clients=%d: HTTP %.0f mints/s (p50 %v, p99 %v) = %.0f%% of raw %.0f mints/s\n%s",
				clients, viaHTTP.PerSec, viaHTTP.P50, viaHTTP.P99, 100*viaHTTP.PerSec/raw.PerSec, raw.PerSec, line)
		}
	}
}

// benchValidateCache is the broker default: a session is re-validated with
// the backend at most every 2 s.
var benchValidateCache = DefaultValidateCache

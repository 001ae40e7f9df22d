package broker

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
)

// realBackends starts n agentkeys-backend replicas (real HTTP servers) over
// one database of the given engine and returns their URLs.
func realBackends(t *testing.T, engine string, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var dsn string
	switch engine {
	case "sqlite":
		dsn = filepath.Join(dir, "backend.db")
	case "postgres":
		dsn = sqldbtest.PostgresDSN(t)
	}
	sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for range n {
		st, err := sqlstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		urls = append(urls, backendtest.Serve(t, backend.Options{Store: st, Sealer: sealer}))
	}
	return urls
}

// brokerReplica starts a broker (real HTTP server, default validation
// cache) against backendURL.
func brokerReplica(t *testing.T, backendURL string) string {
	t.Helper()
	url, cfg := loopbackBroker(t, backendURL, "https://oidc.revocation.invalid", nil)
	if cfg.ValidateCache <= 0 {
		t.Fatal("the default configuration has no validation cache: this test would prove nothing")
	}
	return url
}

type mintResult struct {
	start time.Time
	ok    bool
}

// hammer mints from workers goroutines, round-robin over the brokers and
// the bearers, until stop is closed, and returns every attempt.
func hammer(t *testing.T, brokers []string, bearers []agentkeys.Token, workers int, stop <-chan struct{}) func() []mintResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers + 4}, Timeout: 10 * time.Second}
	var (
		mu  sync.Mutex
		all []mintResult
		wg  sync.WaitGroup
		n   atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			var mine []mintResult
			defer func() { mu.Lock(); all = append(all, mine...); mu.Unlock() }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(n.Add(1))
				b, tok := brokers[i%len(brokers)], bearers[(i/len(brokers))%len(bearers)]
				req, _ := http.NewRequest(http.MethodPost, b+PathMintJWT, nil)
				req.Header.Set("Authorization", "Bearer "+tok.Reveal())
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("mint: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK, http.StatusUnauthorized:
				default:
					t.Errorf("mint answered %d", resp.StatusCode)
					return
				}
				mine = append(mine, mintResult{start: start, ok: resp.StatusCode == http.StatusOK})
			}
		})
	}
	return func() []mintResult { wg.Wait(); return all }
}

// TestNoMintAfterRevokeAcrossReplicas: two broker replicas with their
// default validation cache, many concurrent mints with an agent session
// and a broker token derived from it,
// and a revocation (of the session itself, of its parent agent, of the
// master session it descends from). No mint that starts after the revoke
// has answered 200 may return a credential, on either broker.
func TestNoMintAfterRevokeAcrossReplicas(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			backends := realBackends(t, engine, 2)
			if engine == "sqlite" {
				backends = backends[:1] // one SQLite file has one backend
			}
			brokers := []string{brokerReplica(t, backends[0]), brokerReplica(t, backends[len(backends)-1])}
			master, err := backendclient.New(backends[0])
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			scope := agentkeys.Scope{Services: []string{DefaultScopeService}}
			for _, target := range []string{"session", "parent agent", "master session"} {
				t.Run(target, func(t *testing.T) {
					m, err := master.CreateSession(ctx, "alice-"+engine)
					if err != nil {
						t.Fatal(err)
					}
					parent, err := master.CreateChild(ctx, m.Token, scope, 0)
					if err != nil {
						t.Fatal(err)
					}
					agent, err := master.CreateChild(ctx, parent.Token, scope, 0)
					if err != nil {
						t.Fatal(err)
					}
					revokee := map[string]agentkeys.Token{"session": agent.Token, "parent agent": parent.Token, "master session": m.Token}[target]
					// Mint with the session itself and with a broker token
					// derived from it (what the CLI and the daemon send).
					bt, _, err := master.BrokerToken(ctx, agent.Token, 0)
					if err != nil {
						t.Fatal(err)
					}

					stop := make(chan struct{})
					wait := hammer(t, brokers, []agentkeys.Token{agent.Token, bt}, 8, stop)
					time.Sleep(300 * time.Millisecond) // both brokers cache the agent's validation
					if _, err := master.RevokeSession(ctx, m.Token, revokee); err != nil {
						close(stop)
						wait()
						t.Fatal(err)
					}
					acked := time.Now()
					time.Sleep(1500 * time.Millisecond) // the old cache's window, and then some
					close(stop)
					results := wait()

					var before, after, leaked int
					for _, r := range results {
						switch {
						case r.start.Before(acked) && r.ok:
							before++
						case !r.start.Before(acked):
							after++
							if r.ok {
								leaked++
							}
						}
					}
					t.Logf("%s: %d credentials before the revoke answered, %d mints started after it, %d of those returned a credential",
						target, before, after, leaked)
					if before == 0 || after == 0 {
						t.Fatalf("the test did not exercise both sides of the revoke (%d before, %d after)", before, after)
					}
					if leaked != 0 {
						t.Fatalf("%d mints that started after the revoke's 200 returned a credential", leaked)
					}
				})
			}
		})
	}
}

package backend

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/store"
)

// call sends one authenticated JSON request; safe from any goroutine.
func (e *testEnv) call(method, path string, tok agentkeys.Token, body any) (int, map[string]any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(string(b)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, nil
}

// TestNoWriteOutlivesTeardown races every write that puts data under an
// agent (a credential stored by the master and by the agent itself, an
// identity link, a mock inbox) against that agent's teardown, many rounds
// on both engines, and an approval by which the agent mints a sub-agent. Whatever the interleaving, once the teardown has
// answered 200 nothing of the agent is left: each write either failed or
// committed before the teardown and was removed by it, which the
// teardown's credentials_removed count must confirm.
func TestNoWriteOutlivesTeardown(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	sqldbtest.ForEach(t, func(t *testing.T, eng sqldbtest.Engine) {
		e := newEnvDSN(t, eng.NewDSN(t), func(o *Options) { o.MockInbox = true })
		m := e.master("teardown-race-" + eng.Name)
		value := base64.StdEncoding.EncodeToString(secret())
		var survived, storedThenRemoved int
		for round := range rounds {
			a := e.agent(m, []string{"openai", "anthropic"}, false)
			alias := fmt.Sprintf("race-%s-%d", eng.Name, round)
			type outcome struct {
				what   string
				status int
				body   map[string]any
				err    error
			}
			writes := []struct {
				what string
				tok  agentkeys.Token
				path string
				body any
			}{
				{"master stores", m.Token, "/credential/store", map[string]string{"agent_id": string(a.Wallet), "service": "openai", "ciphertext": value}},
				{"agent stores", a.Token, "/credential/store", map[string]string{"agent_id": string(a.Wallet), "service": "anthropic", "ciphertext": value}},
				{"master links", m.Token, "/identity/link", map[string]string{"identity_type": "alias", "identity_value": alias, "wallet_address": string(a.Wallet)}},
				{"agent provisions inbox", a.Token, "/mock/inbox/provision", map[string]string{"agent_id": string(a.Wallet)}},
			}
			// The agent also approves a pairing: an agent it mints must
			// fall under the teardown too.
			o := e.open(pairReq("openai"), "")
			writes = append(writes, struct {
				what string
				tok  agentkeys.Token
				path string
				body any
			}{"agent approves pair", a.Token, "/auth-request/approve", map[string]string{"pair_code": o.PairCode, "otp": o.OTP}})
			start := make(chan struct{})
			results := make(chan outcome, len(writes)+1)
			var wg sync.WaitGroup
			for _, w := range writes {
				wg.Go(func() {
					<-start
					st, body, err := e.call(http.MethodPost, w.path, w.tok, w.body)
					results <- outcome{w.what, st, body, err}
				})
			}
			wg.Go(func() {
				<-start
				st, body, err := e.call(http.MethodDelete, "/credential/teardown", m.Token, map[string]string{"agent_id": string(a.Wallet)})
				results <- outcome{"teardown", st, body, err}
			})
			close(start)
			wg.Wait()
			close(results)

			var down outcome
			var minted agentkeys.Wallet
			stored := 0
			for r := range results {
				if r.err != nil {
					t.Fatalf("round %d: %s: %v", round, r.what, r.err)
				}
				switch {
				case r.what == "teardown":
					down = r
				case r.status == http.StatusOK && strings.HasSuffix(r.what, "stores"):
					stored++
				case r.status == http.StatusOK && r.what == "agent approves pair":
					minted = agentkeys.Wallet(r.body["wallet"].(string))
				}
			}
			if down.status != http.StatusOK {
				t.Fatalf("round %d: teardown → %d %v", round, down.status, down.body)
			}
			// After the teardown's 200 nothing of the agent remains.
			for _, svc := range []string{"openai", "anthropic"} {
				if _, err := e.store.Credential(ctx, a.Wallet, svc); !errors.Is(err, store.ErrNotFound) {
					survived++
					t.Errorf("round %d: credential %s of the torn-down agent exists after the teardown (err=%v)", round, svc, err)
				}
			}
			if l, err := e.store.ResolveIdentity(ctx, "alias", alias); !errors.Is(err, store.ErrNotFound) {
				survived++
				t.Errorf("round %d: alias still names %s after the teardown (err=%v)", round, l.Wallet, err)
			}
			if in, err := e.store.Inboxes(ctx, a.Wallet); err != nil || len(in) != 0 {
				survived++
				t.Errorf("round %d: %d inboxes of the torn-down agent exist after the teardown (err=%v)", round, len(in), err)
			}
			if minted != "" {
				if w, err := e.store.Wallet(ctx, minted); err != nil || !w.TornDown {
					survived++
					t.Errorf("round %d: agent %s minted by an approval outlived its parent's teardown (err=%v)", round, minted, err)
				}
			}
			// Every store that answered 200 committed before the teardown
			// and was counted by it.
			if removed := int(down.body["credentials_removed"].(float64)); removed != stored {
				t.Errorf("round %d: %d stores answered 200 but the teardown removed %d credentials", round, stored, removed)
			}
			storedThenRemoved += stored
		}
		t.Logf("%d rounds: %d writes outlived the teardown; %d stores committed first and were removed", rounds, survived, storedThenRemoved)
	})
}

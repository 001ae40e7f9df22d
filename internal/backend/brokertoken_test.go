package backend

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// authedRoutes lists every route server.go registers with s.authed, read
// from the source so that a route added later is covered without editing
// this test.
func authedRoutes(t *testing.T) [][2]string {
	t.Helper()
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`m\.Handle\("([A-Z]+) (/[^"]*)", s\.authed\(`)
	var out [][2]string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	if len(out) < 15 {
		t.Fatalf("found only %d authed routes in server.go; the pattern no longer matches", len(out))
	}
	return out
}

func (e *testEnv) brokerToken(tok agentkeys.Token) (agentkeys.Token, time.Time) {
	e.t.Helper()
	bt, exp, err := e.client.BrokerToken(ctx, tok, 0)
	if err != nil {
		e.t.Fatalf("derive broker token: %v", err)
	}
	return bt, exp
}

func TestBrokerTokenWorksOnlyAtValidate(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MockInbox = true })
	m := e.master("alice")
	a := e.agent(m, []string{"openrouter"}, false)
	e.storeCredential(m.Token, a.Wallet, "openrouter", secret())
	bt, exp := e.brokerToken(a.Token)
	if bt == a.Token || bt == m.Token {
		t.Fatal("the broker token is the session itself")
	}
	if want := e.clock.Now().Add(DefaultBrokerTokenTTL); !exp.Equal(want.Truncate(time.Second)) {
		t.Errorf("expires_at = %v, want %v", exp, want)
	}

	// At validate it stands for the agent's session, marked for the broker.
	id, err := e.client.Validate(ctx, bt)
	if err != nil {
		t.Fatalf("validate broker token: %v", err)
	}
	if id.Wallet != a.Wallet || id.Kind != "agent" || id.Parent != m.Wallet || id.Audience != "broker" ||
		id.ExpiresAt != a.ExpiresAt.Unix() || id.TokenExpiresAt != exp.Unix() ||
		id.Scope == nil || len(id.Scope.Services) != 1 || id.Scope.Services[0] != "openrouter" {
		t.Errorf("validate = %+v", id)
	}
	// A session's validation carries no audience.
	if id, err := e.client.Validate(ctx, a.Token); err != nil || id.Audience != "" || id.TokenExpiresAt != 0 {
		t.Errorf("validate session = %+v, %v", id, err)
	}

	// Everywhere else: 401, whatever the body.
	for _, r := range authedRoutes(t) {
		method, path := r[0], r[1]
		if path == "/session/validate" {
			continue
		}
		body := ""
		if method != "GET" {
			body = `{"agent_id":"` + string(a.Wallet) + `","service":"openrouter","target_wallet":"` + string(a.Wallet) +
				`","target_session":"` + a.Token.Reveal() + `","scope":{"services":["openrouter"]}}`
		}
		q := "?agent_id=" + string(a.Wallet) + "&service=openrouter&wallet=" + string(a.Wallet)
		status, resp, _ := e.raw(method, path+q, bt, body)
		if status != 401 || resp["message"] != msgBrokerOnly {
			t.Errorf("%s %s with a broker token → %d %v, want 401 %q", method, path, status, resp, msgBrokerOnly)
		}
	}
	// Nothing above took effect: the agent's session and credential live.
	if v, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter"); err != nil || len(v) == 0 {
		t.Fatalf("credential after the broker token's attempts: %v", err)
	}
	// A broker token cannot derive another.
	_, _, err = e.client.BrokerToken(ctx, bt, 0)
	wantStatus(t, err, 401)
}

func TestBrokerTokenDiesWithItsSession(t *testing.T) {
	e := newEnv(t)
	valid := func(tok agentkeys.Token) error { _, err := e.client.Validate(ctx, tok); return err }
	errOnly := func(_ any, err error) error { return err }

	// Each case builds master m → agent a (→ agent b), derives a broker
	// token from the lowest session, checks it validates, then ends it.
	for _, tc := range []struct {
		name, master string
		grandchild   bool // derive from b below a instead of from a
		end          func(m, a backendclient.Session) error
	}{
		{"own session revoked", "alice", false, func(m, a backendclient.Session) error {
			return errOnly(e.client.RevokeSession(ctx, m.Token, a.Token))
		}},
		{"ancestor session revoked", "bob", true, func(m, _ backendclient.Session) error {
			return errOnly(e.client.RevokeSession(ctx, m.Token, m.Token))
		}},
		{"wallet revoked", "carol", false, func(m, a backendclient.Session) error {
			return errOnly(e.client.RevokeWallet(ctx, m.Token, a.Wallet))
		}},
		{"ancestor torn down", "dave", true, func(m, a backendclient.Session) error {
			return errOnly(e.client.Teardown(ctx, m.Token, a.Wallet))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := e.master(tc.master)
			a := e.agent(m, []string{"x"}, false)
			holder := a
			if tc.grandchild {
				holder = e.agent(a, []string{"x"}, false)
			}
			bt, _ := e.brokerToken(holder.Token)
			if err := valid(bt); err != nil {
				t.Fatal(err)
			}
			if err := tc.end(m, a); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, valid(bt), 401)
		})
	}
	t.Run("master session's token", func(t *testing.T) {
		m := e.master("erin")
		bt, _ := e.brokerToken(m.Token)
		if id, err := e.client.Validate(ctx, bt); err != nil || id.Wallet != m.Wallet || id.Kind != "master" || id.Scope != nil {
			t.Fatalf("validate = %+v, %v", id, err)
		}
		if _, err := e.client.RevokeSession(ctx, m.Token, m.Token); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, valid(bt), 401)
	})
}

func TestBrokerTokenExpiry(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	bt, _ := e.brokerToken(m.Token)
	e.clock.Advance(DefaultBrokerTokenTTL - time.Second)
	if _, err := e.client.Validate(ctx, bt); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.Advance(time.Second)
	_, err := e.client.Validate(ctx, bt)
	wantStatus(t, err, 401)
	if !strings.Contains(err.Error(), "session expired") {
		t.Errorf("err = %v, want session expired", err)
	}
	// The sweep removes it.
	e.clock.Advance(time.Second)
	e.srv.sweepOnce(context.Background())
	if _, err := e.store.BrokerToken(ctx, bt.Hash()); err == nil {
		t.Error("expired broker token survived the sweep")
	}

	// A broker token never outlives its session, and a client may ask for
	// less than the default but not for more than the maximum.
	a, err := e.client.CreateChild(ctx, m.Token, agentkeys.Scope{Services: []string{"x"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, exp := e.brokerToken(a.Token); !exp.Equal(a.ExpiresAt) {
		t.Errorf("broker token of a 1-minute session expires %v, want %v", exp, a.ExpiresAt)
	}
	if _, exp, err := e.client.BrokerToken(ctx, m.Token, 30*time.Second); err != nil || !exp.Equal(e.clock.Now().Add(30*time.Second).Truncate(time.Second)) {
		t.Errorf("ttl 30s → %v, %v", exp, err)
	}
	_, _, err = e.client.BrokerToken(ctx, m.Token, MaxBrokerTokenTTL+time.Second)
	wantStatus(t, err, 400)
	status, _, _ := e.raw("POST", "/session/broker-token", m.Token, `{"audience":"backend"}`)
	if status != 400 {
		t.Errorf("audience backend → %d, want 400", status)
	}
	// The session itself is unaffected by its tokens' expiry.
	if _, err := e.client.Validate(ctx, m.Token); err != nil {
		t.Fatal(err)
	}
}

package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// listener is a fake broker: it records every Authorization header and
// answers 401.
type listener struct {
	*httptest.Server
	mu      sync.Mutex
	bearers []string
}

func newListener(t *testing.T) *listener {
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		if h := r.Header.Get("Authorization"); h != "" {
			l.bearers = append(l.bearers, strings.TrimPrefix(h, "Bearer "))
		}
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthorized","message":"unauthorized: session not found"}`))
	}))
	t.Cleanup(l.Close)
	return l
}

func (l *listener) captured() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bearers...)
}

// TestFakeBrokerCapturesNothingUseful: the real `agentkeys token oidc|aws`
// pointed at a listener posing as the broker sends it only broker tokens;
// replayed at the real backend, each one is refused everywhere but
// /session/validate (where it says it is for the broker).
func TestFakeBrokerCapturesNothingUseful(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	sf := t.TempDir() + "/agent.json"
	w.must("agent", "create", "other", "--services", "openrouter", "--session-out", sf)
	fake := newListener(t)
	env := w.env("AGENTKEYS_BROKER_URL=" + fake.URL)
	for _, args := range [][]string{{"token", "oidc"}, {"token", "aws"}, {"token", "oidc", "--session-file", sf}} {
		if r := w.exec(nil, env, args...); r.code != 1 {
			t.Fatalf("%v against a refusing listener: %s", args, r)
		}
	}
	got := fake.captured()
	if len(got) < 3 {
		t.Fatalf("the listener captured %d bearers, want at least 3", len(got))
	}
	master := w.storedSession("default")
	c, err := backendclient.New(w.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	me, err := c.Validate(ctx, master.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range got {
		if raw == master.Token.Reveal() || strings.Contains(raw, master.Token.Reveal()) {
			t.Fatal("the listener received the master session")
		}
		tok, err := agentkeys.ParseToken(raw)
		if err != nil {
			t.Fatalf("captured bearer is not token-shaped")
		}
		if _, err := c.ReadCredential(ctx, tok, me.Wallet, "openrouter"); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /credential/read: %v, want 401", err)
		}
		if _, err := c.CreateChild(ctx, tok, agentkeys.Scope{Services: []string{}}, 0); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /session/child: %v, want 401", err)
		}
		if _, err := c.QueryAudit(ctx, tok, backendclient.AuditFilter{}); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /audit/query: %v, want 401", err)
		}
		id, err := c.Validate(ctx, tok)
		if err == nil && id.Audience != "broker" {
			t.Errorf("captured bearer validates as a session: %+v", id)
		}
	}
	// The profile is now bound to the listener (first use): another broker
	// URL is refused before anything is sent, with a way out.
	other := newListener(t)
	r := w.exec(nil, w.env("AGENTKEYS_BROKER_URL="+other.URL), "token", "oidc")
	if r.code != 1 || !strings.Contains(r.stderr, "bound to broker "+fake.URL) || !strings.Contains(r.stderr, "agentkeys init --broker-url") {
		t.Fatalf("different broker URL: %s", r)
	}
	if n := len(other.captured()); n != 0 {
		t.Fatalf("the second listener received %d requests", n)
	}
	if s := w.storedSession("default"); s.Broker != fake.URL {
		t.Fatalf("profile broker = %q, want %q", s.Broker, fake.URL)
	}
}

// TestInitBindsBroker: init --broker-url records the broker; running init
// again with another one (a fresh login) rebinds it.
func TestInitBindsBroker(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a, b := newListener(t), newListener(t)
	id := "identity-" + randHex(8)
	if r := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "--broker-url", a.URL+"/", "init"); r.code != 0 {
		t.Fatalf("init: %s", r)
	}
	if s := w.storedSession("default"); s.Broker != a.URL {
		t.Fatalf("broker after init = %q", s.Broker)
	}
	if r := w.exec(nil, w.env(), "--broker-url", b.URL, "token", "oidc"); r.code != 1 || !strings.Contains(r.stderr, "refusing") {
		t.Fatalf("token with another broker: %s", r)
	}
	if r := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "--broker-url", b.URL, "init"); r.code != 0 || !strings.Contains(r.stderr, "bound to broker "+b.URL) {
		t.Fatalf("re-init with another broker: %s", r)
	}
	if s := w.storedSession("default"); s.Broker != b.URL {
		t.Fatalf("broker after re-init = %q", s.Broker)
	}
	w.exec(nil, w.env(), "token", "oidc")
	if len(a.captured()) != 0 || len(b.captured()) == 0 {
		t.Fatalf("requests: old broker %d, new broker %d", len(a.captured()), len(b.captured()))
	}
	if r := w.must("whoami"); !strings.Contains(r.stdout, "broker:   "+b.URL) {
		t.Fatalf("whoami: %s", r)
	}
}

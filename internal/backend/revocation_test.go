package backend

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
)

func (e *testEnv) epoch() int64 {
	e.t.Helper()
	n, err := e.client.RevocationEpoch(ctx)
	if err != nil {
		e.t.Fatalf("GET /session/epoch: %v", err)
	}
	return n
}

// Every change that takes access away moves the epoch, in the same
// transaction; reads and grants do not.
func TestRevocationEpochMovesWithEveryAccessReduction(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x", "y")
	b := e.agent(m, []string{"x"}, false)
	c := e.agent(m, []string{"x"}, false)
	d := e.agent(m, []string{"x"}, false)
	e.storeCredential(m.Token, a.Wallet, "x", secret())
	if _, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "x"); err != nil {
		t.Fatal(err)
	}
	start := e.epoch()
	id, err := e.client.Validate(ctx, a.Token)
	if err != nil || id.Epoch != start {
		t.Fatalf("validate epoch = %d (%v), want %d", id.Epoch, err, start)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"scope change", func() error {
			return e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{"x"}})
		}},
		{"session revoke", func() error { _, err := e.client.RevokeSession(ctx, m.Token, b.Token); return err }},
		{"wallet revoke", func() error { _, err := e.client.RevokeWallet(ctx, m.Token, c.Wallet); return err }},
		{"teardown", func() error { _, err := e.client.Teardown(ctx, m.Token, d.Wallet); return err }},
	}
	want := start
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		want++
		if got := e.epoch(); got != want {
			t.Fatalf("after %s epoch = %d, want %d", s.name, got, want)
		}
	}
	// A refused revoke changes nothing.
	if _, err := e.client.RevokeSession(ctx, a.Token, m.Token); err == nil {
		t.Fatal("an agent revoked its master")
	}
	if got := e.epoch(); got != want {
		t.Fatalf("refused revoke moved the epoch to %d", got)
	}
}

// watch runs WatchSession in the background.
func watch(t *testing.T, c *backendclient.Client, tok agentkeys.Token) <-chan error {
	out := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := c.WatchSession(cctx, tok)
		out <- err
	}()
	return out
}

func TestWatchAnswers401OnRevokeOnThisAndOtherReplicas(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { testWatchReplicas(t, engine) })
	}
}

// testWatchReplicas runs two backend replicas over one database (see
// newReplicas) with the default epoch poll: the second learns of revokes
// made through the first only by polling the epoch.
func testWatchReplicas(t *testing.T, engine string) {
	e, other, oc := newReplicas(t, engine, func(o *Options) { o.AwaitWindow = 20 * time.Second })

	m := e.master("alice")
	a := e.agent(m, []string{"x"}, false)
	b := e.agent(m, []string{"x"}, false)
	bystander := e.agent(m, []string{"x"}, false)
	local, remote, calm := watch(t, e.client, a.Token), watch(t, oc, b.Token), watch(t, oc, bystander.Token)
	waitWatchers(t, e.srv, 1)
	waitWatchers(t, other, 2)

	for _, tc := range []struct {
		name string
		tok  agentkeys.Token
		ch   <-chan error
	}{{"same replica", a.Token, local}, {"other replica", b.Token, remote}} {
		t0 := time.Now()
		if _, err := e.client.RevokeSession(ctx, m.Token, tc.tok); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-tc.ch:
			if !errors.Is(err, backendclient.ErrUnauthorized) {
				t.Fatalf("%s: watch answered %v, want 401", tc.name, err)
			}
			var be *backendclient.Error
			if errors.As(err, &be) && be.Message != "session revoked" {
				t.Fatalf("%s: message %q", tc.name, be.Message)
			}
			took := time.Since(t0)
			t.Logf("%s: revoke-to-watch-401: %v", tc.name, took)
			if took > time.Second {
				t.Fatalf("%s: the watch answered %v after the revoke, want under 1 s", tc.name, took)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: watch still open 5 s after the revoke", tc.name)
		}
	}
	select {
	case err := <-calm:
		t.Fatalf("an unrelated session's watch ended: %v", err)
	default:
	}
	// A dead session is refused at once.
	if _, err := e.client.WatchSession(ctx, a.Token); !errors.Is(err, backendclient.ErrUnauthorized) {
		t.Fatalf("watch of a revoked session: %v", err)
	}
}

// newReplicas starts two backend replicas over one database: e, and other
// (served to oc). On SQLite they are two servers over one store; on
// PostgreSQL, two stores.
func newReplicas(t *testing.T, engine string, opts ...envOption) (e *testEnv, other *Server, oc *backendclient.Client) {
	t.Helper()
	var dsn string
	if engine == "postgres" {
		dsn = sqldbtest.PostgresDSN(t)
		pg, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		opts = append(opts, func(o *Options) { o.Store = pg })
	}
	e = newEnv(t, opts...)
	second := e.store
	if engine == "postgres" {
		st, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		second = st
	}
	o := Options{Store: second, Sealer: e.srv.sealer, Now: e.clock.Now, LoginRate: -1, Login: MockLogin{}}
	for _, f := range opts {
		f(&o)
	}
	o.Store = second
	other, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(other.Handler())
	t.Cleanup(hs.Close)
	oc, _ = backendclient.New(hs.URL)
	return e, other, oc
}

func waitWatchers(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.epochs.mu.Lock()
		got := s.epochs.watchers
		s.epochs.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watchers, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchWindowAndPollerStops(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 100 * time.Millisecond; o.EpochPoll = 10 * time.Millisecond })
	m := e.master("alice")
	a := e.agent(m, []string{"x"}, false)
	epoch, err := e.client.WatchSession(ctx, a.Token)
	if err != nil || epoch != e.epoch() {
		t.Fatalf("watch after window = %d, %v; want %d", epoch, err, e.epoch())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.srv.epochs.mu.Lock()
		polling := e.srv.epochs.polling
		e.srv.epochs.mu.Unlock()
		if !polling {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the epoch poller still runs with no watcher")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Expiry ends a watch too.
	e.clock.Advance(DefaultSessionTTL)
	if _, err := e.client.WatchSession(ctx, a.Token); !errors.Is(err, backendclient.ErrUnauthorized) {
		t.Fatalf("watch of an expired session: %v", err)
	}
}

func TestAuditCachedRead(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x", "y")
	stranger := e.master("mallory")
	if err := e.client.AuditCachedRead(ctx, a.Token, a.Wallet, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	for _, viewer := range []agentkeys.Token{m.Token, a.Token} {
		page, err := e.client.QueryAudit(ctx, viewer, backendclient.AuditFilter{Action: agentkeys.ActionRead, Service: "x"})
		if err != nil || len(page.Events) != 1 {
			t.Fatalf("read rows = %+v, %v", page.Events, err)
		}
		ev := page.Events[0]
		if ev.Result != agentkeys.ResultOK || ev.Detail != DetailCachedRead || ev.Owner != a.Wallet || ev.Agent != a.Wallet {
			t.Fatalf("cached read row = %+v", ev)
		}
	}
	// Narrowed scope: refused (and audited as a denial), so the daemon
	// must not serve the cached value.
	if err := e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{"y"}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.client.AuditCachedRead(ctx, a.Token, a.Wallet, []string{"x"}), 403)
	wantStatus(t, e.client.AuditCachedRead(ctx, stranger.Token, a.Wallet, []string{"y"}), 403)
	wantStatus(t, e.client.AuditCachedRead(ctx, a.Token, a.Wallet, nil), 400)
	wantStatus(t, e.client.AuditCachedRead(ctx, a.Token, a.Wallet, []string{"../x"}), 400)
	if _, err := e.client.RevokeSession(ctx, m.Token, a.Token); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.client.AuditCachedRead(ctx, a.Token, a.Wallet, []string{"y"}), 401)
}

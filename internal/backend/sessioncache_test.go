package backend

import (
	"errors"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// A replica answers a session's requests from its session cache, yet
// every change that takes access away or changes a scope, made through
// another replica, applies to the very next request, as does expiry.
func TestCachedSessionsFollowEveryChangeAtOnce(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) { testCachedSessions(t, engine) })
	}
}

func testCachedSessions(t *testing.T, engine string) {
	e, other, oc := newReplicas(t, engine)
	m := e.master("alice")
	a := e.agent(m, []string{"x", "y"}, false)
	g := e.agent(a, []string{"x"}, false) // a's own agent
	for _, w := range []agentkeys.Wallet{a.Wallet, g.Wallet} {
		if err := e.client.StoreCredential(ctx, m.Token, w, "x", secret()); err != nil {
			t.Fatal(err)
		}
	}
	read := func(s backendclient.Session) error {
		_, err := oc.ReadCredential(ctx, s.Token, s.Wallet, "x")
		return err
	}
	for _, s := range []backendclient.Session{a, g} {
		if err := read(s); err != nil {
			t.Fatalf("first read: %v", err)
		}
		// The replica now holds the session: what follows is answered
		// from its cache unless the epoch moved.
		epoch, _ := other.store.RevocationEpoch(ctx)
		if _, ok := other.sessions.get(epoch, s.Token.Hash()); !ok {
			t.Fatal("the session is not cached after a read")
		}
	}

	steps := []struct {
		name   string
		change func() error
		who    backendclient.Session
		want   error // nil: the read succeeds
	}{
		{"scope narrowed", func() error {
			return e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{"y"}})
		}, a, backendclient.ErrDenied},
		{"ancestor's scope narrowed", nil, g, backendclient.ErrDenied},
		{"scope widened again", func() error {
			return e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{"x", "y"}})
		}, g, nil},
		{"ancestor's session revoked", func() error { _, err := e.client.RevokeSession(ctx, m.Token, a.Token); return err }, g, backendclient.ErrUnauthorized},
	}
	for _, s := range steps {
		if s.change != nil {
			if err := s.change(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if err := read(s.who); !errors.Is(err, s.want) && !(s.want == nil && err == nil) {
			t.Fatalf("%s: the next read through the other replica answered %v, want %v", s.name, err, s.want)
		}
	}

	// Expiry: nothing moves the epoch, the clock does.
	b := e.agent(m, []string{"x"}, false)
	if err := e.client.StoreCredential(ctx, m.Token, b.Wallet, "x", secret()); err != nil {
		t.Fatal(err)
	}
	if err := read(b); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultSessionTTL + time.Second)
	var be *backendclient.Error
	if err := read(b); !errors.As(err, &be) || !errors.Is(err, backendclient.ErrUnauthorized) || be.Message != "session expired" {
		t.Fatalf("read with an expired cached session: %v", err)
	}
}

package backend

import (
	"net/http"
	"testing"
	"time"
)

// TestAgentRegistryBoundaries: names resolve only inside the caller's
// subtree (an agent cannot reach its sibling by name), read-only sessions
// cannot name, a master cannot name itself, and /agent/list takes last
// use from the audit log, which session validation does not write to.
func TestAgentRegistryBoundaries(t *testing.T) {
	e, m, a := newAgentEnv(t, "registry-owner", "svc")
	b := e.agent(m, []string{"svc"}, true)
	if _, err := e.client.NameAgent(ctx, m.Token, a.Wallet, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.NameAgent(ctx, m.Token, b.Wallet, "beta"); err != nil {
		t.Fatal(err)
	}
	res, err := e.client.ResolveAgent(ctx, m.Token, "alpha")
	if err != nil || res.Wallet != a.Wallet || res.Name != "alpha" || res.Via != "name" {
		t.Fatalf("master resolves alpha: %+v, %v", res, err)
	}
	// An agent resolves itself by name, not its sibling.
	if res, err := e.client.ResolveAgent(ctx, a.Token, "alpha"); err != nil || res.Wallet != a.Wallet {
		t.Fatalf("agent resolves itself: %+v, %v", res, err)
	}
	_, err = e.client.ResolveAgent(ctx, a.Token, "beta")
	wantStatus(t, err, http.StatusNotFound)
	_, err = e.client.ResolveAgent(ctx, a.Token, string(b.Wallet))
	wantStatus(t, err, http.StatusNotFound)
	// Read-only sessions cannot name; nobody names a master.
	_, err = e.client.NameAgent(ctx, b.Token, b.Wallet, "gamma")
	wantStatus(t, err, http.StatusForbidden)
	_, err = e.client.NameAgent(ctx, m.Token, m.Wallet, "me")
	wantStatus(t, err, http.StatusNotFound)
	// A duplicate is 409 and changes nothing.
	_, err = e.client.NameAgent(ctx, m.Token, b.Wallet, "alpha")
	wantStatus(t, err, http.StatusConflict)
	if prev, err := e.client.NameAgent(ctx, m.Token, b.Wallet, "beta2"); err != nil || prev != "beta" {
		t.Fatalf("rename beta: previous %q, %v", prev, err)
	}

	// Last use: validation writes nothing; a read does.
	e.clock.Advance(time.Minute)
	for range 3 {
		if _, err := e.client.Validate(ctx, a.Token); err != nil {
			t.Fatal(err)
		}
	}
	list, err := e.client.ListAgents(ctx, m.Token)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	for _, ag := range list {
		if ag.LastUsedAt != 0 {
			t.Fatalf("%s last used at %d after validations only", ag.Name, ag.LastUsedAt)
		}
		if ag.ExpiresAt == 0 || ag.Parent != m.Wallet {
			t.Fatalf("list entry %+v", ag)
		}
	}
	e.storeCredential(m.Token, a.Wallet, "svc", secret())
	e.clock.Advance(time.Minute)
	if _, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "svc"); err != nil {
		t.Fatal(err)
	}
	list, _ = e.client.ListAgents(ctx, m.Token)
	for _, ag := range list {
		want := int64(0)
		if ag.Wallet == a.Wallet {
			want = e.clock.Now().Unix()
		}
		if ag.LastUsedAt != want {
			t.Fatalf("%s last used at %d, want %d", ag.Name, ag.LastUsedAt, want)
		}
	}
	// An agent cannot name its sibling.
	_, err = e.client.NameAgent(ctx, a.Token, b.Wallet, "theirs")
	wantStatus(t, err, http.StatusForbidden)
	// An agent lists only its own subtree.
	if sub, err := e.client.ListAgents(ctx, a.Token); err != nil || len(sub) != 0 {
		t.Fatalf("agent's list: %+v, %v", sub, err)
	}
}

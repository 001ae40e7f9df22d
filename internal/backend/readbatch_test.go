package backend

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// The batch read returns every credential the agent holds within its
// scope, and nothing outside it, and audits each value as a read.
func TestReadBatch(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x", "y")
	vals := map[string][]byte{"x": secret(), "y": secret(), "z": secret()}
	for svc, v := range vals {
		if err := e.client.StoreCredential(ctx, m.Token, a.Wallet, svc, v); err != nil && svc != "z" {
			t.Fatal(err)
		}
	}
	// z is outside the agent's scope: the master stores it on itself.
	e.storeCredential(m.Token, m.Wallet, "z", vals["z"])
	for _, tok := range []agentkeys.Token{m.Token, a.Token} {
		got, err := e.client.ReadCredentials(ctx, tok, a.Wallet, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Values) != 2 || !bytes.Equal(got.Values["x"], vals["x"]) || !bytes.Equal(got.Values["y"], vals["y"]) {
			t.Fatalf("batch read returned %d values, want x and y", len(got.Values))
		}
		if got.Scope == nil || strings.Join(got.Scope.Services, ",") != "x,y" || !got.RevokedAt.IsZero() {
			t.Fatalf("batch read scope %+v revoked %v", got.Scope, got.RevokedAt)
		}
	}
	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Agent: a.Wallet, Action: agentkeys.ActionRead})
	if err != nil || len(page.Events) != 4 {
		t.Fatalf("read audit rows = %d, %v; want 4 (two reads of x and y)", len(page.Events), err)
	}
	// A named service outside the scope is refused, and audited.
	_, err = e.client.ReadCredentials(ctx, m.Token, a.Wallet, []string{"z"})
	wantStatus(t, err, 403)
	page, err = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Agent: a.Wallet, Result: agentkeys.ResultDeniedScope})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("denial audit rows = %d, %v; want 1", len(page.Events), err)
	}
	// Another master's agent is not the caller's to read.
	_, err = e.client.ReadCredentials(ctx, e.master("bob").Token, a.Wallet, nil)
	wantStatus(t, err, 403)
}

// After a revoke, the batch says so and returns no value; a new session
// for the agent lifts that.
func TestReadBatchRevoked(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x")
	e.storeCredential(m.Token, a.Wallet, "x", secret())
	if _, err := e.client.RevokeWallet(ctx, m.Token, a.Wallet); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.ReadCredentials(ctx, m.Token, a.Wallet, nil)
	if err != nil || got.RevokedAt.IsZero() || len(got.Values) != 0 {
		t.Fatalf("batch read of a revoked agent = %+v, %v; want revoked_at and no values", got, err)
	}
}

// TestReadBatchByAgentArgument: the batch takes a name or alias instead of
// a wallet, resolves it as /agent/resolve does, says what it resolved to
// and audits the reads as by wallet; another master's agent name is 404
// with no value.
func TestReadBatchByAgentArgument(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x")
	val := secret()
	e.storeCredential(m.Token, a.Wallet, "x", val)
	if _, err := e.client.NameAgent(ctx, m.Token, a.Wallet, "helper"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.LinkIdentity(ctx, m.Token, "alias", "helper-laptop", a.Wallet); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"helper", "helper-laptop", string(a.Wallet)} {
		got, w, name, err := e.client.ReadAgentCredentials(ctx, m.Token, arg, nil)
		if err != nil {
			t.Fatalf("batch read of %q: %v", arg, err)
		}
		if w != a.Wallet || name != "helper" {
			t.Fatalf("batch read of %q resolved to %s %q, want %s helper", arg, w, name, a.Wallet)
		}
		if len(got.Values) != 1 || !bytes.Equal(got.Values["x"], val) {
			t.Fatalf("batch read of %q returned %d values, want x", arg, len(got.Values))
		}
	}
	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Agent: a.Wallet, Action: agentkeys.ActionRead})
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("read audit rows = %d, %v; want 3", len(page.Events), err)
	}

	// Bob, with an agent of his own, reaches none of alice's by name,
	// alias or wallet.
	bob := e.master("bob")
	b := e.agent(bob, []string{"x"}, false)
	if _, err := e.client.NameAgent(ctx, bob.Token, b.Wallet, "other"); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"helper", "helper-laptop", string(a.Wallet)} {
		got, _, _, err := e.client.ReadAgentCredentials(ctx, bob.Token, arg, nil)
		wantStatus(t, err, http.StatusNotFound)
		if got != nil {
			t.Fatalf("bob's batch read of %q returned values", arg)
		}
	}
	page, err = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Agent: a.Wallet, Action: agentkeys.ActionRead, Result: agentkeys.ResultOK})
	if err != nil || len(page.Events) != 3 {
		t.Fatalf("read audit rows after bob's tries = %d, %v; want still 3", len(page.Events), err)
	}
	// No agent at all is refused.
	_, _, _, err = e.client.ReadAgentCredentials(ctx, m.Token, "", nil)
	wantStatus(t, err, http.StatusBadRequest)
}

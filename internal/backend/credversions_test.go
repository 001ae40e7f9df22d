package backend

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// TestCredentialVersions: the version route changes when a credential is
// stored again (even with the same value), lists only the caller's scope,
// carries no value, writes no audit row, refuses a stranger and answers
// 404 once the agent is torn down.
func TestCredentialVersions(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openrouter", "openai")
	v := secret()
	for _, svc := range []string{"openrouter", "openai", "anthropic"} {
		e.storeCredential(m.Token, a.Wallet, svc, v)
	}
	auditRows := func() int {
		p, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Events)
	}
	before := auditRows()

	master, err := e.client.CredentialVersions(ctx, m.Token, a.Wallet)
	if err != nil || len(master) != 3 || master[0].Service != "anthropic" || master[2].Service != "openrouter" {
		t.Fatalf("master sees %+v, %v; want all three in service order", master, err)
	}
	agent, err := e.client.CredentialVersions(ctx, a.Token, a.Wallet)
	if err != nil || len(agent) != 2 || agent[0].Service != "openai" || agent[1].Service != "openrouter" {
		t.Fatalf("agent sees %+v, %v; want its two scoped services", agent, err)
	}
	if agent[1].Version != master[2].Version || agent[1].Version == "" || agent[1].UpdatedAt.IsZero() {
		t.Fatalf("versions differ between callers or are empty: %+v %+v", agent[1], master[2])
	}
	_, body, _ := e.raw("GET", "/credential/versions?agent_id="+string(a.Wallet), m.Token, "")
	raw, _ := json.Marshal(body)
	if bytes.Contains(raw, v) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(v))) {
		t.Fatalf("the version route returned the value: %s", raw)
	}

	// Stored again with the same value: the version changes, the others do not.
	e.storeCredential(m.Token, a.Wallet, "openrouter", v)
	after, err := e.client.CredentialVersions(ctx, a.Token, a.Wallet)
	if err != nil || after[1].Version == agent[1].Version || after[0].Version != agent[0].Version {
		t.Fatalf("after a store: %+v, %v (was %+v)", after, err, agent)
	}
	// One store row, no row for the four version reads.
	if got := auditRows(); got != before+1 {
		t.Fatalf("audit rows %d -> %d; want only the store's", before, got)
	}

	stranger := e.master("mallory")
	_, err = e.client.CredentialVersions(ctx, stranger.Token, a.Wallet)
	wantStatus(t, err, 403)

	// A torn-down agent is gone, not empty.
	if _, err := e.client.Teardown(ctx, m.Token, a.Wallet); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.CredentialVersions(ctx, m.Token, a.Wallet)
	wantStatus(t, err, 404)
}

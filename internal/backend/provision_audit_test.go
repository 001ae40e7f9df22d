package backend

import (
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

func TestAuditProvision(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openrouter")
	other := e.master("mallory")

	if err := e.client.AuditProvision(ctx, m.Token, a.Wallet, "openrouter", "verification_failed", "key rejected by https://openrouter.ai (401)"); err != nil {
		t.Fatal(err)
	}
	if err := e.client.AuditProvision(ctx, a.Token, a.Wallet, "openrouter", "ok", ""); err != nil {
		t.Fatal(err)
	}
	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: agentkeys.ActionProvision})
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("provision events = %+v, %v", page.Events, err)
	}
	if ev := page.Events[1]; ev.Result != "verification_failed" || ev.Owner != m.Wallet || ev.Agent != a.Wallet || ev.Detail == "" {
		t.Fatalf("failure row = %+v", ev)
	}
	if ev := page.Events[0]; ev.Result != "ok" || ev.Owner != a.Wallet {
		t.Fatalf("agent's own row = %+v", ev)
	}

	wantStatus(t, e.client.AuditProvision(ctx, other.Token, a.Wallet, "openrouter", "ok", ""), 403)
	wantStatus(t, e.client.AuditProvision(ctx, a.Token, a.Wallet, "openai", "ok", ""), 403) // out of scope
	for _, bad := range []struct{ result, detail string }{
		{"", ""}, {"OK", ""}, {"ok; drop table", ""}, {"ok", "line\nbreak"}, {"ok", string(make([]byte, 201))},
	} {
		wantStatus(t, e.client.AuditProvision(ctx, m.Token, a.Wallet, "openrouter", bad.result, bad.detail), 400)
	}
	page, _ = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: agentkeys.ActionProvision, Result: agentkeys.ResultDenied})
	if len(page.Events) == 0 {
		t.Fatal("refused provision audit by a stranger was not itself audited")
	}
}

package backend

import (
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

func TestAuditGateway(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openai")
	calls := []api.GatewayCall{
		{Service: "openai", Method: "POST", Path: "/v1/chat/completions", Status: 200, BytesIn: 12, BytesOut: 345, DurationMS: 7},
		{Service: "anthropic", Method: "GET", Path: "/v1/models", Status: 403, Refused: "denied_scope"},
	}
	if err := e.client.AuditGateway(ctx, a.Token, "", calls); err != nil {
		t.Fatal(err)
	}
	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: agentkeys.ActionHTTP})
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("http events = %+v, %v", page.Events, err)
	}
	ok, refused := page.Events[1], page.Events[0]
	if ok.Agent != a.Wallet || ok.Owner != a.Wallet || ok.Service != "openai" || ok.Result != "ok" ||
		ok.Detail != "POST /v1/chat/completions status=200 in=12 out=345 ms=7" {
		t.Fatalf("forwarded row = %+v", ok)
	}
	if refused.Result != "denied_scope" || refused.Service != "anthropic" {
		t.Fatalf("refused row = %+v", refused)
	}

	for _, bad := range []api.GatewayCall{
		{Service: "openai", Method: "GET", Path: "v1", Status: 200},
		{Service: "openai", Method: "GET", Path: "/v1?key=x y", Status: 200},
		{Service: "openai", Method: "GET", Path: "/" + strings.Repeat("a", 200), Status: 200},
		{Service: "openai", Method: "GET", Path: "/v1", Status: 42},
		{Service: "Open AI", Method: "GET", Path: "/v1", Status: 200},
		{Service: "openai", Method: "GET", Path: "/v1", Status: 200, Refused: "Nope!"},
	} {
		wantStatus(t, e.client.AuditGateway(ctx, a.Token, "", []api.GatewayCall{bad}), 400)
	}
	wantStatus(t, e.client.AuditGateway(ctx, a.Token, "", nil), 400)
	wantStatus(t, e.client.AuditGateway(ctx, a.Token, "", make([]api.GatewayCall, api.MaxGatewayCalls+1)), 400)
	wantStatus(t, e.client.AuditGateway(ctx, "", "", calls), 401)

	// A master reports for an agent it owns; a stranger cannot.
	if err := e.client.AuditGateway(ctx, m.Token, a.Wallet, calls[:1]); err != nil {
		t.Fatal(err)
	}
	page, _ = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: agentkeys.ActionHTTP, Agent: a.Wallet})
	if len(page.Events) != 3 || page.Events[0].Owner != m.Wallet || page.Events[0].Agent != a.Wallet {
		t.Fatalf("master's report: %+v", page.Events)
	}
	other := e.master("mallory")
	wantStatus(t, e.client.AuditGateway(ctx, other.Token, a.Wallet, calls[:1]), 403)
}

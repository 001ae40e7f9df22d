package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestRequestScopeOverMCP: an agent asks for more scope through the MCP
// tool agentkeys.request_scope of the daemon binary; the request reaches
// its master (pending list, no OTP there), who approves it with the OTP
// the tool returned; the daemon hears the signed decision
// (scope_request_status) and the agent's scope has the new service.
func TestRequestScopeOverMCP(t *testing.T) {
	ctx := context.Background()
	b, home, ks, sessFile := startBackendAgent(t, "openrouter")
	sock := filepath.Join(home, "ak.sock")
	tokFile := filepath.Join(home, "mcp-token")
	d := startDaemon(t, home, nil, "--session-file", sessFile, "--socket", sock, "--http", "127.0.0.1:0", "--http-token-file", tokFile)
	endpoint := d.waitFor(httpLine, 30*time.Second)[1]
	d.waitReady()
	cs := mcpHTTPSession(t, endpoint, tokFile)

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRequestScope, Arguments: map[string]any{"services": []string{"openrouter"}}})
	if err != nil || !res.IsError || !strings.Contains(textOf(res), "already includes") {
		t.Fatalf("asking for a service already in scope: %v %s", err, textOf(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRequestScope, Arguments: map[string]any{"services": []string{"anthropic"}}})
	if err != nil || res.IsError {
		t.Fatalf("request_scope: %v %s", err, textOf(res))
	}
	sc, _ := res.StructuredContent.(map[string]any)
	code, _ := sc["pair_code"].(string)
	otp, _ := sc["otp"].(string)
	id, _ := sc["request_id"].(string)
	if code == "" || len(otp) != 6 || !strings.Contains(textOf(res), "agentkeys approve "+code+" --otp "+otp) {
		t.Fatalf("request_scope result: %s %v", textOf(res), sc)
	}
	if strings.Contains(d.stderr(), otp) {
		t.Fatal("the OTP is in the daemon's log")
	}

	list, err := b.client.PendingAuthRequests(ctx, b.master.Token)
	if err != nil || len(list) != 1 || list[0].AgentID != string(ks.Wallet) || strings.Join(list[0].RequestedScope.Services, ",") != "anthropic,openrouter" {
		t.Fatalf("master's pending list: %+v %v", list, err)
	}
	c := dial(t, sock)
	if st, err := c.ScopeRequestStatus(ctx, id, 0); err != nil || st != ScopePending {
		t.Fatalf("status before approval: %q %v", st, err)
	}
	if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, code, otp); err != nil {
		t.Fatal(err)
	}
	if st, err := c.ScopeRequestStatus(ctx, id, 30*time.Second); err != nil || st != ScopeApproved {
		t.Fatalf("status after approval: %q %v", st, err)
	}
	scope, err := b.client.GetScope(ctx, b.master.Token, ks.Wallet)
	if err != nil || scope == nil || strings.Join(scope.Services, ",") != "anthropic,openrouter" {
		t.Fatalf("scope after approval: %+v %v", scope, err)
	}
	if _, err := c.ScopeRequestStatus(ctx, "nosuch", 0); rpcCode(err) != CodeNotFound {
		t.Fatalf("unknown request: %v", err)
	}
}

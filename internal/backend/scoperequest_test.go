package backend

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
)

// openAs opens r with tok as the bearer.
func (e *testEnv) openAs(tok agentkeys.Token, r authreq.Request) (int, map[string]any) {
	e.t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, err := authreq.Encode(r)
	if err != nil {
		e.t.Fatal(err)
	}
	body := fmt.Sprintf(`{"child_pubkey":%q,"request_type":%q,"request_details":%q}`,
		base64.StdEncoding.EncodeToString(pub), r.Type, base64.StdEncoding.EncodeToString(details))
	status, m, _ := e.raw("POST", "/auth-request/open", tok, body)
	return status, m
}

func (e *testEnv) pending(tok agentkeys.Token) []map[string]any {
	e.t.Helper()
	status, m, _ := e.raw("GET", "/auth-request/pending", tok, "")
	if status != 200 {
		e.t.Fatalf("pending → %d %v", status, m)
	}
	var out []map[string]any
	for _, r := range m["requests"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

// TestAgentAsksForMoreScope: an agent opens a ScopeChange for itself with
// its own session; it is bound to its master, who alone sees it in
// GET /auth-request/pending (without the OTP) and approves it with the
// OTP; an agent cannot ask for another agent, nor open other kinds with a
// session.
func TestAgentAsksForMoreScope(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.master("alice"), e.master("bob")
	a := e.agent(alice, []string{"x"}, false)
	sibling := e.agent(alice, []string{"x"}, false)
	want := authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(a.Wallet), NewScope: authreq.Scope{Services: []string{"x", "y"}}}

	if status, m := e.openAs(a.Token, authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(sibling.Wallet), NewScope: want.NewScope}); status != 403 {
		t.Fatalf("an agent asked for another's scope: %d %v", status, m)
	}
	if status, m := e.openAs(a.Token, pairReq("x")); status != 400 {
		t.Fatalf("a Pair opened with a session: %d %v", status, m)
	}
	if status, m := e.openAs(alice.Token, authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(alice.Wallet), NewScope: want.NewScope}); status != 400 {
		t.Fatalf("a master asked for its own scope: %d %v", status, m)
	}
	status, opened := e.openAs(a.Token, want)
	if status != 200 {
		t.Fatalf("open → %d %v", status, opened)
	}
	if len(e.pending(bob.Token)) != 0 || len(e.pending(a.Token)) != 0 {
		t.Fatal("the request is listed for someone other than the agent's master")
	}
	list := e.pending(alice.Token)
	if len(list) != 1 {
		t.Fatalf("alice sees %d pending requests", len(list))
	}
	p := list[0]
	cur, _ := p["current_scope"].(map[string]any)
	req, _ := p["requested_scope"].(map[string]any)
	if p["request_type"] != authreq.TypeScopeChange || p["agent_id"] != string(a.Wallet) || p["pair_code"] != opened["pair_code"] ||
		fmt.Sprint(cur["services"]) != "[x]" || fmt.Sprint(req["services"]) != "[x y]" {
		t.Fatalf("pending entry %v", p)
	}
	if _, leaked := p["otp"]; leaked || strings.Contains(fmt.Sprint(p), opened["otp"].(string)) {
		t.Fatal("the pending list shows the OTP")
	}
	if status, _ := e.approve(bob.Token, opened["pair_code"].(string), opened["otp"].(string)); status != 403 {
		t.Fatalf("another master approved: %d", status)
	}
	if status, m := e.approve(alice.Token, opened["pair_code"].(string), opened["otp"].(string)); status != 200 {
		t.Fatalf("approve → %d %v", status, m)
	}
	sc, _ := e.client.GetScope(ctx, alice.Token, a.Wallet)
	if sc == nil || strings.Join(sc.Services, ",") != "x,y" {
		t.Fatalf("scope after approval = %+v", sc)
	}
	if len(e.pending(alice.Token)) != 0 {
		t.Fatal("an approved request is still pending")
	}
}

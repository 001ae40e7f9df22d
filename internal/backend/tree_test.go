package backend

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
)

// TestSessionTree: GET /session/tree names the bearer's wallet and every
// wallet below it (what the broker's audit view may show it), torn-down
// agents included; a broker token derived from the session may ask too.
func TestSessionTree(t *testing.T) {
	e, m, a := newAgentEnv(t, "erin", "x")
	sub := e.agent(a, []string{"x"}, false)
	gone := e.agent(m, []string{"x"}, false)
	other := e.master("frank")
	if _, err := e.client.Teardown(ctx, m.Token, gone.Wallet); err != nil {
		t.Fatal(err)
	}
	tree := func(tok agentkeys.Token) (int, api.SessionTreeResponse) {
		t.Helper()
		status, body, _ := e.raw("GET", "/session/tree", tok, "")
		var tr api.SessionTreeResponse
		if status == 200 {
			raw, _ := json.Marshal(body)
			if err := json.Unmarshal(raw, &tr); err != nil {
				t.Fatalf("tree: %v: %s", err, body)
			}
		}
		return status, tr
	}
	status, tr := tree(m.Token)
	if status != 200 || tr.Wallet != m.Wallet || len(tr.Wallets) != 4 || tr.Wallets[0] != m.Wallet {
		t.Fatalf("master's tree: %d %+v", status, tr)
	}
	for _, w := range []agentkeys.Wallet{a.Wallet, sub.Wallet, gone.Wallet} {
		if !slices.Contains(tr.Wallets, w) {
			t.Fatalf("master's tree lacks %s: %+v", w, tr.Wallets)
		}
	}
	if slices.Contains(tr.Wallets, other.Wallet) {
		t.Fatal("another master's wallet in the tree")
	}
	if status, tr := tree(a.Token); status != 200 || len(tr.Wallets) != 2 || tr.Wallets[0] != a.Wallet || tr.Wallets[1] != sub.Wallet {
		t.Fatalf("agent's tree: %d %+v", status, tr)
	}
	bt, _, err := e.client.BrokerToken(ctx, m.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, tr := tree(bt); status != 200 || tr.Wallet != m.Wallet || len(tr.Wallets) != 4 {
		t.Fatalf("broker token's tree: %d %+v", status, tr)
	}
	if status, _ := tree(agentkeys.NewToken()); status != 401 {
		t.Fatalf("unknown bearer: %d", status)
	}
}

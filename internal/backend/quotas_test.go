package backend

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// TestQuotas (issue 17 item 4): depth, agents, credentials and pending
// requests per master are capped inside the inserting transaction, on both
// engines, with 403 QUOTA_EXCEEDED; other masters are unaffected.
func TestQuotas(t *testing.T) {
	q := Quotas{MaxDepth: 2, MaxAgents: 3, MaxCredentials: 2, MaxPendingRequests: 1}
	for _, e := range engineEnvs(t, func(o *Options) { o.Frontdoor.Quotas = q }) {
		t.Run(engineName(e), func(t *testing.T) {
			e.t = t
			m := e.master("quota-master")
			a := e.agent(m, []string{"x", "y", "z"}, false)
			b := e.agent(a, []string{"x"}, false) // depth 2
			_, err := e.client.CreateChild(ctx, b.Token, agentkeys.Scope{Services: []string{"x"}}, 0)
			wantQuota(t, err, "depth")
			e.agent(m, []string{"x"}, false) // 3 agents
			_, err = e.client.CreateChild(ctx, m.Token, agentkeys.Scope{Services: []string{"x"}}, 0)
			wantQuota(t, err, "agents")
			// Pairing creates agents too.
			o := e.open(pairReq("x"), "")
			if status, body := e.approve(m.Token, o.PairCode, o.OTP); status != 403 || body["error"] != KindQuotaExceeded {
				t.Errorf("approving a pair beyond the agent quota → %d %v", status, body)
			}

			e.storeCredential(m.Token, a.Wallet, "x", secret())
			e.storeCredential(m.Token, b.Wallet, "x", secret())
			wantQuota(t, e.client.StoreCredential(ctx, m.Token, a.Wallet, "y", secret()), "credentials")
			// Replacing an existing credential is not a new one.
			if err := e.client.StoreCredential(ctx, m.Token, a.Wallet, "x", secret()); err != nil {
				t.Fatalf("replacing a credential at the quota: %v", err)
			}

			e.open(pairReq("x"), fmt.Sprintf(`,"parent_wallet":%q`, m.Wallet))
			if status, body := e.openRaw(pairReq("x"), fmt.Sprintf(`,"parent_wallet":%q`, m.Wallet)); status != 403 || body["error"] != KindQuotaExceeded {
				t.Errorf("second pending request bound to the master → %d %v", status, body)
			}

			// Another master has its own quotas.
			other := e.master("quota-other")
			e.agent(other, []string{"x"}, false)
			e.open(pairReq("x"), fmt.Sprintf(`,"parent_wallet":%q`, other.Wallet))
		})
	}
}

func wantQuota(t *testing.T, err error, what string) {
	t.Helper()
	wantStatus(t, err, 403)
	if !strings.Contains(err.Error(), "quota exceeded") {
		t.Errorf("%s quota: %v does not say so", what, err)
	}
}

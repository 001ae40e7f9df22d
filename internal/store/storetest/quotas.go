package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

func testTreeUsage(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a1 := agent(t, s, m.Address)
	b1 := agent(t, s, a1.Address)
	gone := agent(t, s, m.Address)
	other := master(t, s)
	agent(t, s, other.Address)
	at := now()
	for _, c := range []store.Credential{
		{Wallet: m.Address, Service: "x"}, {Wallet: a1.Address, Service: "x"}, {Wallet: b1.Address, Service: "y"},
		{Wallet: gone.Address, Service: "x"}, {Wallet: other.Address, Service: "x"},
	} {
		c.Sealed, c.CreatedAt, c.UpdatedAt = []byte{1}, at, at
		mustNil(t, s.PutCredential(ctx, c))
	}
	mustNil(t, s.TombstoneWallets(ctx, []agentkeys.Wallet{gone.Address}))
	pending := minimalAuthRequest()
	pending.ParentWallet = m.Address
	expired := minimalAuthRequest()
	expired.ParentWallet, expired.ExpiresAt = m.Address, at.Add(-time.Second)
	decided := fullAuthRequest(m.Address, m.Address, a1.Address)
	foreign := minimalAuthRequest()
	foreign.ParentWallet = other.Address
	for _, r := range []store.AuthRequest{pending, expired, decided, foreign} {
		mustNil(t, s.InsertAuthRequest(ctx, r))
	}
	var u store.TreeUsage
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		var err error
		u, err = q.TreeUsage(ctx, m.Address, at)
		return err
	}))
	if u != (store.TreeUsage{Agents: 2, Credentials: 3, PendingRequests: 1}) {
		t.Errorf("usage = %+v, want 2 live agents, 3 credentials in the live tree, 1 pending request", u)
	}
	empty := master(t, s)
	if u, err := s.TreeUsage(ctx, empty.Address, at); err != nil || u != (store.TreeUsage{}) {
		t.Errorf("usage of an empty master = %+v, %v", u, err)
	}
}

func testAuditClientIP(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	_, err := s.AppendAudit(ctx, agentkeys.AuditEvent{Time: now(), Owner: m.Address, Agent: m.Address, Service: "x",
		Action: "read", Result: "ok", ClientIP: "2001:db8::7"})
	mustNil(t, err)
	_, err = s.AppendAudit(ctx, agentkeys.AuditEvent{Time: now(), Owner: m.Address, Agent: m.Address, Service: "x", Action: "read", Result: "ok"})
	mustNil(t, err)
	got, err := s.QueryAudit(ctx, store.AuditQuery{Viewer: m.Address})
	mustNil(t, err)
	if len(got) != 2 || got[0].ClientIP != "" || got[1].ClientIP != "2001:db8::7" {
		t.Errorf("client addresses = %+v", got)
	}
}

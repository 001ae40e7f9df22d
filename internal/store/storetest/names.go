package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

var nameTests = []conformanceTest{
	{"WalletNames", testWalletNames},
	{"WalletNamesFreedByTeardown", testWalletNamesFreedByTeardown},
	{"LastUse", testLastUse},
	{"SessionExpiry", testSessionExpiry},
}

func testWalletNames(t *testing.T, s store.Store) {
	ctx := context.Background()
	m, other := master(t, s), master(t, s)
	a, b := agent(t, s, m.Address), agent(t, s, m.Address)
	x := agent(t, s, other.Address)
	at := now()
	mustNil(t, s.SetWalletName(ctx, m.Address, a.Address, "helper", at))
	mustNil(t, s.SetWalletName(ctx, m.Address, a.Address, "helper", at)) // same name again: no change
	wantErr(t, s.SetWalletName(ctx, m.Address, b.Address, "helper", at), store.ErrConflict)
	// Another master may use the same name for its own agent.
	mustNil(t, s.SetWalletName(ctx, other.Address, x.Address, "helper", at))
	if w, err := s.WalletByName(ctx, m.Address, "helper"); err != nil || w != a.Address {
		t.Fatalf("WalletByName(m, helper) = %s, %v; want %s", w, err, a.Address)
	}
	if w, err := s.WalletByName(ctx, other.Address, "helper"); err != nil || w != x.Address {
		t.Fatalf("WalletByName(other, helper) = %s, %v; want %s", w, err, x.Address)
	}
	// Renaming frees the old name.
	mustNil(t, s.SetWalletName(ctx, m.Address, a.Address, "bot", at))
	_, err := s.WalletByName(ctx, m.Address, "helper")
	wantErr(t, err, store.ErrNotFound)
	mustNil(t, s.SetWalletName(ctx, m.Address, b.Address, "helper", at))
	names, err := s.WalletNames(ctx, m.Address)
	mustNil(t, err)
	if len(names) != 2 || names[a.Address] != "bot" || names[b.Address] != "helper" {
		t.Fatalf("WalletNames(m) = %v", names)
	}
	if n, err := s.WalletName(ctx, b.Address); err != nil || n != "helper" {
		t.Fatalf("WalletName(b) = %q, %v", n, err)
	}
	if n, err := s.WalletName(ctx, m.Address); err != nil || n != "" {
		t.Fatalf("WalletName(master) = %q, %v; want no name", n, err)
	}
	// "" removes a name.
	mustNil(t, s.SetWalletName(ctx, m.Address, b.Address, "", at))
	names, err = s.WalletNames(ctx, m.Address)
	mustNil(t, err)
	if len(names) != 1 || names[a.Address] != "bot" {
		t.Fatalf("WalletNames(m) after removal = %v", names)
	}
	// Inside a transaction too.
	mustNil(t, s.Tx(ctx, func(q store.Queries) error { return q.SetWalletName(ctx, m.Address, b.Address, "bot2", at) }))
	if w, err := s.WalletByName(ctx, m.Address, "bot2"); err != nil || w != b.Address {
		t.Fatalf("name set in a transaction: %s, %v", w, err)
	}
	err = s.Tx(ctx, func(q store.Queries) error { return q.SetWalletName(ctx, m.Address, b.Address, "bot", at) })
	wantErr(t, err, store.ErrConflict)
	if w, err := s.WalletByName(ctx, m.Address, "bot2"); err != nil || w != b.Address {
		t.Fatalf("a refused rename changed the name: %s, %v", w, err)
	}
}

func testWalletNamesFreedByTeardown(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a, b := agent(t, s, m.Address), agent(t, s, m.Address)
	mustNil(t, s.SetWalletName(ctx, m.Address, a.Address, "helper", now()))
	_, err := s.DeleteWalletData(ctx, []agentkeys.Wallet{a.Address})
	mustNil(t, err)
	_, err = s.WalletByName(ctx, m.Address, "helper")
	wantErr(t, err, store.ErrNotFound)
	mustNil(t, s.SetWalletName(ctx, m.Address, b.Address, "helper", now()))
}

func testLastUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	uses := []string{agentkeys.ActionRead, agentkeys.ActionStore}
	if got, err := s.LastUse(ctx, a.Address, uses); err != nil || !got.IsZero() {
		t.Fatalf("LastUse of an unused agent = %v, %v; want zero", got, err)
	}
	t0 := now().Add(-time.Hour)
	add := func(at time.Time, owner agentkeys.Wallet, action string) {
		t.Helper()
		_, err := s.AppendAudit(ctx, agentkeys.AuditEvent{Time: at, Owner: owner, Agent: a.Address, Service: "x", Action: action, Result: "ok"})
		mustNil(t, err)
	}
	add(t0, m.Address, agentkeys.ActionChildCreate) // the master acting on it, not a use
	if got, err := s.LastUse(ctx, a.Address, uses); err != nil || !got.IsZero() {
		t.Fatalf("LastUse after child_create only = %v, %v; want zero", got, err)
	}
	add(t0.Add(time.Minute), m.Address, agentkeys.ActionRead) // the master reading for it: a use
	if got, err := s.LastUse(ctx, a.Address, uses); err != nil || !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("LastUse after a read for it = %v, %v", got, err)
	}
	add(t0.Add(2*time.Minute), a.Address, agentkeys.ActionList) // its own session: any action is a use
	add(t0.Add(3*time.Minute), m.Address, agentkeys.ActionScopeUpdate)
	if got, err := s.LastUse(ctx, a.Address, uses); err != nil || !got.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("LastUse after its own list = %v, %v; want %v", got, err, t0.Add(2*time.Minute))
	}
}

func testSessionExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	at := now()
	if got, err := s.SessionExpiry(ctx, a.Address, at); err != nil || !got.IsZero() {
		t.Fatalf("SessionExpiry without sessions = %v, %v", got, err)
	}
	sess := func(exp time.Time) store.Session {
		x := store.Session{TokenHash: agentkeys.NewToken().Hash(), Wallet: a.Address, CreatedAt: at, ExpiresAt: exp}
		mustNil(t, s.InsertSession(ctx, x))
		return x
	}
	sess(at.Add(-time.Minute)) // expired
	sess(at.Add(time.Hour))
	long := sess(at.Add(2 * time.Hour))
	if got, err := s.SessionExpiry(ctx, a.Address, at); err != nil || !got.Equal(at.Add(2*time.Hour)) {
		t.Fatalf("SessionExpiry = %v, %v; want the longest live one", got, err)
	}
	_, err := s.RevokeSessionTree(ctx, long.TokenHash, at)
	mustNil(t, err)
	if got, err := s.SessionExpiry(ctx, a.Address, at); err != nil || !got.Equal(at.Add(time.Hour)) {
		t.Fatalf("SessionExpiry after revoking the longest = %v, %v", got, err)
	}
}

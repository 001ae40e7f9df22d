// Package storetest is the conformance suite every store.Store engine must
// pass. An engine's tests call Run with a function that opens a fresh, empty
// store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Run runs the conformance suite. open must return a fresh, empty store for
// each call and arrange (with t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []conformanceTest{
		{"Ping", testPing},
		{"WalletInsertGet", testWalletInsertGet},
		{"WalletConflicts", testWalletConflicts},
		{"WalletNotFound", testWalletNotFound},
		{"Lineage", testLineage},
		{"Subtree", testSubtree},
		{"TreeUsage", testTreeUsage},
		{"AuditClientIP", testAuditClientIP},
		{"SetScope", testSetScope},
		{"TombstoneWallets", testTombstoneWallets},
		{"SessionInsertGet", testSessionInsertGet},
		{"RevokeSessionTree", testRevokeSessionTree},
		{"RevokeWalletSessions", testRevokeWalletSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"BrokerTokens", testBrokerTokens},
		{"BrokerTokensDieWithParent", testBrokerTokensDieWithParent},
		{"RevocationEpoch", testRevocationEpoch},
		{"PairingEpoch", testPairingEpoch},
		{"CredentialPutGet", testCredentialPutGet},
		{"Services", testServices},
		{"Credentials", testCredentials},
		{"DeleteWalletData", testDeleteWalletData},
		{"AuditAppendQuery", testAuditAppendQuery},
		{"AuditAppendBatch", testAuditAppendBatch},
		{"AuditFilters", testAuditFilters},
		{"AuditTimeRange", testAuditTimeRange},
		{"AuditPagination", testAuditPagination},
		{"AuditLimits", testAuditLimits},
		{"AuditVisibility", testAuditVisibility},
		{"TxCommit", testTxCommit},
		{"TxRollbackOnError", testTxRollbackOnError},
		{"TxRollbackOnPanic", testTxRollbackOnPanic},
		{"TxConcurrentWriters", testTxConcurrentWriters},
		{"TxSerialized", testTxSerialized},
		{"WalletNameConflictInTx", testWalletNameConflictInTx},
	}
	tests = append(tests, pairingTests...)
	tests = append(tests, nameTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// conformanceTest is one subtest of the suite: fn runs on a fresh store.
type conformanceTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// now returns the current time at the store's millisecond precision.
func now() time.Time { return time.UnixMilli(time.Now().UnixMilli()).UTC() }

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func master(t *testing.T, q store.Queries) store.Wallet {
	t.Helper()
	w := store.Wallet{
		Address:   agentkeys.NewWallet(),
		Kind:      store.KindMaster,
		LoginHash: string(agentkeys.HashSecret(string(agentkeys.NewToken()))),
		CreatedAt: now(),
	}
	mustNil(t, q.InsertWallet(context.Background(), w))
	return w
}

func agent(t *testing.T, q store.Queries, parent agentkeys.Wallet) store.Wallet {
	t.Helper()
	w := store.Wallet{
		Address:   agentkeys.NewWallet(),
		Kind:      store.KindAgent,
		Parent:    parent,
		Scope:     &agentkeys.Scope{Services: []string{"openrouter"}},
		CreatedAt: now(),
	}
	mustNil(t, q.InsertWallet(context.Background(), w))
	return w
}

func session(t *testing.T, q store.Queries, w agentkeys.Wallet, parent agentkeys.TokenHash, expires time.Time) store.Session {
	t.Helper()
	s := store.Session{
		TokenHash:  agentkeys.NewToken().Hash(),
		Wallet:     w,
		ParentHash: parent,
		CreatedAt:  now(),
		ExpiresAt:  expires,
	}
	mustNil(t, q.InsertSession(context.Background(), s))
	return s
}

func getWallet(t *testing.T, q store.Queries, addr agentkeys.Wallet) store.Wallet {
	t.Helper()
	w, err := q.Wallet(context.Background(), addr)
	mustNil(t, err)
	return w
}

func getSession(t *testing.T, q store.Queries, h agentkeys.TokenHash) store.Session {
	t.Helper()
	s, err := q.Session(context.Background(), h)
	mustNil(t, err)
	return s
}

func equalWallet(t *testing.T, got, want store.Wallet) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("wallet = %+v, want %+v", got, want)
	}
}

func testPing(t *testing.T, s store.Store) {
	mustNil(t, s.Ping(context.Background()))
}

func testWalletInsertGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)

	equalWallet(t, getWallet(t, s, m.Address), m)
	equalWallet(t, getWallet(t, s, a.Address), a)

	got, err := s.WalletByLogin(ctx, m.LoginHash)
	mustNil(t, err)
	equalWallet(t, got, m)
}

func testWalletConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)

	dupAddr := m
	dupAddr.LoginHash = "other-login"
	wantErr(t, s.InsertWallet(ctx, dupAddr), store.ErrConflict)

	dupLogin := m
	dupLogin.Address = agentkeys.NewWallet()
	wantErr(t, s.InsertWallet(ctx, dupLogin), store.ErrConflict)

	// Agents have no login hash; many may coexist.
	agent(t, s, m.Address)
	agent(t, s, m.Address)
}

func testWalletNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	stranger := agentkeys.NewWallet()
	_, err := s.Wallet(ctx, stranger)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.WalletByLogin(ctx, "no-such-login")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Lineage(ctx, stranger)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Subtree(ctx, stranger)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.SetScope(ctx, stranger, nil), store.ErrNotFound)

	// A child of a missing parent is refused.
	orphan := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindAgent, Parent: stranger, CreatedAt: now()}
	wantErr(t, s.InsertWallet(ctx, orphan), store.ErrNotFound)
}

func testLineage(t *testing.T, s store.Store) {
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, a.Address)
	c := agent(t, s, b.Address)
	agent(t, s, b.Address) // a sibling of c, not in c's lineage

	got, err := s.Lineage(context.Background(), c.Address)
	mustNil(t, err)
	want := []agentkeys.Wallet{c.Address, b.Address, a.Address, m.Address}
	if len(got) != len(want) {
		t.Fatalf("lineage has %d wallets, want %d", len(got), len(want))
	}
	for i, w := range []store.Wallet{c, b, a, m} {
		equalWallet(t, got[i], w)
	}

	got, err = s.Lineage(context.Background(), m.Address)
	mustNil(t, err)
	if len(got) != 1 || got[0].Address != m.Address {
		t.Fatalf("lineage of a master = %v, want just itself", got)
	}
}

func testSubtree(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a1 := agent(t, s, m.Address)
	a2 := agent(t, s, m.Address)
	b1 := agent(t, s, a1.Address)
	b2 := agent(t, s, a1.Address)
	c1 := agent(t, s, b1.Address)
	other := master(t, s)
	agent(t, s, other.Address)

	got, err := s.Subtree(ctx, m.Address)
	mustNil(t, err)
	if got[0] != m.Address {
		t.Errorf("subtree starts with %v, want the root", got[0])
	}
	want := []agentkeys.Wallet{m.Address, a1.Address, a2.Address, b1.Address, b2.Address, c1.Address}
	if !sameSet(got, want) {
		t.Errorf("subtree = %v, want %v in any order after the root", got, want)
	}

	got, err = s.Subtree(ctx, a1.Address)
	mustNil(t, err)
	if want := []agentkeys.Wallet{a1.Address, b1.Address, b2.Address, c1.Address}; got[0] != a1.Address || !sameSet(got, want) {
		t.Errorf("subtree(a1) = %v, want %v", got, want)
	}

	got, err = s.Subtree(ctx, c1.Address)
	mustNil(t, err)
	if !slices.Equal(got, []agentkeys.Wallet{c1.Address}) {
		t.Errorf("subtree of a leaf = %v, want just itself", got)
	}
}

func sameSet[T comparable](got, want []T) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[T]int{}
	for _, v := range got {
		seen[v]++
	}
	for _, v := range want {
		seen[v]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func testSetScope(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)

	if got := getWallet(t, s, m.Address); got.Scope != nil {
		t.Fatalf("master scope = %+v, want nil", got.Scope)
	}
	cases := []struct {
		name  string
		scope *agentkeys.Scope
	}{
		{"list", &agentkeys.Scope{Services: []string{"aws-prod", "openrouter"}, ReadOnly: true}},
		{"empty", &agentkeys.Scope{Services: []string{}}},
		{"nil", nil},
		{"empty-again", &agentkeys.Scope{Services: []string{}, ReadOnly: true}},
	}
	for _, c := range cases {
		mustNil(t, s.SetScope(ctx, a.Address, c.scope))
		got := getWallet(t, s, a.Address).Scope
		if (got == nil) != (c.scope == nil) {
			t.Fatalf("%s: scope = %+v, want %+v", c.name, got, c.scope)
		}
		if got == nil {
			continue
		}
		if got.ReadOnly != c.scope.ReadOnly || !slices.Equal(got.Services, c.scope.Services) {
			t.Errorf("%s: scope = %+v, want %+v", c.name, got, c.scope)
		}
		// An empty list allows nothing; it must not come back as "no scope".
		if len(c.scope.Services) == 0 && got.Allows("openrouter") {
			t.Errorf("%s: empty scope allows a service", c.name)
		}
	}
}

func testTombstoneWallets(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, a.Address)

	mustNil(t, s.TombstoneWallets(ctx, nil))
	mustNil(t, s.TombstoneWallets(ctx, []agentkeys.Wallet{a.Address, b.Address, agentkeys.NewWallet()}))
	for _, c := range []struct {
		w    store.Wallet
		dead bool
	}{{m, false}, {a, true}, {b, true}} {
		if got := getWallet(t, s, c.w.Address); got.TornDown != c.dead {
			t.Errorf("%s TornDown = %v, want %v", c.w.Kind, got.TornDown, c.dead)
		}
	}
	// Tombstoned wallets are still listed in the tree.
	sub, err := s.Subtree(ctx, m.Address)
	mustNil(t, err)
	if len(sub) != 3 {
		t.Errorf("subtree after tombstone has %d wallets, want 3", len(sub))
	}
}

func testSessionInsertGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	exp := now().Add(time.Hour)
	root := session(t, s, m.Address, "", exp)
	child := session(t, s, m.Address, root.TokenHash, exp)

	for _, want := range []store.Session{root, child} {
		got := getSession(t, s, want.TokenHash)
		if got.TokenHash != want.TokenHash || got.Wallet != want.Wallet || got.ParentHash != want.ParentHash ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.RevokedAt.IsZero() || got.Revoked() {
			t.Errorf("session = %+v, want %+v", got, want)
		}
	}

	revoked := store.Session{TokenHash: agentkeys.NewToken().Hash(), Wallet: m.Address, CreatedAt: now(), ExpiresAt: exp, RevokedAt: now()}
	mustNil(t, s.InsertSession(ctx, revoked))
	if got := getSession(t, s, revoked.TokenHash); !got.RevokedAt.Equal(revoked.RevokedAt) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, revoked.RevokedAt)
	}

	wantErr(t, s.InsertSession(ctx, root), store.ErrConflict)
	_, err := s.Session(ctx, agentkeys.NewToken().Hash())
	wantErr(t, err, store.ErrNotFound)
	orphan := store.Session{TokenHash: agentkeys.NewToken().Hash(), Wallet: agentkeys.NewWallet(), CreatedAt: now(), ExpiresAt: exp}
	wantErr(t, s.InsertSession(ctx, orphan), store.ErrNotFound)
}

func testRevokeSessionTree(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	exp := now().Add(time.Hour)

	// root ─┬─ c1 ── g1 ── gg1
	//       └─ c2 (already revoked) ── g2
	// unrelated
	root := session(t, s, m.Address, "", exp)
	c1 := session(t, s, a.Address, root.TokenHash, exp)
	g1 := session(t, s, a.Address, c1.TokenHash, exp)
	gg1 := session(t, s, a.Address, g1.TokenHash, exp)
	c2 := session(t, s, a.Address, root.TokenHash, exp)
	g2 := session(t, s, a.Address, c2.TokenHash, exp)
	unrelated := session(t, s, m.Address, "", exp)

	early := now().Add(-time.Minute)
	n, err := s.RevokeSessionTree(ctx, c2.TokenHash, early)
	mustNil(t, err)
	if n != 2 {
		t.Fatalf("revoking c2 revoked %d, want 2", n)
	}

	at := now()
	n, err = s.RevokeSessionTree(ctx, root.TokenHash, at)
	mustNil(t, err)
	if n != 4 {
		t.Errorf("revoked %d sessions, want 4 (root, c1, g1, gg1; not the already revoked c2, g2)", n)
	}
	for _, sess := range []store.Session{root, c1, g1, gg1} {
		if got := getSession(t, s, sess.TokenHash); !got.RevokedAt.Equal(at) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at)
		}
	}
	for _, sess := range []store.Session{c2, g2} {
		if got := getSession(t, s, sess.TokenHash); !got.RevokedAt.Equal(early) {
			t.Errorf("already revoked session: RevokedAt = %v, want it kept at %v", got.RevokedAt, early)
		}
	}
	if getSession(t, s, unrelated.TokenHash).Revoked() {
		t.Error("unrelated session revoked")
	}

	n, err = s.RevokeSessionTree(ctx, root.TokenHash, now())
	mustNil(t, err)
	if n != 0 {
		t.Errorf("re-revoking revoked %d, want 0", n)
	}
	n, err = s.RevokeSessionTree(ctx, agentkeys.NewToken().Hash(), now())
	mustNil(t, err)
	if n != 0 {
		t.Errorf("revoking an unknown session revoked %d, want 0", n)
	}
}

func testRevokeWalletSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, m.Address)
	exp := now().Add(time.Hour)
	ms := session(t, s, m.Address, "", exp)
	as1 := session(t, s, a.Address, ms.TokenHash, exp)
	as2 := session(t, s, a.Address, "", exp)
	bs := session(t, s, b.Address, "", exp)
	mustNil(t, s.InsertSession(ctx, store.Session{TokenHash: agentkeys.NewToken().Hash(), Wallet: b.Address,
		CreatedAt: now(), ExpiresAt: exp, RevokedAt: now()}))

	n, err := s.RevokeWalletSessions(ctx, nil, now())
	mustNil(t, err)
	if n != 0 {
		t.Errorf("empty list revoked %d", n)
	}
	at := now()
	n, err = s.RevokeWalletSessions(ctx, []agentkeys.Wallet{a.Address, b.Address}, at)
	mustNil(t, err)
	if n != 3 {
		t.Errorf("revoked %d, want 3", n)
	}
	for _, sess := range []store.Session{as1, as2, bs} {
		if got := getSession(t, s, sess.TokenHash); !got.RevokedAt.Equal(at) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at)
		}
	}
	if getSession(t, s, ms.TokenHash).Revoked() {
		t.Error("master's session revoked")
	}
	n, err = s.RevokeWalletSessions(ctx, []agentkeys.Wallet{a.Address, b.Address}, now())
	mustNil(t, err)
	if n != 0 {
		t.Errorf("second revoke revoked %d, want 0", n)
	}
}

func testDeleteExpiredSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	cut := now()
	gone1 := session(t, s, m.Address, "", cut.Add(-time.Hour))
	gone2 := session(t, s, m.Address, gone1.TokenHash, cut.Add(-time.Millisecond))
	atCut := session(t, s, m.Address, "", cut)
	later := session(t, s, m.Address, "", cut.Add(time.Hour))

	n, err := s.DeleteExpiredSessions(ctx, cut)
	mustNil(t, err)
	if n != 2 {
		t.Errorf("deleted %d, want 2", n)
	}
	for _, h := range []agentkeys.TokenHash{gone1.TokenHash, gone2.TokenHash} {
		_, err := s.Session(ctx, h)
		wantErr(t, err, store.ErrNotFound)
	}
	getSession(t, s, atCut.TokenHash)
	getSession(t, s, later.TokenHash)
}

func testBrokerTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	parent := session(t, s, m.Address, "", now().Add(time.Hour))
	cut := now()
	mk := func(exp time.Time) store.BrokerToken {
		bt := store.BrokerToken{TokenHash: agentkeys.NewToken().Hash(), ParentHash: parent.TokenHash,
			Audience: store.AudienceBroker, CreatedAt: cut.Add(-time.Minute), ExpiresAt: exp}
		mustNil(t, s.InsertBrokerToken(ctx, bt))
		return bt
	}
	live := mk(cut.Add(5 * time.Minute))
	gone := mk(cut.Add(-time.Millisecond))
	atCut := mk(cut)

	got, err := s.BrokerToken(ctx, live.TokenHash)
	mustNil(t, err)
	if got.TokenHash != live.TokenHash || got.ParentHash != live.ParentHash || got.Audience != store.AudienceBroker ||
		!got.CreatedAt.Equal(live.CreatedAt) || !got.ExpiresAt.Equal(live.ExpiresAt) {
		t.Errorf("broker token = %+v, want %+v", got, live)
	}
	wantErr(t, s.InsertBrokerToken(ctx, live), store.ErrConflict)
	_, err = s.BrokerToken(ctx, agentkeys.NewToken().Hash())
	wantErr(t, err, store.ErrNotFound)
	// A broker token is never a session, nor the other way round.
	_, err = s.Session(ctx, live.TokenHash)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.BrokerToken(ctx, parent.TokenHash)
	wantErr(t, err, store.ErrNotFound)
	orphan := store.BrokerToken{TokenHash: agentkeys.NewToken().Hash(), ParentHash: agentkeys.NewToken().Hash(),
		Audience: store.AudienceBroker, CreatedAt: cut, ExpiresAt: cut.Add(time.Minute)}
	wantErr(t, s.InsertBrokerToken(ctx, orphan), store.ErrNotFound)

	n, err := s.DeleteExpiredBrokerTokens(ctx, cut)
	mustNil(t, err)
	if n != 1 {
		t.Errorf("deleted %d, want 1", n)
	}
	_, err = s.BrokerToken(ctx, gone.TokenHash)
	wantErr(t, err, store.ErrNotFound)
	for _, h := range []agentkeys.TokenHash{live.TokenHash, atCut.TokenHash} {
		_, err := s.BrokerToken(ctx, h)
		mustNil(t, err)
	}
}

// testBrokerTokensDieWithParent: sweeping the parent session removes its
// derived tokens, inside a transaction as outside.
func testBrokerTokensDieWithParent(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	cut := now()
	old := session(t, s, m.Address, "", cut.Add(-time.Second))
	keep := session(t, s, m.Address, "", cut.Add(time.Hour))
	var doomed, kept store.BrokerToken
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		doomed = store.BrokerToken{TokenHash: agentkeys.NewToken().Hash(), ParentHash: old.TokenHash,
			Audience: store.AudienceBroker, CreatedAt: cut, ExpiresAt: cut.Add(time.Hour)}
		kept = store.BrokerToken{TokenHash: agentkeys.NewToken().Hash(), ParentHash: keep.TokenHash,
			Audience: store.AudienceBroker, CreatedAt: cut, ExpiresAt: cut.Add(time.Hour)}
		if err := q.InsertBrokerToken(ctx, doomed); err != nil {
			return err
		}
		return q.InsertBrokerToken(ctx, kept)
	}))
	_, err := s.DeleteExpiredSessions(ctx, cut)
	mustNil(t, err)
	_, err = s.BrokerToken(ctx, doomed.TokenHash)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.BrokerToken(ctx, kept.TokenHash)
	mustNil(t, err)
}

func testCredentialPutGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	t0 := now().Add(-time.Hour)
	c := store.Credential{Wallet: m.Address, Service: "openrouter", Sealed: []byte{0, 1, 2, 0xff}, CreatedAt: t0, UpdatedAt: t0}
	mustNil(t, s.PutCredential(ctx, c))

	got, err := s.Credential(ctx, m.Address, "openrouter")
	mustNil(t, err)
	if got.Wallet != c.Wallet || got.Service != c.Service || !slices.Equal(got.Sealed, c.Sealed) ||
		!got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) {
		t.Errorf("credential = %+v, want %+v", got, c)
	}

	t1 := now()
	mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: "openrouter", Sealed: []byte("new"), CreatedAt: t1, UpdatedAt: t1}))
	got, err = s.Credential(ctx, m.Address, "openrouter")
	mustNil(t, err)
	if string(got.Sealed) != "new" || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t1) {
		t.Errorf("after replace: sealed %q created %v updated %v; want %q, %v, %v", got.Sealed, got.CreatedAt, got.UpdatedAt, "new", t0, t1)
	}

	_, err = s.Credential(ctx, m.Address, "missing")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Credential(ctx, agentkeys.NewWallet(), "openrouter")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.PutCredential(ctx, store.Credential{Wallet: agentkeys.NewWallet(), Service: "x", Sealed: []byte("x")}), store.ErrNotFound)
}

func testServices(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	other := master(t, s)
	for _, svc := range []string{"b", "ab", "a_x", "a", "a-x", "0z"} {
		mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: svc, Sealed: []byte("s"), CreatedAt: now(), UpdatedAt: now()}))
	}
	mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: other.Address, Service: "zz", Sealed: []byte("s"), CreatedAt: now(), UpdatedAt: now()}))

	got, err := s.Services(ctx, m.Address)
	mustNil(t, err)
	if want := []string{"0z", "a", "a-x", "a_x", "ab", "b"}; !slices.Equal(got, want) {
		t.Errorf("services = %q, want %q (byte order)", got, want)
	}
	got, err = s.Services(ctx, agentkeys.NewWallet())
	mustNil(t, err)
	if len(got) != 0 {
		t.Errorf("services of an unknown wallet = %q, want none", got)
	}
	creds, err := s.Credentials(ctx, m.Address)
	mustNil(t, err)
	var names []string
	for _, c := range creds {
		if c.Wallet != m.Address || string(c.Sealed) != "s" || c.CreatedAt.IsZero() {
			t.Errorf("credential %+v: want the stored row of %s", c, m.Address)
		}
		names = append(names, c.Service)
	}
	if want := []string{"0z", "a", "a-x", "a_x", "ab", "b"}; !slices.Equal(names, want) {
		t.Errorf("credentials = %q, want %q (byte order)", names, want)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	other := master(t, s)
	t0 := now().Add(-time.Hour)
	for _, svc := range []string{"b", "a-x", "a"} {
		mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: svc, Sealed: []byte("v-" + svc), CreatedAt: t0, UpdatedAt: t0}))
	}
	mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: other.Address, Service: "zz", Sealed: []byte("s"), CreatedAt: t0, UpdatedAt: t0}))
	t1 := now()
	mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: "b", Sealed: []byte("v-b2"), CreatedAt: t1, UpdatedAt: t1}))

	got, err := s.Credentials(ctx, m.Address)
	mustNil(t, err)
	want := []struct {
		svc, sealed string
		updated     time.Time
	}{{"a", "v-a", t0}, {"a-x", "v-a-x", t0}, {"b", "v-b2", t1}}
	if len(got) != len(want) {
		t.Fatalf("credentials = %+v, want %d", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Wallet != m.Address || g.Service != w.svc || string(g.Sealed) != w.sealed || !g.CreatedAt.Equal(t0) || !g.UpdatedAt.Equal(w.updated) {
			t.Errorf("credential %d = %+v, want %s %q updated %v", i, g, w.svc, w.sealed, w.updated)
		}
	}
	got, err = s.Credentials(ctx, agentkeys.NewWallet())
	mustNil(t, err)
	if len(got) != 0 {
		t.Errorf("credentials of an unknown wallet = %+v, want none", got)
	}
}

func testDeleteWalletData(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, a.Address)
	put := func(w agentkeys.Wallet, svc string) {
		mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: w, Service: svc, Sealed: []byte("s"), CreatedAt: now(), UpdatedAt: now()}))
	}
	put(m.Address, "keep")
	put(a.Address, "x")
	put(a.Address, "y")
	put(b.Address, "z")
	for i, w := range []agentkeys.Wallet{m.Address, a.Address, b.Address} {
		putLink(t, s, w, "alias", fmt.Sprint("name", i), now())
		putLink(t, s, w, "email", fmt.Sprintf("user%d@example.com", i), now())
		box := insertInbox(t, s, w, fmt.Sprintf("box%d@mock.test", i), now()).Address
		insertMessage(t, s, box, fmt.Sprint("msg", i, "a"), now())
		insertMessage(t, s, box, fmt.Sprint("msg", i, "b"), now())
	}

	n, err := s.DeleteWalletData(ctx, nil)
	mustNil(t, err)
	if n != 0 {
		t.Errorf("empty list deleted %d", n)
	}
	n, err = s.DeleteWalletData(ctx, []agentkeys.Wallet{a.Address, b.Address})
	mustNil(t, err)
	if n != 3 {
		t.Errorf("deleted %d credentials, want 3", n)
	}
	for _, w := range []agentkeys.Wallet{a.Address, b.Address} {
		svcs, err := s.Services(ctx, w)
		mustNil(t, err)
		if len(svcs) != 0 {
			t.Errorf("services left after delete: %q", svcs)
		}
	}
	if _, err := s.Credential(ctx, m.Address, "keep"); err != nil {
		t.Errorf("other wallet's credential: %v", err)
	}
	for i, w := range []agentkeys.Wallet{m.Address, a.Address, b.Address} {
		want := 2
		if w != m.Address {
			want = 0
		}
		links, err := s.IdentityLinks(ctx, w)
		mustNil(t, err)
		boxes, err := s.Inboxes(ctx, w)
		mustNil(t, err)
		msgs, err := s.InboxMessages(ctx, fmt.Sprintf("box%d@mock.test", i), time.Time{}, 0)
		mustNil(t, err)
		if len(links) != want || len(boxes) != want/2 || len(msgs) != want {
			t.Errorf("wallet %d: %d links, %d inboxes, %d messages left; want %d, %d, %d",
				i, len(links), len(boxes), len(msgs), want, want/2, want)
		}
	}
	_, err = s.ResolveIdentity(ctx, "email", "user1@example.com")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Inbox(ctx, "box1@mock.test")
	wantErr(t, err, store.ErrNotFound)
	// The names and addresses are free again.
	putLink(t, s, m.Address, "email", "user1@example.com", now())
	insertInbox(t, s, m.Address, "box1@mock.test", now())

	// Inside a transaction too.
	put(b.Address, "again")
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		n, err := q.DeleteWalletData(ctx, []agentkeys.Wallet{b.Address})
		if n != 1 {
			t.Errorf("deleted %d in Tx, want 1", n)
		}
		return err
	}))
}

// appendAudit stores e and returns it with its id.
func appendAudit(t *testing.T, q store.Queries, e agentkeys.AuditEvent) agentkeys.AuditEvent {
	t.Helper()
	id, err := q.AppendAudit(context.Background(), e)
	mustNil(t, err)
	e.ID = id
	return e
}

func queryAudit(t *testing.T, q store.Queries, aq store.AuditQuery) []agentkeys.AuditEvent {
	t.Helper()
	got, err := q.QueryAudit(context.Background(), aq)
	mustNil(t, err)
	return got
}

func ids(es []agentkeys.AuditEvent) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// newestFirst returns the ids of es from highest to lowest.
func newestFirst(es ...agentkeys.AuditEvent) []int64 {
	out := ids(es)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func testAuditAppendQuery(t *testing.T, s store.Store) {
	m := master(t, s)
	a := agent(t, s, m.Address)
	e1 := appendAudit(t, s, agentkeys.AuditEvent{Time: now(), Owner: m.Address, Agent: a.Address, Service: "openrouter",
		Action: agentkeys.ActionStore, Result: agentkeys.ResultOK, Detail: "first"})
	e2 := appendAudit(t, s, agentkeys.AuditEvent{Time: now(), Owner: a.Address, Agent: a.Address, Service: agentkeys.AuditWildcard,
		Action: agentkeys.ActionList, Result: agentkeys.ResultOK})
	if e2.ID <= e1.ID {
		t.Fatalf("ids not increasing: %d then %d", e1.ID, e2.ID)
	}

	got := queryAudit(t, s, store.AuditQuery{Viewer: m.Address})
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
	for i, want := range []agentkeys.AuditEvent{e2, e1} {
		g := got[i]
		if !g.Time.Equal(want.Time) {
			t.Errorf("row %d time = %v, want %v", i, g.Time, want.Time)
		}
		g.Time, want.Time = time.Time{}, time.Time{}
		if g != want {
			t.Errorf("row %d = %+v, want %+v", i, g, want)
		}
	}
}

func testAuditAppendBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	mustNil(t, s.AppendAudits(ctx, nil))
	var want []agentkeys.AuditEvent
	for i := range 3 {
		want = append(want, agentkeys.AuditEvent{Time: now().Add(time.Duration(i) * time.Millisecond), Owner: a.Address, Agent: a.Address,
			Service: "openai", Action: "http", Result: agentkeys.ResultOK, Detail: fmt.Sprintf("POST /v1/x%d", i), ClientIP: "127.0.0.1"})
	}
	mustNil(t, s.AppendAudits(ctx, want))
	got := queryAudit(t, s, store.AuditQuery{Viewer: m.Address})
	if len(got) != 3 {
		t.Fatalf("got %d rows, want 3", len(got))
	}
	for i := range want {
		g, w := got[2-i], want[i] // newest first: the batch keeps its order
		if !g.Time.Equal(w.Time) {
			t.Errorf("row %d time = %v, want %v", i, g.Time, w.Time)
		}
		g.Time, w.Time, g.ID = time.Time{}, time.Time{}, 0
		if g != w {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	// All or nothing: a batch inside a failed transaction leaves no row.
	err := s.Tx(ctx, func(q store.Queries) error {
		mustNil(t, q.AppendAudits(ctx, want[:1]))
		return errors.New("abort")
	})
	if err == nil {
		t.Fatal("Tx did not return the callback's error")
	}
	if n := len(queryAudit(t, s, store.AuditQuery{Viewer: m.Address})); n != 3 {
		t.Fatalf("a rolled-back batch left rows: %d", n)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, m.Address)
	ev := func(owner, target agentkeys.Wallet, svc, action, result string) agentkeys.AuditEvent {
		return appendAudit(t, s, agentkeys.AuditEvent{Time: now(), Owner: owner, Agent: target, Service: svc, Action: action, Result: result})
	}
	e1 := ev(m.Address, a.Address, "openrouter", agentkeys.ActionStore, agentkeys.ResultOK)
	e2 := ev(a.Address, a.Address, "openrouter", agentkeys.ActionRead, agentkeys.ResultOK)
	e3 := ev(a.Address, b.Address, "aws", agentkeys.ActionRead, agentkeys.ResultDenied)
	e4 := ev(b.Address, b.Address, "aws", agentkeys.ActionRead, agentkeys.ResultDeniedScope)

	for _, c := range []struct {
		name string
		q    store.AuditQuery
		want []int64
	}{
		{"owner", store.AuditQuery{Owner: a.Address}, newestFirst(e2, e3)},
		{"agent", store.AuditQuery{Agent: b.Address}, newestFirst(e3, e4)},
		{"service", store.AuditQuery{Service: "openrouter"}, newestFirst(e1, e2)},
		{"action", store.AuditQuery{Action: agentkeys.ActionRead}, newestFirst(e2, e3, e4)},
		{"result", store.AuditQuery{Result: agentkeys.ResultDenied}, newestFirst(e3)},
		{"owner+service", store.AuditQuery{Owner: a.Address, Service: "aws"}, newestFirst(e3)},
		{"all", store.AuditQuery{Owner: b.Address, Agent: b.Address, Service: "aws", Action: agentkeys.ActionRead, Result: agentkeys.ResultDeniedScope}, newestFirst(e4)},
		{"none", store.AuditQuery{Owner: m.Address, Service: "aws"}, []int64{}},
	} {
		c.q.Viewer = m.Address
		if got := ids(queryAudit(t, s, c.q)); !slices.Equal(got, c.want) {
			t.Errorf("%s: ids = %v, want %v", c.name, got, c.want)
		}
	}
}

func testAuditTimeRange(t *testing.T, s store.Store) {
	m := master(t, s)
	base := now()
	var es []agentkeys.AuditEvent
	for i := range 5 {
		es = append(es, appendAudit(t, s, agentkeys.AuditEvent{Time: base.Add(time.Duration(i) * time.Minute),
			Owner: m.Address, Agent: m.Address, Service: "x", Action: agentkeys.ActionRead, Result: agentkeys.ResultOK}))
	}
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	for _, c := range []struct {
		name         string
		since, until time.Time
		want         []int64
	}{
		{"since inclusive", at(3), time.Time{}, newestFirst(es[3], es[4])},
		{"until exclusive", time.Time{}, at(2), newestFirst(es[0], es[1])},
		{"window", at(1), at(4), newestFirst(es[1], es[2], es[3])},
		{"empty window", at(2), at(2), []int64{}},
		{"between rows", at(1).Add(time.Millisecond), at(2), []int64{}},
	} {
		got := ids(queryAudit(t, s, store.AuditQuery{Viewer: m.Address, Since: c.since, Until: c.until}))
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: ids = %v, want %v", c.name, got, c.want)
		}
	}
}

func testAuditPagination(t *testing.T, s store.Store) {
	m := master(t, s)
	var all []agentkeys.AuditEvent
	for i := range 25 {
		all = append(all, appendAudit(t, s, agentkeys.AuditEvent{Time: now(), Owner: m.Address, Agent: m.Address,
			Service: "x", Action: agentkeys.ActionRead, Result: agentkeys.ResultOK, Detail: fmt.Sprint(i)}))
	}
	var got []int64
	q := store.AuditQuery{Viewer: m.Address, Limit: 7}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		page := queryAudit(t, s, q)
		if len(page) > 7 {
			t.Fatalf("page of %d rows, limit 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		q.BeforeID = page[len(page)-1].ID
	}
	if want := newestFirst(all...); !slices.Equal(got, want) {
		t.Errorf("paged ids = %v, want %v", got, want)
	}
}

func testAuditLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		for range store.MaxAuditLimit + 1 {
			if _, err := q.AppendAudit(ctx, agentkeys.AuditEvent{Time: now(), Owner: m.Address, Agent: m.Address,
				Service: "x", Action: agentkeys.ActionRead, Result: agentkeys.ResultOK}); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, c := range []struct{ limit, want int }{
		{0, store.DefaultAuditLimit},
		{-1, store.DefaultAuditLimit},
		{3, 3},
		{store.MaxAuditLimit * 5, store.MaxAuditLimit},
	} {
		if got := queryAudit(t, s, store.AuditQuery{Viewer: m.Address, Limit: c.limit}); len(got) != c.want {
			t.Errorf("limit %d: got %d rows, want %d", c.limit, len(got), c.want)
		}
	}
}

func testAuditVisibility(t *testing.T, s store.Store) {
	m := master(t, s)
	a := agent(t, s, m.Address)
	b := agent(t, s, a.Address)
	c := agent(t, s, b.Address)
	stranger := master(t, s)
	ev := func(owner, target agentkeys.Wallet) agentkeys.AuditEvent {
		return appendAudit(t, s, agentkeys.AuditEvent{Time: now(), Owner: owner, Agent: target, Service: "x",
			Action: agentkeys.ActionRead, Result: agentkeys.ResultOK})
	}
	mm := ev(m.Address, m.Address)
	ma := ev(m.Address, a.Address)
	ab := ev(a.Address, b.Address)
	cc := ev(c.Address, c.Address)
	ss := ev(stranger.Address, stranger.Address)
	sb := ev(stranger.Address, b.Address) // a stranger acting on m's descendant

	for _, v := range []struct {
		name   string
		viewer agentkeys.Wallet
		want   []int64
	}{
		{"master", m.Address, newestFirst(mm, ma, ab, cc, sb)},
		{"agent", a.Address, newestFirst(ma, ab, cc, sb)},
		{"leaf", c.Address, newestFirst(cc)},
		{"stranger", stranger.Address, newestFirst(ss, sb)},
		{"unknown", agentkeys.NewWallet(), []int64{}},
	} {
		if got := ids(queryAudit(t, s, store.AuditQuery{Viewer: v.viewer})); !slices.Equal(got, v.want) {
			t.Errorf("%s sees %v, want %v", v.name, got, v.want)
		}
	}
	// Filters cannot widen visibility.
	if got := queryAudit(t, s, store.AuditQuery{Viewer: a.Address, Owner: stranger.Address, Agent: stranger.Address}); len(got) != 0 {
		t.Errorf("filter on a stranger shows %v", ids(got))
	}
}

func testTxCommit(t *testing.T, s store.Store) {
	ctx := context.Background()
	var m, a store.Wallet
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		m = master(t, q)
		a = agent(t, q, m.Address)
		// The transaction sees its own writes.
		if got := getWallet(t, q, a.Address); got.Parent != m.Address {
			t.Errorf("parent = %v inside tx", got.Parent)
		}
		return q.PutCredential(ctx, store.Credential{Wallet: a.Address, Service: "x", Sealed: []byte("s"), CreatedAt: now(), UpdatedAt: now()})
	}))
	getWallet(t, s, m.Address)
	getWallet(t, s, a.Address)
	if _, err := s.Credential(ctx, a.Address, "x"); err != nil {
		t.Errorf("credential after commit: %v", err)
	}
}

func testTxRollbackOnError(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	boom := errors.New("boom")
	var a store.Wallet
	err := s.Tx(ctx, func(q store.Queries) error {
		a = agent(t, q, m.Address)
		mustNil(t, q.PutCredential(ctx, store.Credential{Wallet: a.Address, Service: "x", Sealed: []byte("s"), CreatedAt: now(), UpdatedAt: now()}))
		mustNil(t, q.TombstoneWallets(ctx, []agentkeys.Wallet{m.Address}))
		return fmt.Errorf("step two: %w", boom)
	})
	wantErr(t, err, boom)
	_, err = s.Wallet(ctx, a.Address)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.Credential(ctx, a.Address, "x")
	wantErr(t, err, store.ErrNotFound)
	if getWallet(t, s, m.Address).TornDown {
		t.Error("tombstone survived rollback")
	}

	// A store error inside fn also rolls back.
	var b store.Wallet
	err = s.Tx(ctx, func(q store.Queries) error {
		b = agent(t, q, m.Address)
		return q.InsertWallet(ctx, m) // duplicate
	})
	wantErr(t, err, store.ErrConflict)
	_, err = s.Wallet(ctx, b.Address)
	wantErr(t, err, store.ErrNotFound)
}

func testTxRollbackOnPanic(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	var a store.Wallet
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("recovered %v, want the original panic", p)
			}
		}()
		_ = s.Tx(ctx, func(q store.Queries) error {
			a = agent(t, q, m.Address)
			panic("kaboom")
		})
		t.Error("Tx returned after a panic")
	}()
	_, err := s.Wallet(ctx, a.Address)
	wantErr(t, err, store.ErrNotFound)
	// The store is still usable: the transaction and any lock were released.
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		agent(t, q, m.Address)
		return nil
	}))
}

func testTxConcurrentWriters(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	const workers, puts = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*puts)
	for w := range workers {
		wg.Go(func() {
			for i := range puts {
				errs <- s.Tx(ctx, func(q store.Queries) error {
					svc := fmt.Sprintf("svc-%02d-%02d", w, i)
					if err := q.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: svc, Sealed: []byte(svc), CreatedAt: now(), UpdatedAt: now()}); err != nil {
						return err
					}
					_, err := q.Credential(ctx, m.Address, svc)
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	svcs, err := s.Services(ctx, m.Address)
	mustNil(t, err)
	if len(svcs) != workers*puts {
		t.Errorf("%d services stored, want %d", len(svcs), workers*puts)
	}
}

// testTxSerialized checks that concurrent read-modify-write transactions do
// not lose updates: the backend relies on Tx for check-then-act.
func testTxSerialized(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	mustNil(t, s.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: "counter", Sealed: []byte{0, 0}, CreatedAt: now(), UpdatedAt: now()}))
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for range workers {
		wg.Go(func() {
			for range rounds {
				errs <- s.Tx(ctx, func(q store.Queries) error {
					c, err := q.Credential(ctx, m.Address, "counter")
					if err != nil {
						return err
					}
					n := int(c.Sealed[0])<<8 | int(c.Sealed[1])
					n++
					c.Sealed = []byte{byte(n >> 8), byte(n)}
					c.UpdatedAt = now()
					return q.PutCredential(ctx, c)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Credential(ctx, m.Address, "counter")
	mustNil(t, err)
	if n := int(c.Sealed[0])<<8 | int(c.Sealed[1]); n != workers*rounds {
		t.Errorf("counter = %d after %d increments: transactions lost updates", n, workers*rounds)
	}
}

func testRevocationEpoch(t *testing.T, s store.Store) {
	testEpoch(t, s, store.Queries.BumpRevocationEpoch, store.Queries.RevocationEpoch)
}

func testPairingEpoch(t *testing.T, s store.Store) {
	testEpoch(t, s, store.Queries.BumpPairingEpoch, store.Queries.PairingEpoch)
	// The two counters are independent.
	if e, err := s.RevocationEpoch(context.Background()); err != nil || e != 0 {
		t.Fatalf("revocation epoch after pairing bumps = %d, %v; want 0", e, err)
	}
}

// testEpoch checks a single-row counter: it starts at 0, a bump in a
// transaction commits or rolls back with it, and concurrent bumps are
// neither lost nor duplicated.
func testEpoch(t *testing.T, s store.Store, bumpQ, readQ func(store.Queries, context.Context) (int64, error)) {
	ctx := context.Background()
	e, err := readQ(s, ctx)
	mustNil(t, err)
	if e != 0 {
		t.Fatalf("fresh store epoch = %d, want 0", e)
	}
	n, err := bumpQ(s, ctx)
	mustNil(t, err)
	if n != 1 {
		t.Fatalf("first bump = %d, want 1", n)
	}
	// A bump inside a transaction is visible once it commits, and not at
	// all if it rolls back.
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		n, err := bumpQ(q, ctx)
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("bump in tx = %d, want 2", n)
		}
		in, err := readQ(q, ctx)
		if err != nil || in != 2 {
			return fmt.Errorf("epoch read in tx = %d, %v", in, err)
		}
		return nil
	}))
	boom := errors.New("boom")
	wantErr(t, s.Tx(ctx, func(q store.Queries) error {
		if _, err := bumpQ(q, ctx); err != nil {
			return err
		}
		return boom
	}), boom)
	if e, err = readQ(s, ctx); err != nil || e != 2 {
		t.Fatalf("epoch after commit and rollback = %d, %v; want 2", e, err)
	}
	// Concurrent bumps never hand out the same value and none is lost.
	const workers = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int64]bool{}
	)
	for range workers {
		wg.Go(func() {
			var got int64
			err := s.Tx(ctx, func(q store.Queries) error {
				var err error
				got, err = bumpQ(q, ctx)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("concurrent bump: %v", err)
				return
			}
			if seen[got] {
				t.Errorf("epoch %d handed out twice", got)
			}
			seen[got] = true
		})
	}
	wg.Wait()
	if e, err = readQ(s, ctx); err != nil || e != 2+workers {
		t.Fatalf("epoch after %d concurrent bumps = %d, %v; want %d", workers, e, err, 2+workers)
	}
}

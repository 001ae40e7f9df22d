package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// pairingTests are the subtests of store.PairingQueries.
var pairingTests = []conformanceTest{
	{"AuthRequestInsertGet", testAuthRequestInsertGet},
	{"AuthRequestConflicts", testAuthRequestConflicts},
	{"UpdateAuthRequest", testUpdateAuthRequest},
	{"DeleteExpiredAuthRequests", testDeleteExpiredAuthRequests},
	{"PendingAuthRequests", testPendingAuthRequests},
	{"IdentityLinks", testIdentityLinks},
	{"IdentityLinkConflicts", testIdentityLinkConflicts},
	{"RendezvousInsertGet", testRendezvousInsertGet},
	{"UpdateRendezvous", testUpdateRendezvous},
	{"DeleteExpiredRendezvous", testDeleteExpiredRendezvous},
	{"Inboxes", testInboxes},
	{"InboxMessages", testInboxMessages},
	{"InboxMessagesDefaultLimit", testInboxMessagesDefaultLimit},
}

// newID returns a fresh 64-hex id.
func newID() string { return string(agentkeys.NewToken()) }

// pairCode returns a fresh pair-code-shaped string.
func pairCode() string { return newID()[:8] }

// fullAuthRequest returns a request with every field set.
func fullAuthRequest(parent, approver, result agentkeys.Wallet) store.AuthRequest {
	t := now()
	return store.AuthRequest{
		ID:             newID(),
		PairCode:       pairCode(),
		Type:           "pair",
		Details:        []byte{0xa1, 0x00, 0xff},
		ChildPubkey:    []byte{1, 2, 3, 4},
		ParentWallet:   parent,
		IdentityType:   "email",
		IdentityValue:  "alice@example.com",
		OTPHash:        string(agentkeys.HashSecret("123456")),
		AwaitHash:      agentkeys.NewToken().Hash(),
		Status:         store.AuthApproved,
		FailedAttempts: 2,
		ApproverWallet: approver,
		ResultWallet:   result,
		SealedSession:  []byte("sealed session"),
		BoxPubkey:      []byte{5, 6, 7},
		Signature:      []byte("signature"),
		CreatedAt:      t.Add(-time.Minute),
		ExpiresAt:      t.Add(5 * time.Minute),
		DecidedAt:      t,
	}
}

// minimalAuthRequest returns a pending request with every optional field
// at its zero value.
func minimalAuthRequest() store.AuthRequest {
	return store.AuthRequest{
		ID:        newID(),
		PairCode:  pairCode(),
		Type:      "recover",
		AwaitHash: agentkeys.NewToken().Hash(),
		Status:    store.AuthPending,
		CreatedAt: now(),
		ExpiresAt: now().Add(5 * time.Minute),
	}
}

func getAuthRequest(t *testing.T, q store.Queries, id string) store.AuthRequest {
	t.Helper()
	r, err := q.AuthRequest(context.Background(), id)
	mustNil(t, err)
	return r
}

// equalTimes compares the time.Time fields of got and want (pointers to
// structs of the same type) with Equal, then zeroes them in both.
func equalTimes(t *testing.T, got, want any) {
	t.Helper()
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	timeType := reflect.TypeFor[time.Time]()
	for i := range g.NumField() {
		if g.Field(i).Type() != timeType {
			continue
		}
		gt, wt := g.Field(i).Interface().(time.Time), w.Field(i).Interface().(time.Time)
		if !gt.Equal(wt) || gt.IsZero() != wt.IsZero() {
			t.Errorf("%s = %v, want %v", g.Type().Field(i).Name, gt, wt)
		}
		g.Field(i).Set(reflect.Zero(timeType))
		w.Field(i).Set(reflect.Zero(timeType))
	}
}

// equalRecord checks that got equals want field by field, times compared
// with Equal and byte slices by content and nil-ness.
func equalRecord[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	equalTimes(t, &got, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

func testAuthRequestInsertGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	full := fullAuthRequest(m.Address, m.Address, a.Address)
	minimal := minimalAuthRequest()
	for _, r := range []store.AuthRequest{full, minimal} {
		mustNil(t, s.InsertAuthRequest(ctx, r))
	}
	for _, want := range []store.AuthRequest{full, minimal} {
		equalRecord(t, "by id", getAuthRequest(t, s, want.ID), want)
		got, err := s.AuthRequestByPairCode(ctx, want.PairCode)
		mustNil(t, err)
		equalRecord(t, "by pair code", got, want)
	}
	got := getAuthRequest(t, s, minimal.ID)
	if got.Details != nil || got.ChildPubkey != nil || got.SealedSession != nil || got.BoxPubkey != nil || got.Signature != nil || !got.DecidedAt.IsZero() ||
		got.ParentWallet != "" || got.ApproverWallet != "" || got.ResultWallet != "" {
		t.Errorf("zero fields did not round-trip: %+v", got)
	}

	// An empty sealed session is a value, not "none".
	empty := minimalAuthRequest()
	empty.SealedSession = []byte{}
	mustNil(t, s.InsertAuthRequest(ctx, empty))
	if got := getAuthRequest(t, s, empty.ID).SealedSession; got == nil || len(got) != 0 {
		t.Errorf("empty SealedSession came back as %#v", got)
	}
}

func testAuthRequestConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := minimalAuthRequest()
	mustNil(t, s.InsertAuthRequest(ctx, r))

	sameID := minimalAuthRequest()
	sameID.ID = r.ID
	wantErr(t, s.InsertAuthRequest(ctx, sameID), store.ErrConflict)
	sameCode := minimalAuthRequest()
	sameCode.PairCode = r.PairCode
	wantErr(t, s.InsertAuthRequest(ctx, sameCode), store.ErrConflict)
	_, err := s.AuthRequest(ctx, sameCode.ID)
	wantErr(t, err, store.ErrNotFound)

	_, err = s.AuthRequest(ctx, newID())
	wantErr(t, err, store.ErrNotFound)
	_, err = s.AuthRequestByPairCode(ctx, pairCode())
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.UpdateAuthRequest(ctx, minimalAuthRequest()), store.ErrNotFound)

	// Requests name wallets without requiring them to exist: they are
	// opened before the child's wallet is created.
	mustNil(t, s.InsertAuthRequest(ctx, fullAuthRequest(agentkeys.NewWallet(), agentkeys.NewWallet(), agentkeys.NewWallet())))
}

func testUpdateAuthRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a := agent(t, s, m.Address)
	orig := minimalAuthRequest()
	orig.ParentWallet = m.Address
	orig.Details = []byte("details")
	orig.ChildPubkey = []byte("pubkey")
	mustNil(t, s.InsertAuthRequest(ctx, orig))

	// Every field differs; only the mutable ones may be stored.
	upd := fullAuthRequest(a.Address, m.Address, a.Address)
	upd.ID = orig.ID
	upd.Status = store.AuthApproved
	mustNil(t, s.UpdateAuthRequest(ctx, upd))
	want := orig
	want.Status, want.FailedAttempts = upd.Status, upd.FailedAttempts
	want.ApproverWallet, want.ResultWallet = upd.ApproverWallet, upd.ResultWallet
	want.SealedSession, want.DecidedAt = upd.SealedSession, upd.DecidedAt
	want.Signature = upd.Signature // BoxPubkey is fixed at insert
	equalRecord(t, "after update", getAuthRequest(t, s, orig.ID), want)
	if _, err := s.AuthRequestByPairCode(ctx, upd.PairCode); err == nil {
		t.Error("update changed the pair code")
	}

	// Mutable fields go back to their zero values, inside a transaction too.
	back := want
	back.Status = store.AuthDelivered
	back.FailedAttempts = 0
	back.ApproverWallet, back.ResultWallet = "", ""
	back.SealedSession = nil
	back.Signature = nil
	back.DecidedAt = time.Time{}
	mustNil(t, s.Tx(ctx, func(q store.Queries) error { return q.UpdateAuthRequest(ctx, back) }))
	got, err := s.AuthRequestByPairCode(ctx, orig.PairCode)
	mustNil(t, err)
	equalRecord(t, "after reset", got, back)
}

// checkSweep checks a sweep of expiring rows at cut: the rows expiring at
// or before cut are deleted and gone finds none of them, later ones stay
// (kept finds them), and a second sweep deletes nothing.
func checkSweep[T any](t *testing.T, cut time.Time, insert func(expires time.Time) T, sweep func(cut time.Time) (int, error), gone, kept func(T)) {
	t.Helper()
	expired := []T{insert(cut.Add(-time.Hour)), insert(cut.Add(-time.Millisecond)), insert(cut)}
	live := []T{insert(cut.Add(time.Millisecond)), insert(cut.Add(time.Hour))}
	n, err := sweep(cut)
	mustNil(t, err)
	if n != len(expired) {
		t.Errorf("deleted %d, want %d", n, len(expired))
	}
	for _, r := range expired {
		gone(r)
	}
	for _, r := range live {
		kept(r)
	}
	n, err = sweep(cut)
	mustNil(t, err)
	if n != 0 {
		t.Errorf("second sweep deleted %d", n)
	}
}

func testDeleteExpiredAuthRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert := func(expires time.Time) store.AuthRequest {
		r := minimalAuthRequest()
		r.ExpiresAt = expires
		mustNil(t, s.InsertAuthRequest(ctx, r))
		return r
	}
	sweep := func(cut time.Time) (int, error) { return s.DeleteExpiredAuthRequests(ctx, cut) }
	checkSweep(t, now(), insert, sweep, func(r store.AuthRequest) {
		_, err := s.AuthRequest(ctx, r.ID)
		wantErr(t, err, store.ErrNotFound)
		// The pair code is free again.
		_, err = s.AuthRequestByPairCode(ctx, r.PairCode)
		wantErr(t, err, store.ErrNotFound)
	}, func(r store.AuthRequest) { getAuthRequest(t, s, r.ID) })
}

// testPendingAuthRequests: only pending, unexpired requests bound to the
// wallet are listed, oldest first, up to the limit.
func testPendingAuthRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	m, other := master(t, s), master(t, s)
	cut := now()
	add := func(parent agentkeys.Wallet, age time.Duration, status store.AuthRequestStatus, expires time.Duration) store.AuthRequest {
		r := minimalAuthRequest()
		r.ParentWallet, r.Status, r.CreatedAt, r.ExpiresAt = parent, status, cut.Add(-age), cut.Add(expires)
		mustNil(t, s.InsertAuthRequest(ctx, r))
		return r
	}
	older := add(m.Address, 2*time.Minute, store.AuthPending, time.Minute)
	newer := add(m.Address, time.Minute, store.AuthPending, time.Minute)
	add(m.Address, time.Minute, store.AuthApproved, time.Minute)
	add(m.Address, time.Minute, store.AuthDenied, time.Minute)
	add(m.Address, time.Minute, store.AuthPending, 0)
	add(other.Address, time.Minute, store.AuthPending, time.Minute)
	add("", time.Minute, store.AuthPending, time.Minute)
	got, err := s.PendingAuthRequests(ctx, m.Address, cut, 10)
	mustNil(t, err)
	if len(got) != 2 || got[0].ID != older.ID || got[1].ID != newer.ID {
		t.Fatalf("pending for the master: %d requests %v", len(got), got)
	}
	equalRecord(t, "pending", got[0], older)
	got, err = s.PendingAuthRequests(ctx, m.Address, cut, 1)
	mustNil(t, err)
	if len(got) != 1 || got[0].ID != older.ID {
		t.Fatalf("limit 1: %v", got)
	}
	got, err = s.PendingAuthRequests(ctx, m.Address, cut.Add(2*time.Minute), 10)
	mustNil(t, err)
	if len(got) != 0 {
		t.Fatalf("after expiry: %v", got)
	}
}

func putLink(t *testing.T, q store.Queries, w agentkeys.Wallet, typ, value string, created time.Time) store.IdentityLink {
	t.Helper()
	l := store.IdentityLink{Wallet: w, Type: typ, Value: value, CreatedAt: created}
	mustNil(t, q.PutIdentityLink(context.Background(), l))
	return l
}

func testIdentityLinks(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	other := master(t, s)
	base := now().Add(-time.Hour)
	// Put out of order; two share a time.
	l3 := putLink(t, s, m.Address, "ens", "alice.eth", base.Add(2*time.Second))
	l1 := putLink(t, s, m.Address, "email", "alice@example.com", base)
	l2b := putLink(t, s, m.Address, "alias", "zed", base.Add(time.Second))
	l2a := putLink(t, s, m.Address, "alias", "amy", base.Add(time.Second))
	lo := putLink(t, s, other.Address, "email", "bob@example.com", base)

	got, err := s.IdentityLinks(ctx, m.Address)
	mustNil(t, err)
	want := []store.IdentityLink{l1, l2a, l2b, l3}
	if len(got) != len(want) {
		t.Fatalf("links = %+v, want %+v", got, want)
	}
	for i := range want {
		equalRecord(t, fmt.Sprintf("link %d", i), got[i], want[i])
	}

	for _, l := range []store.IdentityLink{l1, l3, lo} {
		got, err := s.ResolveIdentity(ctx, l.Type, l.Value)
		mustNil(t, err)
		equalRecord(t, "resolved", got, l)
	}
	_, err = s.ResolveIdentity(ctx, "email", "nobody@example.com")
	wantErr(t, err, store.ErrNotFound)
	// Type and value are matched exactly.
	_, err = s.ResolveIdentity(ctx, "alias", "alice@example.com")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ResolveIdentity(ctx, "email", "ALICE@example.com")
	wantErr(t, err, store.ErrNotFound)

	got, err = s.IdentityLinks(ctx, agentkeys.NewWallet())
	mustNil(t, err)
	if len(got) != 0 {
		t.Errorf("links of an unknown wallet = %+v", got)
	}

	// Putting a link the wallet already holds succeeds and refreshes it.
	later := now()
	mustNil(t, s.PutIdentityLink(ctx, store.IdentityLink{Wallet: m.Address, Type: l1.Type, Value: l1.Value, CreatedAt: later}))
	r, err := s.ResolveIdentity(ctx, l1.Type, l1.Value)
	mustNil(t, err)
	if r.Wallet != m.Address || !r.CreatedAt.Equal(later) {
		t.Errorf("after re-put: %+v, want wallet %v created %v", r, m.Address, later)
	}
	got, err = s.IdentityLinks(ctx, m.Address)
	mustNil(t, err)
	if len(got) != 4 {
		t.Errorf("re-put changed the number of links to %d", len(got))
	}
}

func testIdentityLinkConflicts(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	other := master(t, s)
	l := putLink(t, s, m.Address, "email", "alice@example.com", now())

	wantErr(t, s.PutIdentityLink(ctx, store.IdentityLink{Wallet: other.Address, Type: l.Type, Value: l.Value, CreatedAt: now()}), store.ErrConflict)
	err := s.Tx(ctx, func(q store.Queries) error {
		return q.PutIdentityLink(ctx, store.IdentityLink{Wallet: other.Address, Type: l.Type, Value: l.Value, CreatedAt: now()})
	})
	wantErr(t, err, store.ErrConflict)
	got, err := s.ResolveIdentity(ctx, l.Type, l.Value)
	mustNil(t, err)
	equalRecord(t, "after conflicting put", got, l)
	links, err := s.IdentityLinks(ctx, other.Address)
	mustNil(t, err)
	if len(links) != 0 {
		t.Errorf("other wallet got links %+v", links)
	}

	// The same value under another type is another name.
	putLink(t, s, other.Address, "alias", l.Value, now())

	// A link to an unknown wallet is refused.
	wantErr(t, s.PutIdentityLink(ctx, store.IdentityLink{Wallet: agentkeys.NewWallet(), Type: "email", Value: "x@example.com", CreatedAt: now()}), store.ErrNotFound)
	_, err = s.ResolveIdentity(ctx, "email", "x@example.com")
	wantErr(t, err, store.ErrNotFound)
}

func newRendezvous(expires time.Time) store.Rendezvous {
	return store.Rendezvous{
		PairCode:     pairCode(),
		TokenHash:    agentkeys.NewToken().Hash(),
		DaemonPubkey: []byte("daemon pubkey"),
		CreatedAt:    now(),
		ExpiresAt:    expires,
	}
}

func getRendezvous(t *testing.T, q store.Queries, code string) store.Rendezvous {
	t.Helper()
	r, err := q.Rendezvous(context.Background(), code)
	mustNil(t, err)
	return r
}

func testRendezvousInsertGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	fresh := newRendezvous(now().Add(time.Minute))
	done := newRendezvous(now().Add(time.Minute))
	done.Payload, done.Delivered, done.Consumed = []byte{0, 1, 0xfe}, true, true
	bare := store.Rendezvous{PairCode: pairCode(), TokenHash: agentkeys.NewToken().Hash()} // nil pubkey, zero times
	emptyPayload := newRendezvous(now().Add(time.Minute))
	emptyPayload.Payload, emptyPayload.Delivered = []byte{}, true
	for _, r := range []store.Rendezvous{fresh, done, bare, emptyPayload} {
		mustNil(t, s.InsertRendezvous(ctx, r))
	}
	for _, want := range []store.Rendezvous{fresh, done, bare, emptyPayload} {
		equalRecord(t, "by code", getRendezvous(t, s, want.PairCode), want)
		got, err := s.RendezvousByToken(ctx, want.TokenHash)
		mustNil(t, err)
		equalRecord(t, "by token", got, want)
	}

	sameCode := newRendezvous(now())
	sameCode.PairCode = fresh.PairCode
	wantErr(t, s.InsertRendezvous(ctx, sameCode), store.ErrConflict)
	sameToken := newRendezvous(now())
	sameToken.TokenHash = fresh.TokenHash
	wantErr(t, s.InsertRendezvous(ctx, sameToken), store.ErrConflict)
	_, err := s.Rendezvous(ctx, sameToken.PairCode)
	wantErr(t, err, store.ErrNotFound)

	_, err = s.Rendezvous(ctx, pairCode())
	wantErr(t, err, store.ErrNotFound)
	_, err = s.RendezvousByToken(ctx, agentkeys.NewToken().Hash())
	wantErr(t, err, store.ErrNotFound)
}

func testUpdateRendezvous(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := newRendezvous(now().Add(time.Minute))
	mustNil(t, s.InsertRendezvous(ctx, orig))

	// Every field differs; only Payload, Delivered and Consumed may be stored.
	upd := newRendezvous(now().Add(time.Hour))
	upd.PairCode = orig.PairCode
	upd.DaemonPubkey = []byte("another key")
	upd.CreatedAt = now().Add(-time.Hour)
	upd.Payload, upd.Delivered = []byte("payload"), true
	mustNil(t, s.UpdateRendezvous(ctx, upd))
	want := orig
	want.Payload, want.Delivered = upd.Payload, true
	equalRecord(t, "after delivery", getRendezvous(t, s, orig.PairCode), want)
	got, err := s.RendezvousByToken(ctx, orig.TokenHash)
	mustNil(t, err)
	equalRecord(t, "by token after delivery", got, want)

	// Consumed: the payload is dropped, inside a transaction too.
	want.Payload, want.Consumed = nil, true
	mustNil(t, s.Tx(ctx, func(q store.Queries) error { return q.UpdateRendezvous(ctx, want) }))
	equalRecord(t, "after consumption", getRendezvous(t, s, orig.PairCode), want)

	wantErr(t, s.UpdateRendezvous(ctx, newRendezvous(now())), store.ErrNotFound)
}

func testDeleteExpiredRendezvous(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert := func(expires time.Time) store.Rendezvous {
		r := newRendezvous(expires)
		mustNil(t, s.InsertRendezvous(ctx, r))
		return r
	}
	sweep := func(cut time.Time) (int, error) { return s.DeleteExpiredRendezvous(ctx, cut) }
	checkSweep(t, now(), insert, sweep, func(r store.Rendezvous) {
		_, err := s.Rendezvous(ctx, r.PairCode)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.RendezvousByToken(ctx, r.TokenHash)
		wantErr(t, err, store.ErrNotFound)
	}, func(r store.Rendezvous) { getRendezvous(t, s, r.PairCode) })
}

func insertInbox(t *testing.T, q store.Queries, w agentkeys.Wallet, address string, created time.Time) store.Inbox {
	t.Helper()
	in := store.Inbox{Address: address, Wallet: w, CreatedAt: created}
	mustNil(t, q.InsertInbox(context.Background(), in))
	return in
}

func testInboxes(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	other := master(t, s)
	base := now().Add(-time.Hour)
	i3 := insertInbox(t, s, m.Address, "c@mock.test", base.Add(time.Minute))
	i2 := insertInbox(t, s, m.Address, "b@mock.test", base)
	i1 := insertInbox(t, s, m.Address, "a@mock.test", base)
	io := insertInbox(t, s, other.Address, "o@mock.test", base)

	got, err := s.Inboxes(ctx, m.Address)
	mustNil(t, err)
	want := []store.Inbox{i1, i2, i3}
	if len(got) != len(want) {
		t.Fatalf("inboxes = %+v, want %+v", got, want)
	}
	for i := range want {
		equalRecord(t, fmt.Sprintf("inbox %d", i), got[i], want[i])
	}
	in, err := s.Inbox(ctx, io.Address)
	mustNil(t, err)
	equalRecord(t, "inbox", in, io)

	_, err = s.Inbox(ctx, "nobody@mock.test")
	wantErr(t, err, store.ErrNotFound)
	got, err = s.Inboxes(ctx, agentkeys.NewWallet())
	mustNil(t, err)
	if len(got) != 0 {
		t.Errorf("inboxes of an unknown wallet = %+v", got)
	}

	wantErr(t, s.InsertInbox(ctx, store.Inbox{Address: i1.Address, Wallet: other.Address, CreatedAt: now()}), store.ErrConflict)
	wantErr(t, s.InsertInbox(ctx, store.Inbox{Address: i1.Address, Wallet: m.Address, CreatedAt: now()}), store.ErrConflict)
	wantErr(t, s.InsertInbox(ctx, store.Inbox{Address: "x@mock.test", Wallet: agentkeys.NewWallet(), CreatedAt: now()}), store.ErrNotFound)
	_, err = s.Inbox(ctx, "x@mock.test")
	wantErr(t, err, store.ErrNotFound)
}

func insertMessage(t *testing.T, q store.Queries, address, id string, received time.Time) store.InboxMessage {
	t.Helper()
	m := store.InboxMessage{ID: id, Address: address, From: "noreply@service.test",
		Subject: "code " + id, Body: "your code is " + id + "\n", ReceivedAt: received}
	mustNil(t, q.InsertInboxMessage(context.Background(), m))
	return m
}

func messageIDs(ms []store.InboxMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testInboxMessages(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	box := insertInbox(t, s, m.Address, "box@mock.test", now()).Address
	otherBox := insertInbox(t, s, m.Address, "other@mock.test", now()).Address
	base := now().Add(-time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	// Inserted out of order; m2a and m2b share a time.
	m3 := insertMessage(t, s, box, "m3", at(3))
	m1 := insertMessage(t, s, box, "m1", at(1))
	m2a := insertMessage(t, s, box, "m2a", at(2))
	m2b := insertMessage(t, s, box, "m2b", at(2))
	m0 := insertMessage(t, s, box, "m0", at(0))
	insertMessage(t, s, otherBox, "o1", at(5))
	empty := store.InboxMessage{ID: "empty", Address: otherBox, ReceivedAt: at(0)} // empty strings

	mustNil(t, s.InsertInboxMessage(ctx, empty))

	list := func(addr string, since time.Time, limit int) []store.InboxMessage {
		t.Helper()
		got, err := s.InboxMessages(ctx, addr, since, limit)
		mustNil(t, err)
		return got
	}
	all := list(box, time.Time{}, 0)
	want := []store.InboxMessage{m3, m2b, m2a, m1, m0}
	if len(all) != len(want) {
		t.Fatalf("messages = %v, want %v", messageIDs(all), messageIDs(want))
	}
	for i := range want {
		equalRecord(t, fmt.Sprintf("message %d", i), all[i], want[i])
	}
	got := list(otherBox, time.Time{}, 0)
	if len(got) != 2 {
		t.Fatalf("other box has %v", messageIDs(got))
	}
	equalRecord(t, "empty message", got[1], empty)

	for _, c := range []struct {
		name  string
		since time.Time
		limit int
		want  []string
	}{
		{"since inclusive", at(2), 0, []string{"m3", "m2b", "m2a"}},
		{"since between", at(2).Add(time.Millisecond), 0, []string{"m3"}},
		{"since future", at(4), 0, []string{}},
		{"limit", time.Time{}, 2, []string{"m3", "m2b"}},
		{"limit and since", at(1), 3, []string{"m3", "m2b", "m2a"}},
		{"negative limit", time.Time{}, -1, []string{"m3", "m2b", "m2a", "m1", "m0"}},
	} {
		if got := messageIDs(list(box, c.since, c.limit)); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := list("nobody@mock.test", time.Time{}, 0); len(got) != 0 {
		t.Errorf("unknown inbox lists %v", messageIDs(got))
	}

	wantErr(t, s.InsertInboxMessage(ctx, store.InboxMessage{ID: "m1", Address: otherBox, ReceivedAt: now()}), store.ErrConflict)
	wantErr(t, s.InsertInboxMessage(ctx, store.InboxMessage{ID: "lost", Address: "nobody@mock.test", ReceivedAt: now()}), store.ErrNotFound)
}

func testInboxMessagesDefaultLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	box := insertInbox(t, s, m.Address, "box@mock.test", now()).Address
	base := now()
	mustNil(t, s.Tx(ctx, func(q store.Queries) error {
		for i := range 150 {
			insertMessage(t, q, box, fmt.Sprintf("m%03d", i), base.Add(time.Duration(i)*time.Millisecond))
		}
		return nil
	}))
	for _, c := range []struct{ limit, want int }{{0, 100}, {-5, 100}, {120, 120}, {1000, 150}} {
		got, err := s.InboxMessages(ctx, box, time.Time{}, c.limit)
		mustNil(t, err)
		if len(got) != c.want {
			t.Errorf("limit %d: %d messages, want %d", c.limit, len(got), c.want)
			continue
		}
		if got[0].ID != "m149" {
			t.Errorf("limit %d: newest is %s, want m149", c.limit, got[0].ID)
		}
	}
}

package backend

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// opened is what a daemon holds after POST /auth-request/open.
type opened struct {
	ID, OTP, PairCode, AwaitToken string
}

func (e *testEnv) open(r authreq.Request, extra string) opened {
	e.t.Helper()
	status, body := e.openRaw(r, extra)
	if status != 200 {
		e.t.Fatalf("open %s → %d %v", r.Type, status, body)
	}
	return opened{ID: body["id"].(string), OTP: body["otp"].(string), PairCode: body["pair_code"].(string), AwaitToken: body["await_token"].(string)}
}

func (e *testEnv) openRaw(r authreq.Request, extra string) (int, map[string]any) {
	e.t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, err := authreq.Encode(r)
	if err != nil {
		e.t.Fatal(err)
	}
	body := fmt.Sprintf(`{"child_pubkey":%q,"request_type":%q,"request_details":%q%s}`,
		base64.StdEncoding.EncodeToString(pub), r.Type, base64.StdEncoding.EncodeToString(details), extra)
	status, m, _ := e.raw("POST", "/auth-request/open", "", body)
	return status, m
}

func (e *testEnv) approve(tok agentkeys.Token, code, otp string) (int, map[string]any) {
	e.t.Helper()
	status, m, _ := e.raw("POST", "/auth-request/approve", tok, fmt.Sprintf(`{"pair_code":%q,"otp":%q}`, code, otp))
	return status, m
}

func (e *testEnv) await(o opened) (int, map[string]any) {
	e.t.Helper()
	status, m, _ := e.raw("GET", "/auth-request/await?request_id="+o.ID, agentkeys.Token(o.AwaitToken), "")
	return status, m
}

func pairReq(services ...string) authreq.Request {
	return authreq.Request{Type: authreq.TypePair, RequestedScope: authreq.Scope{Services: services}}
}

func wrongOTP(otp string) string {
	if otp == "000000" {
		return "000001"
	}
	return "000000"
}

func sessionFrom(t *testing.T, m map[string]any) backendclient.Session {
	t.Helper()
	sess, ok := m["session"].(map[string]any)
	if !ok {
		t.Fatalf("no session in decision %v", m)
	}
	tok, err := agentkeys.ParseToken(sess["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return backendclient.Session{Token: tok, Wallet: agentkeys.Wallet(sess["wallet"].(string))}
}

func TestPairFlow(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 2 * time.Second })
	m := e.master("alice")
	e.storeCredential(m.Token, m.Wallet, "unrelated", []byte("x"))
	o := e.open(pairReq("openrouter"), "")
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$`).MatchString(o.PairCode) || !regexp.MustCompile(`^\d{6}$`).MatchString(o.OTP) {
		t.Fatalf("pair code %q / OTP %q malformed", o.PairCode, o.OTP)
	}

	// The master sees what is asked — but never the OTP.
	status, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+strings.ToLower(o.PairCode), m.Token, "")
	if status != 200 || f["request_type"] != "Pair" || !strings.Contains(f["description"].(string), "openrouter") {
		t.Fatalf("fetch → %d %v", status, f)
	}
	raw, _ := json.Marshal(f)
	if strings.Contains(string(raw), o.OTP) {
		t.Fatal("fetch reveals the OTP; the master must type what the daemon shows")
	}

	// The daemon waits; the approval wakes it.
	got := make(chan map[string]any, 1)
	go func() {
		_, d := e.await(o)
		got <- d
	}()
	status, a := e.approve(m.Token, o.PairCode, o.OTP)
	if status != 200 || a["status"] != "approved" {
		t.Fatalf("approve → %d %v", status, a)
	}
	d := <-got
	if d["status"] != "approved" {
		t.Fatalf("await → %v", d)
	}
	agent := sessionFrom(t, d)
	if agent.Wallet == m.Wallet || a["wallet"] != string(agent.Wallet) {
		t.Fatalf("paired wallet %s (approve said %v)", agent.Wallet, a["wallet"])
	}
	id, err := e.client.Validate(ctx, agent.Token)
	if err != nil || id.Kind != "agent" || id.Parent != m.Wallet || id.Scope == nil || strings.Join(id.Scope.Services, ",") != "openrouter" {
		t.Fatalf("paired agent identity %+v, %v; want agent of alice scoped to openrouter", id, err)
	}
	// In scope: readable. Out of scope: denied. Parent's wallet: denied.
	e.storeCredential(m.Token, agent.Wallet, "openrouter", []byte("k"))
	if _, err := e.client.ReadCredential(ctx, agent.Token, agent.Wallet, "openrouter"); err != nil {
		t.Fatalf("paired agent cannot read in scope: %v", err)
	}
	_, err = e.client.ReadCredential(ctx, agent.Token, agent.Wallet, "openai")
	wantStatus(t, err, 403)
	_, err = e.client.ReadCredential(ctx, agent.Token, m.Wallet, "unrelated")
	wantStatus(t, err, 403)

	// Single use: a replayed approval and a second await are refused, and
	// the session is no longer held by the server.
	if status, _ := e.approve(m.Token, o.PairCode, o.OTP); status != http.StatusConflict {
		t.Fatalf("replayed approve → %d, want 409", status)
	}
	if status, _ := e.await(o); status != http.StatusConflict {
		t.Fatalf("second await → %d, want 409", status)
	}
	ar, err := e.store.AuthRequest(ctx, o.ID)
	if err != nil || ar.SealedSession != nil || ar.Status != "delivered" {
		t.Fatalf("after delivery: status %s, sealed session kept: %v (%v)", ar.Status, ar.SealedSession != nil, err)
	}
	for _, action := range []string{actionPairApprove, actionAuthDelivered} {
		page, _ := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: action})
		if len(page.Events) != 1 || page.Events[0].Agent != agent.Wallet {
			t.Fatalf("%s not audited: %+v", action, page.Events)
		}
	}
}

func TestAwaitNeedsTheOpenersToken(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 50 * time.Millisecond })
	o := e.open(pairReq(), "")
	if status, d := e.await(o); status != 200 || d["status"] != "timeout" {
		t.Fatalf("await before approval → %d %v, want timeout", status, d)
	}
	for _, tok := range []string{"", agentkeys.NewToken().Reveal()} {
		status, _, _ := e.raw("GET", "/auth-request/await?request_id="+o.ID, agentkeys.Token(tok), "")
		if status != http.StatusUnauthorized {
			t.Fatalf("await with token %q → %d, want 401", tok, status)
		}
	}
	if status, _, _ := e.raw("GET", "/auth-request/await", agentkeys.Token(o.AwaitToken), ""); status != 400 {
		t.Fatalf("await without request_id → %d", status)
	}
}

func TestWrongOTPLocksAfterFive(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 50 * time.Millisecond })
	m := e.master("alice")
	o := e.open(pairReq(), "")
	for i := 1; i < MaxOTPAttempts; i++ {
		status, body := e.approve(m.Token, o.PairCode, wrongOTP(o.OTP))
		if status != 403 || !strings.Contains(body["message"].(string), fmt.Sprintf("%d attempts left", MaxOTPAttempts-i)) {
			t.Fatalf("wrong OTP #%d → %d %v", i, status, body)
		}
	}
	status, body := e.approve(m.Token, o.PairCode, wrongOTP(o.OTP))
	if status != http.StatusConflict || body["error"] != kindLocked {
		t.Fatalf("fifth wrong OTP → %d %v, want 409 LOCKED", status, body)
	}
	if status, body := e.approve(m.Token, o.PairCode, o.OTP); status != http.StatusConflict || body["error"] != kindLocked {
		t.Fatalf("right OTP after lock → %d %v, want LOCKED", status, body)
	}
	if _, d := e.await(o); d["status"] != "locked" || d["approved"] != false {
		t.Fatalf("daemon's await after lock → %v", d)
	}
	page, _ := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: actionAuthOTP})
	if len(page.Events) != MaxOTPAttempts {
		t.Fatalf("%d wrong-OTP audit rows, want %d", len(page.Events), MaxOTPAttempts)
	}
}

func TestExpiredPairCode(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	o := e.open(pairReq(), "")
	e.clock.Advance(DefaultAuthRequestTTL)
	if status, body := e.approve(m.Token, o.PairCode, o.OTP); status != http.StatusGone {
		t.Fatalf("approve after expiry → %d %v, want 410", status, body)
	}
	if status, _ := e.await(o); status != http.StatusGone {
		t.Fatalf("await after expiry → %d, want 410", status)
	}
	e.srv.sweepOnce(ctx)
	if status, _ := e.approve(m.Token, o.PairCode, o.OTP); status != http.StatusNotFound {
		t.Fatalf("approve after sweep → %d, want 404", status)
	}
}

func TestBoundRequestAndScopeCeiling(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.master("alice"), e.master("bob")
	o := e.open(pairReq(), fmt.Sprintf(`,"parent_wallet":%q`, alice.Wallet))
	if status, _ := e.approve(bob.Token, o.PairCode, o.OTP); status != 403 {
		t.Fatalf("stranger approving a request bound to alice → %d, want 403", status)
	}
	if status, _, _ := e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, bob.Token, ""); status != 403 {
		t.Fatalf("stranger fetching a bound request → %d, want 403", status)
	}
	// The bound request is in alice's audit, not bob's.
	page, err := e.client.QueryAudit(ctx, alice.Token, backendclient.AuditFilter{Action: "auth_request_open"})
	if err != nil || len(page.Events) != 1 || page.Events[0].Agent != alice.Wallet || page.Events[0].Detail != agentkeys.DetailUnverified+"Pair request opened by an unauthenticated caller" {
		t.Fatalf("alice's audit of the open: %+v %v", page.Events, err)
	}
	if page, _ := e.client.QueryAudit(ctx, bob.Token, backendclient.AuditFilter{Action: "auth_request_open"}); len(page.Events) != 0 {
		t.Fatalf("bob sees alice's request: %+v", page.Events)
	}
	// An agent approving a pair cannot grant more than it has.
	a := e.agent(alice, []string{"x"}, false)
	o2 := e.open(pairReq("y"), "")
	if status, _ := e.approve(a.Token, o2.PairCode, o2.OTP); status != 403 {
		t.Fatalf("agent granting beyond its scope → %d, want 403", status)
	}
	ro := e.agent(alice, []string{"x"}, true)
	o3 := e.open(pairReq("x"), "")
	if status, _ := e.approve(ro.Token, o3.PairCode, o3.OTP); status != 403 {
		t.Fatalf("read-only session approving → %d, want 403", status)
	}
	// Deny ends the request.
	o4 := e.open(pairReq(), "")
	if status, _, _ := e.raw("POST", "/auth-request/deny", alice.Token, fmt.Sprintf(`{"pair_code":%q}`, o4.PairCode)); status != 200 {
		t.Fatalf("deny → %d", status)
	}
	if status, d := e.await(o4); status != 200 || d["status"] != "denied" {
		t.Fatalf("await after deny → %d %v", status, d)
	}
}

func TestOpenValidation(t *testing.T) {
	e := newEnv(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pk := base64.StdEncoding.EncodeToString(pub)
	pair, _ := authreq.Encode(pairReq())
	pd := base64.StdEncoding.EncodeToString(pair)
	for _, body := range []string{
		`{}`,
		`{"child_pubkey":"` + pk + `","request_type":"Pair"}`,
		`{"child_pubkey":"AAAA","request_type":"Pair","request_details":"` + pd + `"}`,
		`{"child_pubkey":"` + pk + `","request_type":"Recover","request_details":"` + pd + `"}`,
		`{"child_pubkey":"` + pk + `","request_type":"KeyRotate","request_details":"` + pd + `"}`,
		`{"child_pubkey":"` + pk + `","request_type":"Pair","request_details":"oA=="}`,
		`{"child_pubkey":"` + pk + `","request_type":"Pair","request_details":"` + pd + `","identity_type":"alias","identity_value":"x"}`,
		`{"child_pubkey":"` + pk + `","request_type":"Pair","request_details":"` + pd + `","parent_wallet":"bob"}`,
	} {
		if status, b, _ := e.raw("POST", "/auth-request/open", "", body); status != 400 {
			t.Errorf("open %s → %d %v, want 400", body, status, b)
		}
	}
}

func TestRecoverNeedsTheOwner(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = time.Second })
	alice, bob := e.master("alice"), e.master("bob")
	bot := e.agent(alice, []string{"openrouter"}, false)
	v := secret()
	e.storeCredential(alice.Token, bot.Wallet, "openrouter", v)
	if status, b, _ := e.raw("POST", "/identity/link", alice.Token, fmt.Sprintf(`{"identity_type":"alias","identity_value":"Research-Bot","wallet_address":%q}`, bot.Wallet)); status != 200 {
		t.Fatalf("link → %d %v", status, b)
	}
	// The daemon lost its session; it asks to recover by alias.
	rec := authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityAlias, Value: "research-bot"}, NewDaemonPubkey: []byte{1}}
	o := e.open(rec, "")
	// Bob cannot approve someone else's recovery, even with the right OTP.
	if status, _ := e.approve(bob.Token, o.PairCode, o.OTP); status != 403 {
		t.Fatalf("stranger approving alice's recovery → %d, want 403", status)
	}
	// Nor can the bot's sibling.
	sib := e.agent(alice, []string{"openrouter"}, false)
	if status, _ := e.approve(sib.Token, o.PairCode, o.OTP); status != 403 {
		t.Fatalf("sibling approving → %d, want 403", status)
	}
	if status, b := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatalf("owner approving → %d %v", status, b)
	}
	_, d := e.await(o)
	s := sessionFrom(t, d)
	if s.Wallet != bot.Wallet {
		t.Fatalf("recovered wallet %s, want %s", s.Wallet, bot.Wallet)
	}
	if got, err := e.client.ReadCredential(ctx, s.Token, bot.Wallet, "openrouter"); err != nil || string(got) != string(v) {
		t.Fatalf("recovered session cannot read: %v", err)
	}
	// Recovery created no ownership: alice's wallet tree is unchanged.
	w, _ := e.store.Wallet(ctx, bot.Wallet)
	if w.Parent != alice.Wallet {
		t.Fatalf("recovery changed the owner to %s", w.Parent)
	}
	// Recovering an unknown identity gives the same answer as a foreign one.
	o2 := e.open(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityAlias, Value: "nobody"}}, "")
	if status, _ := e.approve(alice.Token, o2.PairCode, o2.OTP); status != 403 {
		t.Fatalf("recover of unknown alias → %d, want 403", status)
	}
	// The proof-free recovery route of the original is closed.
	if status, _, _ := e.raw("POST", "/session/recover", "", `{"identity_type":"alias","identity_value":"research-bot","method":"email"}`); status != 400 {
		t.Fatalf("/session/recover → %d, want 400", status)
	}
}

func TestIdentityLinks(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.master("alice"), e.master("bob")
	bot := e.agent(alice, []string{}, false)
	post := func(tok agentkeys.Token, body string) int {
		status, _, _ := e.raw("POST", "/identity/link", tok, body)
		return status
	}
	if s := post(bob.Token, fmt.Sprintf(`{"identity_type":"alias","identity_value":"bot","wallet_address":%q}`, bot.Wallet)); s != 403 {
		t.Fatalf("linking an alias to a foreign wallet → %d, want 403", s)
	}
	if s := post(alice.Token, fmt.Sprintf(`{"identity_type":"email","identity_value":"Bot@Example.com","wallet_address":%q}`, bot.Wallet)); s != 200 {
		t.Fatalf("link email → %d", s)
	}
	if s := post(bob.Token, `{"identity_type":"email","identity_value":"bot@example.com"}`); s != 409 {
		t.Fatalf("taking a name another wallet holds → %d, want 409", s)
	}
	if s := post(alice.Token, fmt.Sprintf(`{"identity_type":"email","identity_value":"bot@example.com","wallet_address":%q}`, bot.Wallet)); s != 200 {
		t.Fatalf("re-linking the same name to the same wallet → %d, want 200", s)
	}
	for _, body := range []string{`{"identity_type":"phone","identity_value":"1"}`, `{"identity_type":"alias","identity_value":"0xabc"}`, `{"identity_type":"email","identity_value":"nope"}`, `{"identity_type":"ens","identity_value":"x.com"}`, `{"identity_value":"x"}`} {
		if s := post(alice.Token, body); s != 400 {
			t.Errorf("link %s → %d, want 400", body, s)
		}
	}
	status, b, _ := e.raw("GET", "/identity/resolve?identity_type=email&identity_value=BOT%40example.com", "", "")
	if status != 200 || b["wallet_address"] != string(bot.Wallet) {
		t.Fatalf("resolve → %d %v", status, b)
	}
	if status, _, _ := e.raw("GET", "/identity/resolve?identity_type=alias&identity_value=ghost", "", ""); status != 404 {
		t.Fatalf("resolve unknown → %d", status)
	}
	if status, b, _ := e.raw("GET", "/identity/resolve?identity_type=wallet&identity_value="+string(alice.Wallet), "", ""); status != 200 || b["wallet_address"] != string(alice.Wallet) {
		t.Fatalf("resolve wallet passthrough → %d %v", status, b)
	}
	if status, _, _ := e.raw("GET", "/identity/resolve?identity_type=nope&identity_value=x", "", ""); status != 400 {
		t.Fatal("unknown identity type resolved")
	}
}

func TestAgentsCannotLogIn(t *testing.T) {
	// The original let anyone holding a child token mint a fresh root
	// session with auth_token "child:<token>", even after revocation.
	e, m, a := newAgentEnv(t, "alice", "x")
	if _, err := e.client.RevokeSession(ctx, m.Token, a.Token); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"child:" + a.Token.Reveal(), "child-pair:" + a.Token.Reveal(), a.Token.Reveal()} {
		s, err := e.client.CreateSession(ctx, tok)
		if err != nil {
			continue
		}
		if s.Wallet == a.Wallet || s.Wallet == m.Wallet {
			t.Fatalf("login with %q reached an existing wallet", tok[:10])
		}
	}
	_, err := e.client.CreateChild(ctx, a.Token, agentkeys.Scope{Services: []string{}}, 0)
	wantStatus(t, err, 401)
}

func TestScopeChangeRequest(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x")
	o := e.open(authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(a.Wallet), NewScope: authreq.Scope{Services: []string{"x", "y"}}}, "")
	before := e.epoch()
	if status, b := e.approve(m.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatalf("approve scope change → %d %v", status, b)
	}
	if e.epoch() != before+1 {
		t.Fatal("an approved scope change did not move the revocation epoch")
	}
	sc, _ := e.client.GetScope(ctx, m.Token, a.Wallet)
	if sc == nil || strings.Join(sc.Services, ",") != "x,y" {
		t.Fatalf("scope after approval = %+v", sc)
	}
}

func TestMockInbox(t *testing.T) {
	off := newEnv(t)
	if status, _, _ := off.raw("POST", "/mock/inbox/deliver", "", `{"address":"a@b","from":"x"}`); status != 404 {
		t.Fatalf("mock inbox served without MockInbox → %d", status)
	}
	e := newEnv(t, func(o *Options) { o.MockInbox = true })
	alice, bob := e.master("alice"), e.master("bob")
	a := e.agent(alice, []string{}, false)
	status, b, _ := e.raw("POST", "/mock/inbox/provision", alice.Token, fmt.Sprintf(`{"agent_id":%q}`, a.Wallet))
	if status != 200 || !strings.HasPrefix(b["address"].(string), "bot-") {
		t.Fatalf("provision → %d %v", status, b)
	}
	addr := b["address"].(string)
	if status, _, _ := e.raw("POST", "/mock/inbox/provision", bob.Token, fmt.Sprintf(`{"agent_id":%q}`, a.Wallet)); status != 403 {
		t.Fatal("stranger provisioned an inbox on alice's agent")
	}
	for i := range 2 {
		e.clock.Advance(time.Second)
		if status, _, _ := e.raw("POST", "/mock/inbox/deliver", "", fmt.Sprintf(`{"address":%q,"from":"noreply@openrouter.ai","subject":"code %d","body":"<p>123456</p>"}`, addr, i)); status != 200 {
			t.Fatalf("deliver → %d", status)
		}
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/mock/inbox/messages?address="+addr, nil)
	req.Header.Set("Authorization", "Bearer "+a.Token.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []api.InboxMessage
	json.NewDecoder(resp.Body).Decode(&msgs)
	resp.Body.Close()
	if len(msgs) != 2 || msgs[0].Subject != "code 1" {
		t.Fatalf("messages = %+v, want 2 newest first", msgs)
	}
	if status, _, _ := e.raw("GET", "/mock/inbox/messages?address="+addr, bob.Token, ""); status != 403 {
		t.Fatal("stranger read alice's inbox")
	}
	if status, _, _ := e.raw("POST", "/mock/inbox/deliver", "", `{"address":"bot-none@x","from":"x"}`); status != 404 {
		t.Fatal("delivery to an unknown inbox accepted")
	}
	// Teardown removes the inbox.
	if _, err := e.client.Teardown(ctx, alice.Token, a.Wallet); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.raw("POST", "/mock/inbox/deliver", "", fmt.Sprintf(`{"address":%q,"from":"x"}`, addr)); status != 404 {
		t.Fatal("inbox survived teardown")
	}
}

func TestRendezvousRelay(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 2 * time.Second })
	alice, bob := e.master("alice"), e.master("bob")
	o := e.open(pairReq(), "")
	reg := fmt.Sprintf(`{"daemon_pubkey":"AQID","pair_code":%q}`, o.PairCode)
	// Only the opener can register the slot.
	if status, _, _ := e.raw("POST", "/rendezvous/register", agentkeys.NewToken(), reg); status != 401 {
		t.Fatalf("register with a foreign token → %d, want 401", status)
	}
	status, b, _ := e.raw("POST", "/rendezvous/register", agentkeys.Token(o.AwaitToken), reg)
	if status != 200 {
		t.Fatalf("register → %d %v", status, b)
	}
	regTok := agentkeys.Token(b["registration_token"].(string))
	if status, _, _ := e.raw("POST", "/rendezvous/register", agentkeys.Token(o.AwaitToken), reg); status != 409 {
		t.Fatalf("second register → %d, want 409", status)
	}
	deliver := fmt.Sprintf(`{"pair_code":%q,"payload":"AAEC/w=="}`, o.PairCode)
	// Before approval nobody may deliver.
	if status, _, _ := e.raw("POST", "/rendezvous/deliver", alice.Token, deliver); status != 403 {
		t.Fatalf("deliver before approval → %d, want 403", status)
	}
	if status, _ := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatal("approve failed")
	}
	if status, _, _ := e.raw("POST", "/rendezvous/deliver", bob.Token, deliver); status != 403 {
		t.Fatalf("stranger delivering → %d, want 403", status)
	}
	got := make(chan map[string]any, 1)
	go func() {
		_, m, _ := e.raw("GET", "/rendezvous/poll", regTok, "")
		got <- m
	}()
	if status, _, _ := e.raw("POST", "/rendezvous/deliver", alice.Token, deliver); status != 200 {
		t.Fatalf("deliver → %d", status)
	}
	if m := <-got; m["status"] != "delivered" || m["payload"] != "AAEC/w==" {
		t.Fatalf("poll → %v", m)
	}
	if status, _, _ := e.raw("POST", "/rendezvous/deliver", alice.Token, deliver); status != 409 {
		t.Fatalf("second deliver → %d, want 409", status)
	}
	if status, _, _ := e.raw("GET", "/rendezvous/poll?token="+regTok.Reveal(), "", ""); status != 409 {
		t.Fatalf("poll after consumption → %d, want 409", status)
	}
	if status, b, _ := e.raw("POST", "/rendezvous/deliver", alice.Token, `{"pair_code":"ZZZZ-ZZZZ","payload":"AA=="}`); status != 404 || b["error"] != kindNoMatch {
		t.Fatalf("deliver to unknown code → %d %v", status, b)
	}
}

// TestPairThroughTheClient drives the same flow through backendclient, the
// way the daemon and the CLI do.
func TestPairThroughTheClient(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 100 * time.Millisecond; o.MockInbox = true })
	m := e.master("alice")
	if err := e.client.LinkIdentity(ctx, m.Token, "alias", "alice-laptop", ""); err != nil {
		t.Fatal(err)
	}
	parent, err := e.client.ResolveIdentity(ctx, "alias", "alice-laptop")
	if err != nil || parent != m.Wallet {
		t.Fatalf("resolve = %s, %v", parent, err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, _ := authreq.Encode(pairReq("openrouter"))
	o, err := e.client.OpenAuthRequest(ctx, backendclient.OpenRequest{ChildPubkey: pub, RequestType: authreq.TypePair, RequestDetails: details, ParentWallet: parent})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := e.client.AwaitAuthDecision(ctx, o); err != nil || d.Status != "timeout" {
		t.Fatalf("await before approval = %+v, %v", d, err)
	}
	p, err := e.client.FetchAuthRequest(ctx, m.Token, o.PairCode)
	if err != nil || p.RequestedScope == nil || p.RequestedScope.Services[0] != "openrouter" || p.OTPAttemptsLeft != MaxOTPAttempts {
		t.Fatalf("fetch = %+v, %v", p, err)
	}
	_, err = e.client.ApproveAuthRequest(ctx, m.Token, o.PairCode, wrongOTP(o.OTP))
	wantStatus(t, err, 403)
	ap, err := e.client.ApproveAuthRequest(ctx, m.Token, o.PairCode, o.OTP)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.client.AwaitAuthDecision(ctx, o)
	if err != nil || d.Status != "approved" || d.Session == nil || d.Session.Wallet != ap.Wallet {
		t.Fatalf("decision = %+v, %v", d, err)
	}
	addr, err := e.client.ProvisionInbox(ctx, d.Session.Token, d.Session.Wallet)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeliverMail(ctx, addr, "noreply@example.com", "Your code", "123456"); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.client.InboxMessages(ctx, d.Session.Token, addr, time.Time{})
	if err != nil || len(msgs) != 1 || msgs[0].Body != "123456" {
		t.Fatalf("messages = %+v, %v", msgs, err)
	}
	list, err := e.client.ListInboxes(ctx, m.Token, d.Session.Wallet)
	if err != nil || len(list) != 1 || list[0] != addr {
		t.Fatalf("inboxes = %v, %v", list, err)
	}
	o2, _ := e.client.OpenAuthRequest(ctx, backendclient.OpenRequest{ChildPubkey: pub, RequestType: authreq.TypePair, RequestDetails: details})
	if err := e.client.DenyAuthRequest(ctx, m.Token, o2.PairCode); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.client.AwaitAuthDecision(ctx, o2); d.Status != "denied" || d.Session != nil {
		t.Fatalf("denied decision = %+v", d)
	}
}

// TestMasterRecoveryNeedsExplicitConfirmation: a Recover whose identity
// names a master (by wallet or by alias) hands out a session of the whole
// account, so fetch says so and approve refuses unless the approver repeats
// the master's wallet in confirm_master_recovery. The refusal leaves the
// request pending.
func TestMasterRecoveryNeedsExplicitConfirmation(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = time.Second })
	alice := e.master("alice")
	bot := e.agent(alice, []string{"openrouter"}, false)
	if status, b, _ := e.raw("POST", "/identity/link", alice.Token, `{"identity_type":"alias","identity_value":"alice-home"}`); status != 200 {
		t.Fatalf("link → %d %v", status, b)
	}
	for _, id := range []authreq.Identity{
		{Type: authreq.IdentityWallet, Value: string(alice.Wallet)},
		{Type: authreq.IdentityAlias, Value: "alice-home"},
	} {
		o := e.open(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: id, NewDaemonPubkey: []byte{1}}, "")
		status, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, alice.Token, "")
		if status != 200 || f["target_kind"] != "master" || f["target_wallet"] != string(alice.Wallet) ||
			!strings.Contains(f["description"].(string), "MASTER") || strings.Contains(f["description"].(string), "agent") {
			t.Fatalf("%s: fetch → %d %v", id.Type, status, f)
		}
		for _, confirm := range []string{"", `,"confirm_master_recovery":"yes"`, fmt.Sprintf(`,"confirm_master_recovery":%q`, bot.Wallet)} {
			status, b, _ := e.raw("POST", "/auth-request/approve", alice.Token, fmt.Sprintf(`{"pair_code":%q,"otp":%q%s}`, o.PairCode, o.OTP, confirm))
			if status != 403 || b["error"] != kindMasterRecovery {
				t.Fatalf("%s: approve master recovery with %q → %d %v", id.Type, confirm, status, b)
			}
		}
		status, b, _ := e.raw("POST", "/auth-request/approve", alice.Token, fmt.Sprintf(`{"pair_code":%q,"otp":%q,"confirm_master_recovery":%q}`, o.PairCode, o.OTP, alice.Wallet))
		if status != 200 {
			t.Fatalf("%s: confirmed master recovery → %d %v", id.Type, status, b)
		}
		if s := sessionFrom(t, func() map[string]any { _, d := e.await(o); return d }()); s.Wallet != alice.Wallet {
			t.Fatalf("%s: recovered %s", id.Type, s.Wallet)
		}
	}
	// An agent's recovery needs no such confirmation and says "agent".
	if status, b, _ := e.raw("POST", "/identity/link", alice.Token, fmt.Sprintf(`{"identity_type":"alias","identity_value":"bot","wallet_address":%q}`, bot.Wallet)); status != 200 {
		t.Fatalf("link → %d %v", status, b)
	}
	o := e.open(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityAlias, Value: "bot"}, NewDaemonPubkey: []byte{1}}, "")
	if _, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, alice.Token, ""); f["target_kind"] != "agent" || !strings.Contains(f["description"].(string), "agent") {
		t.Fatalf("fetch agent recovery → %v", f)
	}
	if status, b := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatalf("agent recovery → %d %v", status, b)
	}
	// A stranger's fetch does not learn what the identity names.
	bob := e.master("bob")
	o = e.open(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityAlias, Value: "alice-home"}, NewDaemonPubkey: []byte{1}}, "")
	if _, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, bob.Token, ""); f["target_kind"] != nil || f["target_wallet"] != nil {
		t.Fatalf("stranger's fetch → %v", f)
	}
}

// TestScopeChangeFetchShowsTheCurrentScope lets an approver show a scope
// change as a change, read_only included.
func TestScopeChangeFetchShowsTheCurrentScope(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	a := e.agent(m, []string{"x", "z"}, true)
	o := e.open(authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(a.Wallet), NewScope: authreq.Scope{Services: []string{"x", "y"}}}, "")
	_, f, _ := e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, m.Token, "")
	cur, _ := f["current_scope"].(map[string]any)
	if cur == nil || cur["read_only"] != true || fmt.Sprint(cur["services"]) != "[x z]" {
		t.Fatalf("fetch current_scope = %v", f)
	}
	if d := f["description"].(string); !strings.Contains(d, "read-write") {
		t.Fatalf("description %q does not say the new scope may write", d)
	}
}

// TestIdentityRuleIsShared: the backend applies agentkeys.ParseIdentity's
// rule to links, look-ups and Recover requests, the same rule the CLI and
// the daemon apply before they send anything.
func TestIdentityRuleIsShared(t *testing.T) {
	e := newEnv(t)
	alice := e.master("alice")
	bot := e.agent(alice, []string{}, false)
	link := func(typ, value string) int {
		status, _, _ := e.raw("POST", "/identity/link", alice.Token,
			fmt.Sprintf(`{"identity_type":%q,"identity_value":%q,"wallet_address":%q}`, typ, value, bot.Wallet))
		return status
	}
	for _, c := range []struct{ typ, value string }{
		{"email", "a@b@example.com"}, // one @ only
		{"alias", "-bot"},            // a letter or digit first
		{"alias", "_bot"},
		{"ens", "a b.eth"},
		{"alias", "bot\u202e"},
		{"wallet", string(bot.Wallet)}, // a wallet names itself; it is not linked
	} {
		if s := link(c.typ, c.value); s != 400 {
			t.Errorf("link %s %q → %d, want 400", c.typ, c.value, s)
		}
	}
	if s := link("ens", " Bot.ETH "); s != 200 {
		t.Fatalf("link ens → %d", s)
	}
	status, b, _ := e.raw("GET", "/identity/resolve?identity_type=ens&identity_value=bot.eth", "", "")
	if status != 200 || b["wallet_address"] != string(bot.Wallet) {
		t.Fatalf("resolve normalised ens → %d %v", status, b)
	}
	upper := "0X" + strings.ToUpper(string(bot.Wallet[2:]))
	status, b, _ = e.raw("GET", "/identity/resolve?identity_type=wallet&identity_value="+upper, "", "")
	if status != 200 || b["wallet_address"] != string(bot.Wallet) {
		t.Fatalf("resolve upper-case wallet → %d %v", status, b)
	}
	// A Recover request naming an identity no link could ever hold is
	// refused when it is opened, not when a master tries to approve it.
	for _, id := range []authreq.Identity{{Type: authreq.IdentityAlias, Value: "-bot"}, {Type: authreq.IdentityEmail, Value: "a@b@c"}} {
		if status, body := e.openRaw(authreq.Request{Type: authreq.TypeRecover, AgentIdentity: id, NewDaemonPubkey: []byte{1}}, ""); status != 400 {
			t.Errorf("open Recover %v → %d %v, want 400", id, status, body)
		}
	}
	// The optional identity_type/identity_value must name the same identity,
	// compared after normalisation.
	rec := authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityEns, Value: "Bot.eth"}, NewDaemonPubkey: []byte{1}}
	if status, body := e.openRaw(rec, `,"identity_type":"ens","identity_value":"BOT.ETH"`); status != 200 {
		t.Errorf("open Recover with matching identity → %d %v", status, body)
	}
	if status, body := e.openRaw(rec, `,"identity_type":"alias","identity_value":"bot.eth"`); status != 400 {
		t.Errorf("open Recover with another kind → %d %v", status, body)
	}
}

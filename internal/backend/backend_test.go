package backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

type testEnv struct {
	t      testing.TB
	srv    *Server
	http   *httptest.Server
	client *backendclient.Client
	store  store.Store
	clock  *testkit.Clock
	logs   *testkit.SyncBuffer
	dbPath string
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type envOption func(*Options)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvDSN(t, filepath.Join(t.TempDir(), "backend.db"), opts...)
}

// newEnvDSN is newEnv on the database named by dbPath (a SQLite path or a
// PostgreSQL URL).
func newEnvDSN(t testing.TB, dbPath string, opts ...envOption) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	clk := testkit.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	o := Options{
		Store: st, Sealer: sealer, Now: clk.Now, LoginRate: -1, Login: MockLogin{},
		Logger: newTestLogger(logs),
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := backendclient.New(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, srv: srv, http: hs, client: c, store: o.Store, clock: clk, logs: logs, dbPath: dbPath}
}

var ctx = context.Background()

func (e *testEnv) master(identity string) backendclient.Session {
	e.t.Helper()
	s, err := e.client.CreateSession(ctx, identity)
	if err != nil {
		e.t.Fatalf("create master session: %v", err)
	}
	return s
}

func (e *testEnv) agent(parent backendclient.Session, services []string, readOnly bool) backendclient.Session {
	e.t.Helper()
	s, err := e.client.CreateChild(ctx, parent.Token, agentkeys.Scope{Services: services, ReadOnly: readOnly}, 0)
	if err != nil {
		e.t.Fatalf("create agent: %v", err)
	}
	return s
}

// storeCredential stores v for wallet w's service svc as tok; failing is fatal.
func (e *testEnv) storeCredential(tok agentkeys.Token, w agentkeys.Wallet, svc string, v []byte) {
	e.t.Helper()
	if err := e.client.StoreCredential(ctx, tok, w, svc, v); err != nil {
		e.t.Fatalf("store %s credential: %v", svc, err)
	}
}

// newAgentEnv is the start most tests share: a backend (newEnv), a master
// session for identity, and one writable agent below it scoped to services.
func newAgentEnv(t testing.TB, identity string, services ...string) (e *testEnv, m, a backendclient.Session) {
	t.Helper()
	e = newEnv(t)
	m = e.master(identity)
	return e, m, e.agent(m, services, false)
}

// raw sends a request and returns status and decoded JSON body.
func (e *testEnv) raw(method, path string, tok agentkeys.Token, body string) (int, map[string]any, http.Header) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
	}
	return resp.StatusCode, m, resp.Header
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var apiErr *backendclient.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v, want HTTP %d", err, status)
	}
	if apiErr.Status != status {
		t.Fatalf("status = %d (%s: %s), want %d", apiErr.Status, apiErr.Kind, apiErr.Message, status)
	}
}

func secret() []byte { return []byte("sk-test-" + rand.Text()) }

func TestSessionCreateIsIdempotentPerIdentity(t *testing.T) {
	e := newEnv(t)
	a1 := e.master("alice@example.com")
	a2 := e.master("alice@example.com")
	b := e.master("bob@example.com")
	if a1.Wallet != a2.Wallet {
		t.Fatal("same identity reached two wallets")
	}
	if a1.Token == a2.Token {
		t.Fatal("two logins returned the same session token")
	}
	if a1.Wallet == b.Wallet {
		t.Fatal("two identities share a wallet")
	}
	if got := a1.ExpiresAt.Sub(e.clock.Now()); got != DefaultSessionTTL {
		t.Fatalf("master session lifetime %v, want %v", got, DefaultSessionTTL)
	}
	id, err := e.client.Validate(ctx, a1.Token)
	if err != nil || id.Wallet != a1.Wallet || id.Kind != "master" || id.Scope != nil {
		t.Fatalf("validate = %+v, %v", id, err)
	}
}

func TestSessionCreateErrors(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{}`, 400},
		{`{"auth_token": ""}`, 401},
		{`{"auth_token": "invalid"}`, 401},
		{`{"auth_token": 7}`, 400},
		{`{"auth_token": "x", "extra": 1}`, 400},
		{`{"auth_token": "x"} {}`, 400},
		{`not json`, 400},
	} {
		status, body, _ := e.raw("POST", "/session/create", "", tc.body)
		if status != tc.status || body["error"] == nil || body["message"] == nil {
			t.Errorf("%s → %d %v, want %d with error envelope", tc.body, status, body, tc.status)
		}
	}
	req, _ := http.NewRequest("POST", e.http.URL+"/session/create", strings.NewReader(`{"auth_token":"x"}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain body → %d, want 415", resp.StatusCode)
	}
	big := `{"auth_token": "` + strings.Repeat("a", 20<<10) + `"}`
	if status, _, _ := e.raw("POST", "/session/create", "", big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body → %d, want 413", status)
	}
}

func TestLoginRateLimited(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LoginRate = 1 })
	var limited bool
	for range 25 {
		status, body, hdr := e.raw("POST", "/session/create", "", `{"auth_token":"x"}`)
		if status == http.StatusTooManyRequests {
			if hdr.Get("Retry-After") == "" || body["error"] != KindRateLimited {
				t.Fatalf("429 without Retry-After or envelope: %v %v", hdr, body)
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("25 logins from one IP in an instant were all accepted")
	}
}

func TestUnknownRouteAndMethodUseEnvelope(t *testing.T) {
	e := newEnv(t)
	if status, body, _ := e.raw("GET", "/nope", "", ""); status != 404 || body["error"] != KindNotFound {
		t.Fatalf("unknown path → %d %v", status, body)
	}
	if status, body, hdr := e.raw("GET", "/session/create", "", ""); status != 405 || body["error"] != KindMethodNotAllowed || hdr.Get("Allow") == "" {
		t.Fatalf("wrong method → %d %v allow=%q", status, body, hdr.Get("Allow"))
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	if err := e.client.Health(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Close()
	status, body, _ := e.raw("GET", "/health", "", "")
	if status != http.StatusServiceUnavailable || body["status"] != "unavailable" {
		t.Fatalf("health with closed database → %d %v, want 503", status, body)
	}
}

func TestAuthenticationFailures(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	cases := map[string]string{
		"no header":      "",
		"basic scheme":   "Basic abc",
		"malformed":      "Bearer not-a-token",
		"unknown token":  "Bearer " + agentkeys.NewToken().Reveal(),
		"lower-case ok?": "bearer " + m.Token.Reveal(),
	}
	for name, h := range cases {
		status := testkit.GetStatus(t, e.http.URL+"/session/validate", h)
		want := http.StatusUnauthorized
		if name == "lower-case ok?" {
			want = http.StatusOK // RFC 9110: the scheme is case-insensitive
		}
		if status != want {
			t.Errorf("%s → %d, want %d", name, status, want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openai")
	e.clock.Advance(DefaultSessionTTL - time.Second)
	if _, err := e.client.Validate(ctx, m.Token); err != nil {
		t.Fatalf("session refused before expiry: %v", err)
	}
	e.clock.Advance(time.Second)
	_, err := e.client.Validate(ctx, m.Token)
	wantStatus(t, err, 401)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("error %q does not say the session expired", err)
	}
	_, err = e.client.Validate(ctx, a.Token)
	wantStatus(t, err, 401)

	// The sweeper deletes expired rows.
	e.clock.Advance(time.Second)
	e.srv.sweepOnce(ctx)
	if _, err := e.store.Session(ctx, m.Token.Hash()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session still stored after sweep: %v", err)
	}
}

func TestChildNeverWiderThanParent(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openai", "openrouter")

	id, err := e.client.Validate(ctx, a.Token)
	if err != nil || id.Kind != "agent" || id.Parent != m.Wallet || id.Scope == nil || len(id.Scope.Services) != 2 {
		t.Fatalf("agent identity = %+v, %v", id, err)
	}
	// Sub-agent within scope: fine. Wider: refused.
	e.agent(a, []string{"openai"}, true)
	_, err = e.client.CreateChild(ctx, a.Token, agentkeys.Scope{Services: []string{"anthropic"}}, 0)
	wantStatus(t, err, 403)
	ro := e.agent(m, []string{"openai"}, true)
	_, err = e.client.CreateChild(ctx, ro.Token, agentkeys.Scope{Services: []string{"openai"}, ReadOnly: false}, 0)
	wantStatus(t, err, 403)

	// A child's session never outlives its parent's.
	short, err := e.client.CreateChild(ctx, m.Token, agentkeys.Scope{Services: []string{}}, time.Hour)
	if err != nil || short.ExpiresAt.Sub(e.clock.Now()) != time.Hour {
		t.Fatalf("ttl_seconds not honoured: %+v %v", short, err)
	}
	long, err := e.client.CreateChild(ctx, short.Token, agentkeys.Scope{Services: []string{}}, 48*time.Hour)
	if err != nil || long.ExpiresAt.After(short.ExpiresAt) {
		t.Fatalf("grandchild outlives its parent: %v vs %v (%v)", long.ExpiresAt, short.ExpiresAt, err)
	}

	for _, body := range []string{`{}`, `{"scope": null}`, `{"scope": {"services": ["Bad Name"], "read_only": false}}`, `{"scope": {"services": "openai"}}`, `{"scope": {"services": []}, "ttl_seconds": -1}`} {
		if status, _, _ := e.raw("POST", "/session/child", m.Token, body); status != 400 {
			t.Errorf("child %s → %d, want 400", body, status)
		}
	}
}

func TestCredentialRoundTripAndScope(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openrouter")
	v := secret()

	e.storeCredential(m.Token, a.Wallet, "openrouter", v)
	e.storeCredential(m.Token, a.Wallet, "openai", []byte("other"))
	got, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter")
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("agent read = %q, %v; want the stored value", got, err)
	}
	got, err = e.client.ReadCredential(ctx, m.Token, a.Wallet, "openai")
	if err != nil || string(got) != "other" {
		t.Fatalf("master read of agent's out-of-scope service = %q, %v", got, err)
	}
	// Overwrite.
	v2 := secret()
	e.storeCredential(a.Token, a.Wallet, "openrouter", v2)
	if got, _ := e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter"); !bytes.Equal(got, v2) {
		t.Fatal("store did not replace the credential")
	}

	// Scope: read, list and store limited to the agent's services.
	_, err = e.client.ReadCredential(ctx, a.Token, a.Wallet, "openai")
	wantStatus(t, err, 403)
	err = e.client.StoreCredential(ctx, a.Token, a.Wallet, "anthropic", []byte("x"))
	wantStatus(t, err, 403)
	list, err := e.client.ListCredentials(ctx, a.Token, a.Wallet)
	if err != nil || len(list) != 1 || list[0] != "openrouter" {
		t.Fatalf("agent list = %v, %v; want only its scoped service", list, err)
	}
	list, err = e.client.ListCredentials(ctx, m.Token, a.Wallet)
	if err != nil || len(list) != 2 || list[0] != "openai" || list[1] != "openrouter" {
		t.Fatalf("master list = %v, %v; want both, sorted", list, err)
	}
	_, err = e.client.ReadCredential(ctx, m.Token, a.Wallet, "missing")
	wantStatus(t, err, 404)

	// An agent cannot reach its parent's or a sibling's wallet.
	sib := e.agent(m, []string{"openrouter"}, false)
	_, err = e.client.ReadCredential(ctx, a.Token, sib.Wallet, "openrouter")
	wantStatus(t, err, 403)
	_, err = e.client.ListCredentials(ctx, a.Token, m.Wallet)
	wantStatus(t, err, 403)

	// Scope narrowing applies at once, to every session of the wallet.
	if err := e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter")
	wantStatus(t, err, 403)
}

func TestReadOnlyScope(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	ro := e.agent(m, []string{"openai"}, true)
	e.storeCredential(m.Token, ro.Wallet, "openai", []byte("v"))
	if _, err := e.client.ReadCredential(ctx, ro.Token, ro.Wallet, "openai"); err != nil {
		t.Fatalf("read-only agent cannot read: %v", err)
	}
	err := e.client.StoreCredential(ctx, ro.Token, ro.Wallet, "openai", []byte("overwrite"))
	wantStatus(t, err, 403)
	_, err = e.client.Teardown(ctx, ro.Token, ro.Wallet)
	wantStatus(t, err, 403)
	if got, _ := e.client.ReadCredential(ctx, m.Token, ro.Wallet, "openai"); string(got) != "v" {
		t.Fatal("read-only agent changed its credential")
	}
}

func TestCrossWalletAccessDenied(t *testing.T) {
	e := newEnv(t)
	alice := e.master("alice")
	bob := e.master("bob")
	aa := e.agent(alice, []string{"openai"}, false)
	e.storeCredential(alice.Token, aa.Wallet, "openai", secret())
	_, err := e.client.ReadCredential(ctx, bob.Token, aa.Wallet, "openai")
	wantStatus(t, err, 403)
	// An unknown wallet answers the same as a foreign one: no existence oracle.
	_, err = e.client.ReadCredential(ctx, bob.Token, agentkeys.NewWallet(), "openai")
	wantStatus(t, err, 403)
	_, err = e.client.ListCredentials(ctx, bob.Token, aa.Wallet)
	wantStatus(t, err, 403)
	wantStatus(t, e.client.StoreCredential(ctx, bob.Token, aa.Wallet, "openai", []byte("evil")), 403)
	_, err = e.client.Teardown(ctx, bob.Token, aa.Wallet)
	wantStatus(t, err, 403)
	_, err = e.client.RevokeWallet(ctx, bob.Token, aa.Wallet)
	wantStatus(t, err, 403)
	_, err = e.client.RevokeSession(ctx, bob.Token, aa.Token)
	wantStatus(t, err, 403)
	_, err = e.client.GetScope(ctx, bob.Token, aa.Wallet)
	wantStatus(t, err, 403)
	wantStatus(t, e.client.SetScope(ctx, bob.Token, aa.Wallet, agentkeys.Scope{Services: []string{"openai"}}), 403)
	// An agent cannot widen itself, and a master cannot scope itself.
	wantStatus(t, e.client.SetScope(ctx, aa.Token, aa.Wallet, agentkeys.Scope{Services: []string{"openai", "x"}}), 400)
	wantStatus(t, e.client.SetScope(ctx, alice.Token, alice.Wallet, agentkeys.Scope{}), 400)

	// Mixed-case (EIP-55 style) spelling is the same wallet.
	upper := agentkeys.Wallet("0x" + strings.ToUpper(string(aa.Wallet[2:])))
	if _, err := e.client.ReadCredential(ctx, alice.Token, upper, "openai"); err != nil {
		t.Fatalf("mixed-case wallet not recognised: %v", err)
	}

	// Alice sees the probes against her agent; Bob's own view has them too.
	page, err := e.client.QueryAudit(ctx, alice.Token, backendclient.AuditFilter{Owner: bob.Wallet, Result: agentkeys.ResultDenied})
	if err != nil || len(page.Events) == 0 {
		t.Fatalf("alice sees no denied probes: %v %v", page.Events, err)
	}
}

func TestScopeGetPut(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "b", "a", "a")
	sc, err := e.client.GetScope(ctx, m.Token, a.Wallet)
	if err != nil || sc == nil || strings.Join(sc.Services, ",") != "a,b" {
		t.Fatalf("scope = %+v, %v; want sorted, de-duplicated [a b]", sc, err)
	}
	if sc, err := e.client.GetScope(ctx, m.Token, ""); err != nil || sc != nil {
		t.Fatalf("master's own scope = %+v, %v; want unrestricted (null services)", sc, err)
	}
	empty := e.agent(m, []string{}, false)
	sc, err = e.client.GetScope(ctx, m.Token, empty.Wallet)
	if err != nil || sc == nil || len(sc.Services) != 0 {
		t.Fatalf("empty scope = %+v, %v; want [] distinct from unrestricted", sc, err)
	}

	// A sub-agent's effective scope narrows when its parent's does.
	sub := e.agent(a, []string{"a"}, false)
	if err := e.client.SetScope(ctx, m.Token, a.Wallet, agentkeys.Scope{Services: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	sc, err = e.client.GetScope(ctx, m.Token, sub.Wallet)
	if err != nil || sc == nil || len(sc.Services) != 0 {
		t.Fatalf("sub-agent effective scope = %+v, %v; want [] after parent lost a", sc, err)
	}
	// The agent may narrow its own child but not widen it beyond itself.
	wantStatus(t, e.client.SetScope(ctx, a.Token, sub.Wallet, agentkeys.Scope{Services: []string{"a"}}), 403)
	if err := e.client.SetScope(ctx, a.Token, sub.Wallet, agentkeys.Scope{Services: []string{"b"}, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}

	for _, body := range []string{`{"scope":{"services":[],"read_only":false}}`, `{"target_wallet":"0x12","scope":{"services":[]}}`, `{"target_wallet":"` + string(a.Wallet) + `"}`} {
		if status, _, _ := e.raw("PUT", "/session/scope", m.Token, body); status != 400 {
			t.Errorf("PUT scope %s → %d, want 400", body, status)
		}
	}
	if status, _, _ := e.raw("GET", "/session/scope?wallet=nope", m.Token, ""); status != 400 {
		t.Errorf("GET scope with malformed wallet → %d, want 400", status)
	}
}

func TestRevokeCascades(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x")
	b := e.agent(a, []string{"x"}, false)
	c := e.agent(b, []string{"x"}, false)
	other := e.agent(m, []string{"x"}, false)

	n, err := e.client.RevokeSession(ctx, m.Token, a.Token)
	if err != nil || n != 3 {
		t.Fatalf("revoke a → %d, %v; want 3 (a, b, c)", n, err)
	}
	for _, s := range []backendclient.Session{a, b, c} {
		_, err := e.client.Validate(ctx, s.Token)
		wantStatus(t, err, 401)
	}
	if _, err := e.client.Validate(ctx, other.Token); err != nil {
		t.Fatalf("sibling revoked too: %v", err)
	}
	// A revoked session cannot mint children.
	_, err = e.client.CreateChild(ctx, b.Token, agentkeys.Scope{Services: []string{}}, 0)
	wantStatus(t, err, 401)
	// Re-revoking is harmless.
	if n, err := e.client.RevokeSession(ctx, m.Token, a.Token); err != nil || n != 0 {
		t.Fatalf("re-revoke → %d, %v", n, err)
	}
	_, err = e.client.RevokeSession(ctx, m.Token, agentkeys.NewToken())
	wantStatus(t, err, 404)

	// Wallet form: every session of the wallet and its descendants.
	m2 := e.master("alice") // second session on the same wallet
	o2 := e.agent(m2, []string{"x"}, false)
	n, err = e.client.RevokeWallet(ctx, m.Token, other.Wallet)
	if err != nil || n != 1 {
		t.Fatalf("revoke wallet → %d, %v", n, err)
	}
	_, err = e.client.RevokeWallet(ctx, m.Token, other.Wallet)
	wantStatus(t, err, 404)
	if _, err := e.client.Validate(ctx, o2.Token); err != nil {
		t.Fatalf("unrelated agent revoked: %v", err)
	}
	// Revoking the master session ends everything minted from it.
	if _, err := e.client.RevokeSession(ctx, m2.Token, m2.Token); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Validate(ctx, o2.Token)
	wantStatus(t, err, 401)
	if _, err := e.client.Validate(ctx, m.Token); err != nil {
		t.Fatalf("the other master session died with m2: %v", err)
	}

	for _, body := range []string{`{}`, `{"target_session":"` + a.Token.Reveal() + `","target_wallet":"` + string(a.Wallet) + `"}`, `{"target_wallet":"zz"}`} {
		if status, _, _ := e.raw("POST", "/session/revoke", m.Token, body); status != 400 {
			t.Errorf("revoke %s → %d, want 400", body, status)
		}
	}
}

func TestTeardownRemovesSubtree(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x", "y")
	b := e.agent(a, []string{"x"}, false)
	for _, w := range []agentkeys.Wallet{a.Wallet, b.Wallet} {
		e.storeCredential(m.Token, w, "x", secret())
	}
	res, err := e.client.Teardown(ctx, m.Token, a.Wallet)
	if err != nil || res.WalletsRemoved != 2 || res.CredentialsRemoved != 2 || res.SessionsRevoked != 2 {
		t.Fatalf("teardown = %+v, %v", res, err)
	}
	_, err = e.client.Validate(ctx, b.Token)
	wantStatus(t, err, 401)
	_, err = e.client.ReadCredential(ctx, m.Token, a.Wallet, "x")
	wantStatus(t, err, 404)
	wantStatus(t, e.client.StoreCredential(ctx, m.Token, a.Wallet, "x", []byte("v")), 404)
	_, err = e.client.Teardown(ctx, m.Token, a.Wallet)
	wantStatus(t, err, 404)
	// An agent may tear itself down.
	self := e.agent(m, []string{"x"}, false)
	if _, err := e.client.Teardown(ctx, self.Token, self.Wallet); err != nil {
		t.Fatalf("agent self-teardown: %v", err)
	}
	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: agentkeys.ActionTeardown})
	if err != nil || len(page.Events) != 2 || page.Events[1].Agent != a.Wallet {
		t.Fatalf("teardown audit = %+v, %v", page.Events, err)
	}
}

// TestTeardownOwnMasterWallet: as with the original backend, a master may
// tear down its own wallet. Every session of its tree is revoked, every
// credential deleted and its agents are gone for good; the identity can
// log in again and finds the same, empty wallet.
func TestTeardownOwnMasterWallet(t *testing.T) {
	e := newEnv(t)
	m := e.master("carol")
	m2 := e.master("carol") // a second session of the same master
	a := e.agent(m, []string{"x"}, false)
	other := e.master("dave")
	for _, w := range []agentkeys.Wallet{m.Wallet, a.Wallet} {
		e.storeCredential(m.Token, w, "x", secret())
	}
	// Nobody else may: not another master, not the master's own agent.
	_, err := e.client.Teardown(ctx, other.Token, m.Wallet)
	wantStatus(t, err, 403)
	_, err = e.client.Teardown(ctx, a.Token, m.Wallet)
	wantStatus(t, err, 403)

	res, err := e.client.Teardown(ctx, m.Token, m.Wallet)
	if err != nil || res.WalletsRemoved != 2 || res.CredentialsRemoved != 2 || res.SessionsRevoked != 3 {
		t.Fatalf("master teardown = %+v, %v", res, err)
	}
	for _, tok := range []agentkeys.Token{m.Token, m2.Token, a.Token} {
		_, err = e.client.Validate(ctx, tok)
		wantStatus(t, err, 401)
	}
	again := e.master("carol")
	if again.Wallet != m.Wallet {
		t.Fatalf("re-login reached wallet %s, want the torn-down master's %s", again.Wallet, m.Wallet)
	}
	_, err = e.client.ReadCredential(ctx, again.Token, m.Wallet, "x")
	wantStatus(t, err, 404)
	_, err = e.client.ReadCredential(ctx, again.Token, a.Wallet, "x")
	wantStatus(t, err, 404)
	wantStatus(t, e.client.StoreCredential(ctx, again.Token, a.Wallet, "x", []byte("v")), 404) // the agent is gone for good
	if err := e.client.StoreCredential(ctx, again.Token, m.Wallet, "x", []byte("v")); err != nil {
		t.Fatalf("the master cannot use its wallet after logging in again: %v", err)
	}
	// The teardown and the two refused attempts stay in the master's log.
	page, err := e.client.QueryAudit(ctx, again.Token, backendclient.AuditFilter{Action: agentkeys.ActionTeardown})
	if err != nil || len(page.Events) != 3 || page.Events[0].Owner != m.Wallet || page.Events[0].Result != agentkeys.ResultOK ||
		page.Events[1].Result != agentkeys.ResultDenied || page.Events[2].Result != agentkeys.ResultDenied {
		t.Fatalf("teardown audit = %+v, %v", page.Events, err)
	}
}

// failingStore makes TombstoneWallets fail inside transactions, the last
// step of a teardown, to prove that nothing before it sticks.
type failingStore struct{ store.Store }

type failingQueries struct{ store.Queries }

func (f failingQueries) TombstoneWallets(context.Context, []agentkeys.Wallet) error {
	return errors.New("injected failure")
}

func (f failingStore) Tx(ctx context.Context, fn func(store.Queries) error) error {
	return f.Store.Tx(ctx, func(q store.Queries) error { return fn(failingQueries{q}) })
}

func TestTeardownIsAtomic(t *testing.T) {
	var inner store.Store
	e := newEnv(t, func(o *Options) { inner = o.Store; o.Store = failingStore{o.Store} })
	m := e.master("alice")
	a := e.agent(m, []string{"x"}, false)
	v := secret()
	e.storeCredential(m.Token, a.Wallet, "x", v)
	_, err := e.client.Teardown(ctx, m.Token, a.Wallet)
	wantStatus(t, err, 500)
	var apiErr *backendclient.Error
	if errors.As(err, &apiErr) && strings.Contains(apiErr.Message, "injected") {
		t.Fatal("internal error text reached the client")
	}
	if _, err := e.client.Validate(ctx, a.Token); err != nil {
		t.Fatalf("failed teardown left the session revoked: %v", err)
	}
	if got, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "x"); err != nil || !bytes.Equal(got, v) {
		t.Fatalf("failed teardown deleted the credential: %v", err)
	}
	if w, err := inner.Wallet(ctx, a.Wallet); err != nil || w.TornDown {
		t.Fatalf("failed teardown left the wallet tombstoned: %+v %v", w, err)
	}
}

// failingAudit makes every audit append fail.
type failingAudit struct{ store.Store }

func (failingAudit) AppendAudit(context.Context, agentkeys.AuditEvent) (int64, error) {
	return 0, errors.New("audit disk full")
}

// failingTxAudit makes audit appends inside transactions fail.
type failingTxAudit struct{ store.Store }

type failingTxAuditQueries struct{ store.Queries }

func (failingTxAuditQueries) AppendAudit(context.Context, agentkeys.AuditEvent) (int64, error) {
	return 0, errors.New("audit disk full")
}

func (f failingTxAudit) Tx(ctx context.Context, fn func(store.Queries) error) error {
	return f.Store.Tx(ctx, func(q store.Queries) error { return fn(failingTxAuditQueries{q}) })
}

// A read whose audit row cannot be written returns no value: the single
// read (its row goes through the group commit) and the batch read (its
// rows go in one transaction).
func TestReadFailsClosedWhenAuditFails(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		fail         func(store.Store) store.Store
		path, body   func(agentkeys.Wallet) string
	}{
		{"read", "GET", func(s store.Store) store.Store { return failingAudit{s} },
			func(w agentkeys.Wallet) string { return "/credential/read?agent_id=" + string(w) + "&service=x" },
			func(agentkeys.Wallet) string { return "" }},
		{"read-batch", "POST", func(s store.Store) store.Store { return failingTxAudit{s} },
			func(agentkeys.Wallet) string { return "/credential/read-batch" },
			func(w agentkeys.Wallet) string { return `{"agent_id":"` + string(w) + `"}` }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st store.Store
			e := newEnv(t, func(o *Options) { st = o.Store })
			m := e.master("alice")
			v := secret()
			e.storeCredential(m.Token, m.Wallet, "x", v)
			e.srv.store = tc.fail(st)
			status, body, _ := e.raw(tc.method, tc.path(m.Wallet), m.Token, tc.body(m.Wallet))
			if status != 500 || strings.Contains(body["message"].(string), "disk") {
				t.Fatalf("read with failing audit → %d %v, want a generic 500", status, body)
			}
			if raw, _ := json.Marshal(body); bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(v))) {
				t.Fatal("credential left the server although its read was not audited")
			}
		})
	}
}

func TestAuditQuery(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "x")
	e.storeCredential(m.Token, a.Wallet, "x", secret())
	start := e.clock.Now()
	for range 5 {
		e.clock.Advance(time.Minute)
		if _, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "x"); err != nil {
			t.Fatal(err)
		}
	}
	e.client.ReadCredential(ctx, a.Token, a.Wallet, "y") // DENIED_SCOPE

	page, err := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: "read", Result: "ok"})
	if err != nil || len(page.Events) != 5 {
		t.Fatalf("read/ok events = %d, %v", len(page.Events), err)
	}
	for i := 1; i < len(page.Events); i++ {
		if page.Events[i].ID >= page.Events[i-1].ID {
			t.Fatal("events not newest first")
		}
	}
	page, _ = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Result: agentkeys.ResultDeniedScope, Service: "y"})
	if len(page.Events) != 1 || page.Events[0].Owner != a.Wallet {
		t.Fatalf("denied-scope events = %+v", page.Events)
	}
	// Time range: reads at start+1m … start+5m; [start+2m, start+4m) holds two.
	page, _ = e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Action: "read", Result: "ok", Since: start.Add(2 * time.Minute), Until: start.Add(4 * time.Minute)})
	if len(page.Events) != 2 {
		t.Fatalf("time-range events = %d, want 2", len(page.Events))
	}
	// Pagination: pages of 2 cover all rows once.
	seen := map[int64]bool{}
	var total int
	f := backendclient.AuditFilter{Limit: 2}
	for {
		p, err := e.client.QueryAudit(ctx, m.Token, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			if seen[ev.ID] {
				t.Fatalf("event %d on two pages", ev.ID)
			}
			seen[ev.ID] = true
		}
		total += len(p.Events)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	all, _ := e.client.QueryAudit(ctx, m.Token, backendclient.AuditFilter{Limit: 1000})
	if total != len(all.Events) {
		t.Fatalf("paged total %d, unpaged %d", total, len(all.Events))
	}
	// The agent sees its own rows but not its master's login.
	own, _ := e.client.QueryAudit(ctx, a.Token, backendclient.AuditFilter{Action: agentkeys.ActionSessionCreate})
	if len(own.Events) != 0 {
		t.Fatal("agent sees its master's logins")
	}
	// A stranger sees nothing of Alice's.
	bob := e.master("bob")
	p, _ := e.client.QueryAudit(ctx, bob.Token, backendclient.AuditFilter{Agent: a.Wallet})
	if len(p.Events) != 0 {
		t.Fatalf("stranger sees %d of alice's events", len(p.Events))
	}
	for _, q := range []string{"limit=0", "limit=5000", "since=yesterday", "cursor=abc", "owner=0x1", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		if status, _, _ := e.raw("GET", "/audit/query?"+q, m.Token, ""); status != 400 {
			t.Errorf("audit query %s → %d, want 400", q, status)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	e := newEnv(t)
	m := e.master("alice")
	w := string(m.Wallet)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/credential/store", `{"service":"x","ciphertext":"eA=="}`},
		{"POST", "/credential/store", `{"agent_id":"` + w + `","ciphertext":"eA=="}`},
		{"POST", "/credential/store", `{"agent_id":"` + w + `","service":"x"}`},
		{"POST", "/credential/store", `{"agent_id":"` + w + `","service":"x","ciphertext":"%%%"}`},
		{"POST", "/credential/store", `{"agent_id":"` + w + `","service":"../etc","ciphertext":"eA=="}`},
		{"POST", "/credential/store", `{"agent_id":"` + w + `","service":"x","ciphertext":"eA==","value":"x"}`},
		{"GET", "/credential/read?service=x", ""},
		{"GET", "/credential/read?agent_id=" + w, ""},
		{"GET", "/credential/list", ""},
		{"POST", "/credential/read-batch", `{}`},
		{"POST", "/credential/read-batch", `{"agent_id":"` + w + `","services":["../etc"]}`},
		{"POST", "/credential/read-batch", `{"agent_id":"` + w + `","services":[` + strings.Repeat(`"x",`, api.MaxBatchServices) + `"x"]}`},
		{"DELETE", "/credential/teardown", `{}`},
	} {
		if status, body, _ := e.raw(tc.method, tc.path, m.Token, tc.body); status != 400 || body["error"] != KindBadRequest {
			t.Errorf("%s %s %s → %d %v, want 400", tc.method, tc.path, tc.body, status, body)
		}
	}
	// A body within the limit whose decoded value is one byte over the
	// maximum secret size is a bad request; a body over the limit is 413.
	tooBig := base64.StdEncoding.EncodeToString(make([]byte, MaxSecretSize+1))
	if status, body, _ := e.raw("POST", "/credential/store", m.Token, `{"agent_id":"`+w+`","service":"x","ciphertext":"`+tooBig+`"}`); status != 400 || body["error"] != KindBadRequest {
		t.Errorf("credential one byte over the maximum → %d %v, want 400", status, body)
	}
	atMax := base64.StdEncoding.EncodeToString(make([]byte, MaxSecretSize))
	if status, body, _ := e.raw("POST", "/credential/store", m.Token, `{"agent_id":"`+w+`","service":"x","ciphertext":"`+atMax+`"}`); status != 200 {
		t.Errorf("credential of exactly the maximum size → %d %v, want 200", status, body)
	}
	hugeBody := strings.Repeat("A", 2*MaxSecretSize+4)
	if status, _, _ := e.raw("POST", "/credential/store", m.Token, `{"agent_id":"`+w+`","service":"x","ciphertext":"`+hugeBody+`"}`); status != 413 {
		t.Errorf("body over the limit → %d, want 413", status)
	}
}

// TestNoSecretInLogsOrDatabase plants a credential and tokens, exercises
// success and failure paths, and then greps the logs and every database
// file for them.
func TestNoSecretInLogsOrDatabase(t *testing.T) {
	e := newEnv(t)
	identity := "planted-identity-" + rand.Text()
	m := e.master(identity)
	a := e.agent(m, []string{"openrouter"}, false)
	v := secret()
	e.storeCredential(m.Token, a.Wallet, "openrouter", v)
	e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter")
	e.client.ReadCredential(ctx, a.Token, a.Wallet, "nope")
	e.client.StoreCredential(ctx, a.Token, m.Wallet, "openrouter", v)
	e.raw("POST", "/session/revoke", m.Token, `{"target_session":"`+a.Token.Reveal()+`","target_wallet":"x"}`)
	e.client.RevokeSession(ctx, m.Token, a.Token)
	e.client.Validate(ctx, a.Token)
	e.store.Close()

	planted := map[string]string{
		"credential":          string(v),
		"credential (base64)": base64.StdEncoding.EncodeToString(v),
		"master token":        m.Token.Reveal(),
		"agent token":         a.Token.Reveal(),
		"login identity":      identity,
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("no request logs captured; the test would prove nothing")
	}
	files, _ := filepath.Glob(e.dbPath + "*")
	for name, s := range planted {
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", name)
		}
		for _, f := range files {
			raw, _ := os.ReadFile(f)
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("%s appears in plain in %s", name, filepath.Base(f))
			}
		}
	}
}

// TestHealthReportsFullDisk: /health used to check only that the database
// answered reads, so it said "ok" while every write failed on a full disk.
func TestHealthReportsFullDisk(t *testing.T) {
	dir := testkit.Tmpfs(t, "4m")
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "backend.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, func(o *Options) { o.Store = st })
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			break // ENOSPC
		}
	}
	f.Close()
	status, body, _ := e.raw("GET", "/health", "", "")
	if status != http.StatusServiceUnavailable || body["database"] != "not_writable" {
		t.Fatalf("health on a full disk → %d %v, want 503 not_writable", status, body)
	}
	os.Remove(filler)
	if status, body, _ := e.raw("GET", "/health", "", ""); status != http.StatusOK || body["database"] != "ok" {
		t.Fatalf("health after freeing the disk → %d %v", status, body)
	}
}

package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/services"
)

func TestParseRequest(t *testing.T) {
	good := []string{
		`{"jsonrpc":"2.0","id":1,"method":"read","params":{"service":"x"}}`,
		`{"jsonrpc":"2.0","id":"a","method":"list"}`,
		`{"jsonrpc":"2.0","id":null,"method":"status","params":null}`,
		`{"jsonrpc":"2.0","method":"status"}`,
	}
	for _, g := range good {
		if _, e := parseRequest([]byte(g)); e != nil {
			t.Errorf("%s: %+v", g, e)
		}
	}
	bad := map[string]int{
		`{`:                                      rpcParseError,
		`[{"jsonrpc":"2.0","method":"x"}]`:       rpcInvalidRequest,
		`"x"`:                                    rpcInvalidRequest,
		`{"jsonrpc":"1.0","id":1,"method":"x"}`:  rpcInvalidRequest,
		`{"jsonrpc":"2.0","id":1}`:               rpcInvalidRequest,
		`{"jsonrpc":"2.0","id":{},"method":"x"}`: rpcInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":3}`: rpcInvalidRequest,
		`{"jsonrpc":"2.0","id":1,"method":"x","extra":1}`:  rpcInvalidRequest,
		"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}":        rpcParseError,
	}
	for b, code := range bad {
		if _, e := parseRequest([]byte(b)); e == nil || e.Code != code {
			t.Errorf("%s: %+v, want code %d", b, e, code)
		}
	}
	req, e := parseRequest([]byte(`{"jsonrpc":"2.0","id":7,"method":"x","params":{"a":1}}`))
	if e != nil || string(req.ID) != "7" || string(req.Params) != `{"a":1}` {
		t.Fatalf("%+v %+v", req, e)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "ctl\x00\x1f\n\t\r", "<>&", "é€😀", "bad\xffutf8", "\u2028\u2029"} {
		enc := appendJSONString(nil, []byte(s))
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%q → %s: %v", s, enc, err)
		}
		want, _ := json.Marshal(s)
		var w string
		json.Unmarshal(want, &w)
		if back != w {
			t.Fatalf("%q round-trips to %q, want %q", s, back, w)
		}
	}
}

func TestMaskSecret(t *testing.T) {
	secret := []byte("sk-live-abcdefghijklmnopqrstuvwxyz0123")
	forms := secretForms(secret)
	b64 := base64.StdEncoding.EncodeToString(secret)
	prefixed := base64.StdEncoding.EncodeToString(append([]byte("user:"), secret...))
	prefixed1 := base64.StdEncoding.EncodeToString(append([]byte("u"), secret...))
	url := base64.URLEncoding.EncodeToString(secret)
	in := "a " + string(secret) + " b " + b64 + " c " + prefixed + " d " + prefixed1 + " e " + url + " f " + strings.ToUpper(string(hexOf(secret))) + "\n"
	out := string(maskSecret([]byte(in), forms, false))
	for _, leak := range []string{string(secret), b64, strings.TrimRight(b64, "=")} {
		if strings.Contains(out, leak) {
			t.Fatalf("leak %q in %q", leak, out)
		}
	}
	// No decodable window of the output reveals the secret.
	for _, tok := range strings.Fields(out) {
		for off := 0; off < len(tok); off++ {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
				for end := len(tok); end > off+8; end-- {
					if dec, err := enc.DecodeString(tok[off:end]); err == nil && bytes.Contains(dec, secret[4:20]) {
						t.Fatalf("base64 window %q still decodes to the secret", tok[off:end])
					}
				}
			}
		}
	}
	// A secret cut by truncation is masked too.
	cut := []byte("output " + string(secret[:20]))
	if got := string(maskSecret(cut, forms, true)); strings.Contains(got, string(secret[:12])) {
		t.Fatalf("truncated secret kept: %q", got)
	}
	if got := string(maskSecret([]byte("nothing to see"), forms, false)); got != "nothing to see" {
		t.Fatalf("clean text changed: %q", got)
	}
}

func hexOf(b []byte) []byte {
	const h = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, h[c>>4], h[c&0xf])
	}
	return out
}

func TestEnvNames(t *testing.T) {
	if services.EnvNameFor("aws-prod") != "AWS_PROD_API_KEY" {
		t.Fatal(services.EnvNameFor("aws-prod"))
	}
	for n, ok := range map[string]bool{"A": true, "_X1": true, "1A": false, "A-B": false, "A=B": false, "": false} {
		if validEnvName(n) != ok {
			t.Errorf("%q", n)
		}
	}
}

// TestResolveParentParsesLocally: --parent is read with the shared
// identity rule; a wallet in any case needs no backend, and a malformed
// 0x value is refused before anything is sent.
func TestResolveParentParsesLocally(t *testing.T) {
	w := string(agentkeys.NewWallet())
	for _, in := range []string{w, strings.ToUpper(w[:2]) + w[2:], "0x" + strings.ToUpper(w[2:]), " " + w + " "} {
		got, err := resolveParent(t.Context(), nil, in)
		if err != nil || string(got) != w {
			t.Errorf("resolveParent(%q) = %q, %v; want %s", in, got, err, w)
		}
	}
	for _, in := range []string{"0x-office", "bot\u202e", "a@b@c"} {
		if _, err := resolveParent(t.Context(), nil, in); err == nil {
			t.Errorf("resolveParent(%q) accepted", in)
		}
	}
}

func TestRefreshAt(t *testing.T) {
	now := time.Unix(1000, 0)
	if got := refreshAt(now, now.Add(300*time.Second)); got != now.Add(240*time.Second) {
		t.Fatal(got)
	}
	if got := refreshAt(now, now.Add(3600*time.Second)); got != now.Add(3300*time.Second) {
		t.Fatal(got)
	}
	if got := refreshAt(now, now.Add(20*time.Second)); got != now.Add(10*time.Second) {
		t.Fatal(got)
	}
}

// fakeBroker mimics agentkeys-broker's mint endpoints and records every
// Authorization header it receives.
type fakeBroker struct {
	*httptest.Server
	accept    func(bearer string) bool
	awsMints  atomic.Int32
	oidcMints atomic.Int32
	ttl       time.Duration

	mu      sync.Mutex
	bearers []string
}

// Bearers returns the tokens presented to the fake broker so far.
func (fb *fakeBroker) Bearers() []string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return slices.Clone(fb.bearers)
}

// newFakeBroker accepts exactly token.
func newFakeBroker(t testing.TB, token string, ttl time.Duration) *fakeBroker {
	return newFakeBrokerFunc(t, func(b string) bool { return b == token }, ttl)
}

// newFakeBrokerFor accepts, like the real broker, what the backend b
// validates, and only broker tokens (audience "broker").
func newFakeBrokerFor(t testing.TB, b *testBackend, ttl time.Duration) *fakeBroker {
	return newFakeBrokerFunc(t, func(bearer string) bool {
		tok, err := agentkeys.ParseToken(bearer)
		if err != nil {
			return false
		}
		id, err := b.client.Validate(context.Background(), tok)
		return err == nil && id.Audience == "broker"
	}, ttl)
}

func newFakeBrokerFunc(t testing.TB, accept func(string) bool, ttl time.Duration) *fakeBroker {
	fb := &fakeBroker{accept: accept, ttl: ttl}
	fb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost {
			w.WriteHeader(405)
			return
		}
		h := r.Header.Get("Authorization")
		fb.mu.Lock()
		fb.bearers = append(fb.bearers, strings.TrimPrefix(h, "Bearer "))
		fb.mu.Unlock()
		if !strings.HasPrefix(h, "Bearer ") || !fb.accept(strings.TrimPrefix(h, "Bearer ")) {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"unauthorized","message":"unauthorized: session not found"}`))
			return
		}
		exp := time.Now().Add(fb.ttl).Unix()
		switch r.URL.Path {
		case "/v1/mint-aws-creds":
			n := fb.awsMints.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"access_key_id": "ASIAFAKE" + string(rune('A'+n)), "secret_access_key": "fake-secret-access-key-0123456789",
				"session_token": "fake-session-token", "expiration": exp, "wallet": "0x00000000000000000000000000000000000000aa"})
		case "/v1/mint-oidc-jwt":
			n := fb.oidcMints.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"jwt": "eyJhbGciOiJFUzI1NiJ9.payload" + string(rune('a'+n)) + ".sig", "wallet": "0x00000000000000000000000000000000000000aa", "expiration": exp})
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(fb.Close)
	return fb
}

// passDeriver stands in for the backend in unit tests of the broker client:
// its "broker token" is the session itself, so the fake broker can tell
// sessions apart. (The real derivation is tested end to end.)
type passDeriver struct{}

func (passDeriver) BrokerToken(_ context.Context, s agentkeys.Token, _ time.Duration) (agentkeys.Token, time.Time, error) {
	return s, time.Now().Add(5 * time.Minute), nil
}

func testService(t testing.TB, broker *fakeBroker, tok agentkeys.Token, now func() time.Time) *Service {
	bc, err := NewBrokerClient(broker.URL, nil, passDeriver{})
	if err != nil {
		t.Fatal(err)
	}
	return NewService(ServiceOptions{Broker: bc, Session: Session{Token: tok, Wallet: agentkeys.NewWallet()}, Now: now, IdleEvict: time.Minute})
}

func TestBrokerCacheAndEviction(t *testing.T) {
	tok := agentkeys.NewToken()
	fb := newFakeBroker(t, tok.Reveal(), time.Hour)
	now := time.Now()
	clock := func() time.Time { return now }
	svc := testService(t, fb, tok, clock)
	ctx := context.Background()
	for range 3 {
		b, err := svc.AWSCredentialsJSON(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r AWSResult
		if err := json.Unmarshal(b, &r); err != nil || r.AccessKeyID == "" || r.Expiration == "" {
			t.Fatalf("%s %v", b, err)
		}
	}
	if n := fb.awsMints.Load(); n != 1 {
		t.Fatalf("%d mints, want 1 (cached)", n)
	}
	now = now.Add(56 * time.Minute) // past refreshAt (exp - 5 min)
	svc.AWSCredentialsJSON(ctx)
	if n := fb.awsMints.Load(); n != 2 {
		t.Fatalf("%d mints after expiry window, want 2", n)
	}
	now = now.Add(2 * time.Minute) // idle > IdleEvict
	if svc.EvictIdle() != 1 {
		t.Fatal("idle AWS credentials not evicted")
	}
	svc.AWSCredentialsJSON(ctx)
	if n := fb.awsMints.Load(); n != 3 {
		t.Fatalf("%d mints after eviction, want 3", n)
	}
	// OIDC and errors.
	if _, _, err := svc.OIDCTokenJSON(ctx); err != nil {
		t.Fatal(err)
	}
	bad := testService(t, fb, agentkeys.NewToken(), clock)
	if _, err := bad.AWSCredentialsJSON(ctx); CodeOf(err) != CodeAuthFailed || strings.Contains(err.Error(), tok.Reveal()) {
		t.Fatalf("bad token: %v", err)
	}
	none := NewService(ServiceOptions{})
	if _, err := none.AWSCredentialsJSON(ctx); CodeOf(err) != CodeNoBroker {
		t.Fatalf("no broker: %v", err)
	}
	down, _ := NewBrokerClient("http://127.0.0.1:1", nil, passDeriver{})
	if _, err := down.MintAWS(ctx, tok); CodeOf(err) != CodeUnreachable {
		t.Fatalf("down: %v", err)
	}
	svc.Close()
}

func TestKeepTokenFile(t *testing.T) {
	tok := agentkeys.NewToken()
	fb := newFakeBroker(t, tok.Reveal(), 12*time.Second) // refresh every ~2 s
	svc := testService(t, fb, tok, nil)
	path := filepath.Join(t.TempDir(), "token")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan error, 1)
	go svc.KeepTokenFile(ctx, path, ready)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi, err)
	}
	first, _ := os.ReadFile(path)
	if !bytes.HasPrefix(first, []byte("eyJ")) {
		t.Fatalf("token file holds %q", first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, _ := os.ReadFile(path)
		if len(cur) > 0 && !bytes.Equal(cur, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token file not refreshed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCredentialProcessDirect(t *testing.T) {
	b, _, ks, sf := startBackendAgent(t, "aws")
	fb := newFakeBrokerFor(t, b, time.Hour)
	out, err := CredentialProcess(context.Background(), CredentialProcessOptions{SessionFile: sf, BrokerURL: fb.URL})
	if err != nil {
		t.Fatal(err)
	}
	var cp CredentialProcessOutput
	if err := json.Unmarshal(out, &cp); err != nil || cp.Version != 1 || cp.AccessKeyID == "" || cp.SessionToken == "" {
		t.Fatalf("%s %v", out, err)
	}
	if _, err := time.Parse(time.RFC3339, cp.Expiration); err != nil {
		t.Fatal(err)
	}
	assertUselessAtBackend(t, b, ks, fb.Bearers())

	// A session file bound to a broker: used without --broker-url, and a
	// different --broker-url is refused before anything is sent.
	ks.Broker = fb.URL
	if err := keychain.WriteSessionFile(sf, ks); err != nil {
		t.Fatal(err)
	}
	if _, err := CredentialProcess(context.Background(), CredentialProcessOptions{SessionFile: sf}); err != nil {
		t.Fatalf("bound broker: %v", err)
	}
	stray := newFakeBrokerFunc(t, func(string) bool { return true }, time.Hour)
	_, err = CredentialProcess(context.Background(), CredentialProcessOptions{SessionFile: sf, BrokerURL: stray.URL})
	if err == nil || !strings.Contains(err.Error(), "bound to broker") {
		t.Fatalf("stray broker URL: %v", err)
	}
	if n := len(stray.Bearers()); n != 0 {
		t.Fatalf("the stray broker received %d requests", n)
	}
}

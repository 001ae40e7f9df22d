package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/sts"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

const testRoleARN = "arn:aws:iam::000000000000:role/agentkeys-data-role"

// fakeBackend answers GET /session/validate and GET /health like the
// AgentKeys backend.
type fakeBackend struct {
	*httptest.Server
	mu       sync.Mutex
	sessions map[string]*session
	calls    int
	health   int           // status of /health (200 by default)
	hold     chan struct{} // when set, /session/validate waits for it
	entered  chan struct{} // when set, /session/validate signals it before waiting on hold
	status   int           // when set, /session/validate answers this status
	body     string        // ... with this body

	children map[agentkeys.Wallet][]agentkeys.Wallet // for /session/tree
	treeDown bool                                    // /session/tree answers 503

	epoch       int64 // revocation epoch, bumped by revoke
	epochCalls  int
	noEpoch     bool // answer 404 to /session/epoch, like an older backend
	epochStatus int  // when set, /session/epoch answers this status
}

type session struct {
	wallet  agentkeys.Wallet
	kind    string
	scope   *agentkeys.Scope
	expires time.Time // zero: a day from each validation
	revoked bool
}

func newFakeBackend(t testing.TB) *fakeBackend {
	b := &fakeBackend{sessions: map[string]*session{}, health: http.StatusOK, children: map[agentkeys.Wallet][]agentkeys.Wallet{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		st := b.health
		b.mu.Unlock()
		w.WriteHeader(st)
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /session/validate", b.validate)
	mux.HandleFunc("GET /session/tree", b.tree)
	mux.HandleFunc("GET /session/epoch", func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.epochCalls++
		no, st, e := b.noEpoch, b.epochStatus, b.epoch
		b.mu.Unlock()
		switch {
		case no:
			http.NotFound(w, r)
		case st != 0:
			w.WriteHeader(st)
		default:
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]int64{"epoch": e})
		}
	})
	b.Server = httptest.NewServer(mux)
	t.Cleanup(b.Close)
	return b
}

func (b *fakeBackend) validate(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.calls++
	hold, entered, status, body := b.hold, b.entered, b.status, b.body
	b.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if hold != nil {
		<-hold
	}
	if status != 0 {
		w.WriteHeader(status)
		io.WriteString(w, body)
		return
	}
	unauthorized := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "UNAUTHORIZED", "message": msg})
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		unauthorized("missing Authorization header")
		return
	}
	b.mu.Lock()
	s, epoch, noEpoch := b.sessions[tok], b.epoch, b.noEpoch
	revoked := s != nil && s.revoked
	b.mu.Unlock()
	switch {
	case s == nil:
		unauthorized("session not found")
	case revoked:
		unauthorized("session revoked")
	default:
		exp := s.expires
		if exp.IsZero() {
			exp = time.Now().Add(24 * time.Hour)
		}
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{
			"wallet": s.wallet, "kind": s.kind, "scope": s.scope, "expires_at": exp.Unix(),
		}
		if !noEpoch {
			body["epoch"] = epoch
		}
		json.NewEncoder(w).Encode(body)
	}
}

// tree answers GET /session/tree: the bearer's wallet and its children
// (registered with newChild), like the AgentKeys backend.
func (b *fakeBackend) tree(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	s, down := b.sessions[tok], b.treeDown
	var kids []agentkeys.Wallet
	if s != nil {
		kids = b.children[s.wallet]
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case down:
		w.WriteHeader(http.StatusServiceUnavailable)
	case s == nil || s.revoked:
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "UNAUTHORIZED", "message": "session not found"})
	default:
		json.NewEncoder(w).Encode(map[string]any{"wallet": s.wallet, "wallets": append([]agentkeys.Wallet{s.wallet}, kids...)})
	}
}

// newChild registers an agent session below parent's wallet.
func (b *fakeBackend) newChild(parent agentkeys.Wallet, scope *agentkeys.Scope) (string, agentkeys.Wallet) {
	tok, w := b.newSession("agent", scope)
	b.mu.Lock()
	b.children[parent] = append(b.children[parent], w)
	b.mu.Unlock()
	return tok, w
}

// newSession registers a session and returns its bearer.
func (b *fakeBackend) newSession(kind string, scope *agentkeys.Scope) (string, agentkeys.Wallet) {
	tok := agentkeys.NewToken().Reveal()
	w := agentkeys.NewWallet()
	b.mu.Lock()
	b.sessions[tok] = &session{wallet: w, kind: kind, scope: scope}
	b.mu.Unlock()
	return tok, w
}

// newSessionUntil registers a session that ends at expires (whole seconds,
// as the backend reports it).
func (b *fakeBackend) newSessionUntil(kind string, scope *agentkeys.Scope, expires time.Time) (string, agentkeys.Wallet) {
	tok, w := b.newSession(kind, scope)
	b.mu.Lock()
	b.sessions[tok].expires = expires
	b.mu.Unlock()
	return tok, w
}

func (b *fakeBackend) revoke(tok string) {
	b.mu.Lock()
	b.sessions[tok].revoked = true
	b.epoch++
	b.mu.Unlock()
}

func (b *fakeBackend) set(fn func(b *fakeBackend)) {
	b.mu.Lock()
	fn(b)
	b.mu.Unlock()
}

func (b *fakeBackend) epochCallCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epochCalls
}

func (b *fakeBackend) validateCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// harness is a broker on loopback with a fake backend, a fake STS, a real
// SQLite ledger and a real key set in a temp dir.
type harness struct {
	t       *testing.T
	backend *fakeBackend
	sts     *ststest.Fake
	ledger  *audit.SQL
	sink    audit.Sink // what the server uses (may wrap ledger)
	issuer  *oidc.Issuer
	server  *Server
	srv     *httptest.Server
	logs    *testkit.SyncBuffer // log output from concurrent handlers
	clock   *testkit.Clock      // the validation cache's time source
	cfg     Config
	keyFile string
}

// loopbackBroker starts a broker as the command wires it (real HTTP server,
// ES256 key file and SQLite ledger in a temp dir, no rate limits, no AWS)
// against backendURL, after tune (if not nil) edits the configuration. It
// returns the broker's URL and the configuration it runs with.
func loopbackBroker(t testing.TB, backendURL, issuer string, tune func(*Config)) (string, Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Issuer = issuer
	cfg.BackendURL = backendURL
	cfg.KeyFile = filepath.Join(dir, "keys.json")
	cfg.AuditDB = filepath.Join(dir, "audit.sqlite")
	cfg.RatePerBearer, cfg.RatePerIP = 0, 0
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	iss, err := oidc.NewIssuer(oidc.Config{Issuer: cfg.Issuer, TTL: cfg.JWTTTL, KeyFile: cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.Open(context.Background(), cfg.AuditDB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	v := NewHTTPValidator(cfg.BackendURL, cfg.BackendTimeout)
	hs := httptest.NewServer(NewServer(cfg, Deps{Validator: v, BackendHealth: v.Health, Issuer: iss, Audit: sink}))
	t.Cleanup(hs.Close)
	return hs.URL, cfg
}

type option func(h *harness, cfg *Config)

func withSink(s audit.Sink) option { return func(h *harness, _ *Config) { h.sink = s } }

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, backend: newFakeBackend(t), sts: ststest.New(), logs: &testkit.SyncBuffer{},
		clock: testkit.NewClock(time.Now())}
	t.Cleanup(h.sts.Close)
	ledger, err := audit.Open(context.Background(), filepath.Join(dir, "audit.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	h.ledger, h.sink = ledger, ledger

	cfg := Defaults()
	cfg.BackendURL = h.backend.URL
	cfg.KeyFile = filepath.Join(dir, "oidc-keys.json")
	cfg.AuditDB = filepath.Join(dir, "audit.sqlite")
	cfg.DataRoleARN = testRoleARN
	cfg.STSEndpoint = h.sts.URL
	cfg.AccessKeyID, cfg.SecretAccessKey = "AKIATESTBROKER000001", "broker-static-secret-"+agentkeys.NewToken().Reveal()[:16]
	cfg.RatePerBearer, cfg.RatePerIP = 0, 0 // unlimited unless a test says otherwise
	for _, o := range opts {
		o(h, &cfg)
	}
	h.srv = httptest.NewUnstartedServer(nil)
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + h.srv.Listener.Addr().String()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	h.cfg = cfg
	h.keyFile = cfg.KeyFile
	h.issuer, err = oidc.NewIssuer(oidc.Config{Issuer: cfg.Issuer, TTL: cfg.JWTTTL, KeyFile: cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	stsClient, err := sts.New(context.Background(), sts.Config{Region: cfg.Region, AccessKeyID: cfg.AccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey, Endpoint: cfg.STSEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	validator := NewHTTPValidator(cfg.BackendURL, cfg.BackendTimeout)
	var awsMinter AWSMinter = stsClient
	if !cfg.AWSEnabled() {
		awsMinter = nil
	}
	h.server = NewServer(cfg, Deps{
		Validator: validator, BackendHealth: validator.Health, Tree: validator, Issuer: h.issuer, AWS: awsMinter,
		Audit: h.sink, Now: h.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	h.srv.Config.Handler = h.server
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not JSON: %q", r.status, r.body)
	}
	return m
}

// errorKind checks the error envelope and returns its kind.
func (r response) errorKind(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	kind, _ := m["error"].(string)
	msg, _ := m["message"].(string)
	if kind == "" || msg == "" || len(m) != 2 {
		t.Fatalf("not an error envelope: %s", r.body)
	}
	return kind
}

// wantErrorf fails t unless r is the error envelope of kind with status;
// format and args name the request in the failure.
func (r response) wantErrorf(t *testing.T, status int, kind, format string, args ...any) {
	t.Helper()
	if r.status != status || r.errorKind(t) != kind {
		t.Fatalf("%s: %d %s, want %d %s", fmt.Sprintf(format, args...), r.status, r.body, status, kind)
	}
}

func (h *harness) do(method, path, bearer string, body string, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) mintJWT(bearer string) response { return h.do("POST", PathMintJWT, bearer, "") }
func (h *harness) mintAWS(bearer string) response { return h.do("POST", PathMintAWS, bearer, "") }

func (h *harness) lastRow() audit.Record {
	h.t.Helper()
	r, ok, err := h.ledger.Last(context.Background())
	if err != nil || !ok {
		h.t.Fatalf("no audit row: %v", err)
	}
	return r
}

func (h *harness) rows() int64 {
	h.t.Helper()
	n, err := h.ledger.Count(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

package provision

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/api"
)

// verifyAPI is a stand-in for OpenRouter's GET /api/v1/key: 200 for the
// keys in good, 401 otherwise; down makes it answer 503.
type verifyAPI struct {
	*httptest.Server
	mu   sync.Mutex
	good map[string]bool
	down bool
	hits int
}

// refuseAndRecord makes the API refuse every key; the string it returns
// holds the last bearer sent (the echo-config scraper sends its
// configuration as the key), to be read once the run is over.
func (v *verifyAPI) refuseAndRecord() *string {
	var seen string
	v.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.WriteHeader(http.StatusUnauthorized)
	})
	return &seen
}

func newVerifyAPI(t *testing.T, good ...string) *verifyAPI {
	v := &verifyAPI{good: map[string]bool{}}
	for _, k := range good {
		v.good[k] = true
	}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.hits++
		if r.URL.Path != "/api/v1/key" {
			http.NotFound(w, r)
			return
		}
		if v.down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if !v.good[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"data":{"label":"x"}}`))
	}))
	t.Cleanup(v.Close)
	return v
}

func newKey() string {
	return "sk-or-v1-" + strings.ToLower(rand.Text()) + strings.ToLower(rand.Text())
}

type harness struct {
	t    *testing.T
	be   *memBackend
	api  *verifyAPI
	orch *Orchestrator
	opts Options
}

func newHarness(t *testing.T, mode string, key string, good ...string) *harness {
	h := &harness{t: t, be: &memBackend{}, api: newVerifyAPI(t, good...)}
	h.opts = Options{
		Backend: h.be, Agent: "0xagent", Scraper: fakeCommand(t),
		Env:      fakeEnv(mode, "FAKE_KEY="+key),
		StateDir: t.TempDir(), Timeout: 30 * time.Second,
		Getenv: func(k string) string {
			if k == "AGENTKEYS_OPENROUTER_API_URL" {
				return h.api.URL
			}
			return ""
		},
	}
	h.orch = New(h.opts)
	return h
}

func (h *harness) run(req Request) (Result, []Event, error) {
	var mu sync.Mutex
	var evs []Event
	res, err := h.orch.Provision(context.Background(), req, func(e Event) {
		mu.Lock()
		evs = append(evs, e)
		mu.Unlock()
	})
	return res, evs, err
}

func TestProvisionStoresVerifiedKey(t *testing.T) {
	key := newKey()
	h := newHarness(t, "success", key, key)
	res, evs, err := h.run(Request{Service: "openrouter"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stored || !res.KeyVerified || res.Existing || !res.Audited {
		t.Fatalf("result = %+v", res)
	}
	if h.be.creds["openrouter"] != key {
		t.Fatal("the verified key was not stored")
	}
	if strings.Contains(res.APIKeyMasked, key[len(key)-12:len(key)-4]) || !strings.HasPrefix(res.APIKeyMasked, "sk-or-v1") || !strings.HasSuffix(res.APIKeyMasked, key[len(key)-4:]) {
		t.Fatalf("masked = %q", res.APIKeyMasked)
	}
	if !strings.HasPrefix(res.Email, "bot-") {
		t.Fatalf("no fresh inbox used: %q", res.Email)
	}
	steps := []string{}
	for _, e := range evs {
		if e.Terminal() {
			t.Fatalf("terminal event %v passed to progress", e.Type)
		}
		steps = append(steps, e.Step)
	}
	if !strings.Contains(strings.Join(steps, "|"), "navigating_to_signup") {
		t.Fatalf("scraper progress not relayed: %v", steps)
	}
	if a := h.be.audit(); len(a) != 1 || !strings.HasPrefix(a[0], "openrouter ok ") {
		t.Fatalf("audit = %v", a)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), key) {
		t.Fatal("result carries the key")
	}
}

func TestProvisionKeepsWorkingStoredKey(t *testing.T) {
	key := newKey()
	h := newHarness(t, "fail-if-run", "", key)
	h.be.creds = map[string]string{"openrouter": key}
	res, _, err := h.run(Request{Service: "openrouter"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Existing || !res.KeyVerified || res.Stored || h.be.stores != 0 {
		t.Fatalf("result = %+v, stores = %d", res, h.be.stores)
	}
}

func TestProvisionReplacesDeadStoredKey(t *testing.T) {
	newk := newKey()
	h := newHarness(t, "success", newk, newk)
	h.be.creds = map[string]string{"openrouter": newKey()} // rejected by the API
	res, _, err := h.run(Request{Service: "openrouter"})
	if err != nil || !res.Stored || h.be.creds["openrouter"] != newk {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
}

func TestProvisionForceSignsUpAgain(t *testing.T) {
	oldk, newk := newKey(), newKey()
	h := newHarness(t, "success", newk, oldk, newk)
	h.be.creds = map[string]string{"openrouter": oldk}
	res, _, err := h.run(Request{Service: "openrouter", Force: true})
	if err != nil || !res.Stored || h.be.creds["openrouter"] != newk {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
}

func TestProvisionRejectsKeyThatFailsVerification(t *testing.T) {
	fake := "sk-or-v1-FAKE0000000000000000000000"
	h := newHarness(t, "success", fake) // the API knows no key
	res, _, err := h.run(Request{Service: "openrouter"})
	if CodeOf(err) != CodeVerificationFailed {
		t.Fatalf("err = %v (%s)", err, CodeOf(err))
	}
	if h.be.stores != 0 || res.Stored {
		t.Fatal("an unverified key was stored")
	}
	if strings.Contains(err.Error(), fake) {
		t.Fatal("error message holds the key")
	}
	if a := h.be.audit(); len(a) != 1 || !strings.HasPrefix(a[0], "openrouter verification_failed") {
		t.Fatalf("audit = %v", a)
	}
}

func TestProvisionVerifyEndpointDown(t *testing.T) {
	key := newKey()
	h := newHarness(t, "success", key, key)
	h.api.down = true
	_, _, err := h.run(Request{Service: "openrouter"})
	if CodeOf(err) != CodeVerifyEndpointDown || h.be.stores != 0 {
		t.Fatalf("err = %v, stores = %d", err, h.be.stores)
	}
}

func TestProvisionStoreFailure(t *testing.T) {
	key := newKey()
	h := newHarness(t, "success", key, key)
	h.be.storeErr = errors.New("backend said no")
	_, _, err := h.run(Request{Service: "openrouter"})
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeStoreFailed || !strings.Contains(pe.Message, "****") {
		t.Fatalf("err = %v", err)
	}
}

func TestProvisionTripwire(t *testing.T) {
	h := newHarness(t, "tripwire", "")
	_, _, err := h.run(Request{Service: "openrouter"})
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeTripwire || pe.Kind != TripCaptcha || pe.Step != "signup_form" || pe.Hint == "" {
		t.Fatalf("err = %#v", err)
	}
	// The scraper's stderr is kept, redacted, next to the diagnostics.
	matches, _ := filepath.Glob(filepath.Join(h.opts.StateDir, "diagnostics", "openrouter-*", "scraper.log"))
	if len(matches) != 1 {
		t.Fatalf("scraper.log files: %v", matches)
	}
	if fi, _ := os.Stat(matches[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("scraper.log mode %v", fi.Mode())
	}
	if a := h.be.audit(); len(a) != 1 || !strings.Contains(a[0], "tripwire_exhausted captcha signup_form") {
		t.Fatalf("audit = %v", a)
	}
}

func TestProvisionUnknownErrorCodeIsInternal(t *testing.T) {
	h := newHarness(t, "error-unknown-code", "")
	_, _, err := h.run(Request{Service: "openrouter"})
	if CodeOf(err) != CodeInternal || !strings.Contains(err.Error(), "brand_new_code") {
		t.Fatalf("err = %v", err)
	}
}

func TestProvisionUnsupportedService(t *testing.T) {
	h := newHarness(t, "fail-if-run", "")
	_, _, err := h.run(Request{Service: "myspace"})
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeUnsupportedService || !strings.Contains(pe.Hint, "openrouter") {
		t.Fatalf("err = %v", err)
	}
}

func TestProvisionPassesMinimalEnvAndConfigOnStdin(t *testing.T) {
	t.Setenv("AGENTKEYS_PLANTED_SECRET", "must-not-reach-the-scraper")
	h := newHarness(t, "echo-config", "")
	h.opts.AWSEnv = func(context.Context) ([]string, error) {
		return []string{"AWS_ACCESS_KEY_ID=ASIAFAKE", "AWS_SECRET_ACCESS_KEY=x", "AWS_SESSION_TOKEN=y"}, nil
	}
	h.opts.Mail.Backend, h.opts.SignupEmail = "ses", "signup@mail.example.test"
	h.orch = New(h.opts)
	seen := h.api.refuseAndRecord()
	_, _, err := h.run(Request{Service: "openrouter"})
	if CodeOf(err) != CodeVerificationFailed {
		t.Fatalf("err = %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(*seen), &got); err != nil {
		t.Fatalf("scraper said %q", *seen)
	}
	if got["aws"] != "ASIAFAKE" || got["password_set"] != true || got["mail"] != "ses" || got["diag"] != true ||
		got["email"] != "signup@mail.example.test" || got["signup"] != "https://openrouter.ai/sign-up" {
		t.Fatalf("scraper config = %v", got)
	}
}

func TestProvisionBrokerFailure(t *testing.T) {
	h := newHarness(t, "fail-if-run", "")
	h.opts.AWSEnv = func(context.Context) ([]string, error) { return nil, errors.New("broker: HTTP 401") }
	h.opts.Mail.Backend, h.opts.SignupEmail = "ses", "signup@mail.example.test"
	h.orch = New(h.opts)
	_, _, err := h.run(Request{Service: "openrouter"})
	if CodeOf(err) != CodeBrokerFailed {
		t.Fatalf("err = %v", err)
	}
}

func TestProvisionMintsAWSOnlyForSES(t *testing.T) {
	key := newKey()
	h := newHarness(t, "echo-config", key)
	called := false
	h.opts.AWSEnv = func(context.Context) ([]string, error) { called = true; return nil, errors.New("no STS") }
	h.orch = New(h.opts)
	seen := h.api.refuseAndRecord()
	_, _, err := h.run(Request{Service: "openrouter"})
	if called || CodeOf(err) != CodeVerificationFailed || !strings.Contains(*seen, `"aws":""`) {
		t.Fatalf("broker called = %v, err = %v, scraper saw %s", called, err, *seen)
	}
}

func TestProvisionOneRunPerAgentAndService(t *testing.T) {
	key := newKey()
	h := newHarness(t, "wait-for-file", key, key)
	flag := filepath.Join(t.TempDir(), "go")
	h.opts.Env = append(h.opts.Env, "FAKE_FILE="+flag)
	h.orch = New(h.opts)
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := h.orch.Provision(context.Background(), Request{Service: "openrouter"}, func(e Event) {
			if e.Step == "navigating_to_signup" {
				once.Do(func() { close(started) })
			}
		})
		done <- err
	}()
	<-started
	// Same process, same (agent, service): refused.
	if _, _, err := h.run(Request{Service: "openrouter"}); CodeOf(err) != CodeInProgress {
		t.Fatalf("second run: %v", err)
	}
	// Another process (another Orchestrator on the same state dir): refused too.
	other := New(h.opts)
	if _, err := other.Provision(context.Background(), Request{Service: "openrouter"}, nil); CodeOf(err) != CodeInProgress {
		t.Fatalf("run from another orchestrator: %v", err)
	}
	os.WriteFile(flag, nil, 0o600)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Released afterwards.
	if _, _, err := h.run(Request{Service: "openrouter"}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A long audit detail is cut to the backend's 200 bytes before a character,
// never inside one: sent as JSON, a split "…" would arrive as U+FFFD bytes
// and push the detail past the bound the backend checks.
func TestAuditDetailCutsBeforeACharacter(t *testing.T) {
	got := auditDetail(strings.Repeat("a", 199) + "…\x01 and more")
	b, err := json.Marshal(api.AuditProvisionRequest{Detail: got})
	if err != nil {
		t.Fatal(err)
	}
	var back api.AuditProvisionRequest
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Detail != strings.Repeat("a", 199) || len(back.Detail) > 200 {
		t.Errorf("detail arrives as %q (%d bytes)", back.Detail, len(back.Detail))
	}
	if got := auditDetail("step\nfailed\x7f"); got != "step failed " {
		t.Errorf("control characters: %q", got)
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"sk-or-v1-0123456789abcdef": "sk-or-v1****cdef",
		"short":                     "****",
		"ключ-ключ-ключ-ключ-ключ": "ключ-клю****ключ",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiagnosticsArePruned(t *testing.T) {
	h := newHarness(t, "tripwire", "")
	diag := filepath.Join(h.opts.StateDir, "diagnostics")
	for i := range keepDiagnostics + 5 {
		os.MkdirAll(filepath.Join(diag, fmt.Sprintf("openai-20200101T0000%02d.000000000Z", i)), 0o700)
	}
	if _, _, err := h.run(Request{Service: "openrouter"}); CodeOf(err) != CodeTripwire {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(diag)
	if len(entries) != keepDiagnostics {
		t.Fatalf("%d diagnostics directories kept, want %d", len(entries), keepDiagnostics)
	}
	if _, err := os.Stat(filepath.Join(diag, "openai-20200101T000000.000000000Z")); err == nil {
		t.Fatal("the oldest run was kept")
	}
	if !strings.HasPrefix(entries[len(entries)-1].Name(), "openrouter-") {
		t.Fatalf("the newest run is missing: %v", entries[len(entries)-1].Name())
	}
}

package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

func TestMintAWSCreds(t *testing.T) {
	h := newHarness(t)
	tok, wallet := h.backend.newSession("agent", &agentkeys.Scope{Services: []string{"aws", "openrouter"}})
	resp := h.mintAWS(tok)
	if resp.status != http.StatusOK {
		t.Fatalf("mint = %d %s", resp.status, resp.body)
	}
	var got api.MintAWSResponse
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatal(err)
	}
	issued := h.sts.Issued()
	if len(issued) != 1 {
		t.Fatalf("STS issued %d credentials", len(issued))
	}
	is := issued[0]
	if got.AccessKeyID != is.AccessKeyID || got.SecretAccessKey != is.SecretAccessKey || got.SessionToken != is.SessionToken ||
		got.Expiration != is.Expiration.Unix() || got.Wallet != string(wallet) {
		t.Fatalf("response %+v does not carry what STS issued", got)
	}
	call := h.sts.Calls()[0]
	if call.RoleArn != testRoleARN || call.DurationSeconds != 3600 || call.Tags["agentkeys_user_wallet"] != string(wallet) ||
		call.Tags["agentkeys_session_kind"] != "agent" || !strings.Contains(call.RoleSessionName, string(wallet)) {
		t.Fatalf("AssumeRole call = %+v", call)
	}
	if p := h.sts.Problems(); len(p) > 0 {
		t.Fatalf("fake STS rejected: %v", p)
	}
	row := h.lastRow()
	if row.Outcome != audit.OutcomeOK || row.RequesterWallet != string(wallet) || row.RequesterTokenHash != string(agentkeys.HashSecret(tok)) ||
		row.Detail != "" || row.RequestedRole != testRoleARN || row.STSSessionName != call.RoleSessionName ||
		row.CredentialID != is.AccessKeyID || row.CredentialExpiresAt != is.Expiration.Unix() || row.DurationSeconds != 3600 ||
		row.ClientIP != "127.0.0.1" || row.RequestID != resp.header.Get("X-Request-Id") {
		t.Fatalf("audit row = %+v", row)
	}
	if resp.header.Get("Cache-Control") != "no-store" {
		t.Errorf("credential response Cache-Control = %q", resp.header.Get("Cache-Control"))
	}
}

func TestMintOIDCJWT(t *testing.T) {
	h := newHarness(t)
	tok, wallet := h.backend.newSession("master", nil)
	before := time.Now().Unix()
	resp := h.mintJWT(tok)
	if resp.status != http.StatusOK {
		t.Fatalf("mint = %d %s", resp.status, resp.body)
	}
	var got api.MintJWTResponse
	json.Unmarshal(resp.body, &got)
	if got.Wallet != string(wallet) || got.Expiration < before+295 || got.Expiration > time.Now().Unix()+301 {
		t.Fatalf("response = %+v", got)
	}
	p, err := gooidc.NewProvider(context.Background(), h.cfg.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.Verifier(&gooidc.Config{ClientID: "sts.amazonaws.com"}).Verify(context.Background(), got.JWT)
	if err != nil {
		t.Fatalf("go-oidc rejected the broker's token: %v", err)
	}
	var cl oidctest.Claims
	idt.Claims(&cl)
	if idt.Subject != "agentkeys:agent:"+string(wallet) || cl.Wallet != string(wallet) || cl.Tags.PrincipalTags["agentkeys_user_wallet"][0] != string(wallet) {
		t.Fatalf("claims: sub=%s %+v", idt.Subject, cl)
	}
	row := h.lastRow()
	if row.Outcome != audit.OutcomeOK || row.RequestedRole != audit.RoleOIDCJWT || row.RequesterWallet != string(wallet) ||
		row.STSSessionName != h.issuer.CurrentKID() || row.CredentialID != cl.Jti || row.CredentialExpiresAt != got.Expiration ||
		row.DurationSeconds != 300 {
		t.Fatalf("audit row = %+v", row)
	}
}

func TestMintAuthFailures(t *testing.T) {
	h := newHarness(t)
	good, _ := h.backend.newSession("master", nil)
	unknown := agentkeys.NewToken().Reveal()
	for _, ep := range []string{PathMintJWT, PathMintAWS} {
		cases := []struct {
			name     string
			header   string
			wantMsg  string
			wantHash string
		}{
			{"no header", "", "missing Authorization header", ""},
			{"basic auth", "Basic dXNlcjpwYXNz", "Bearer", string(agentkeys.HashSecret("Basic dXNlcjpwYXNz"))},
			{"malformed token", "Bearer not-a-token", "malformed bearer token", string(agentkeys.HashSecret("not-a-token"))},
			{"empty token", "Bearer ", "", ""},
			{"never-minted token", "Bearer " + unknown, "session not found", string(agentkeys.HashSecret(unknown))},
		}
		for _, tc := range cases {
			t.Run(ep+"/"+tc.name, func(t *testing.T) {
				before := h.rows()
				var resp response
				if tc.header == "" {
					resp = h.do("POST", ep, "", "")
				} else {
					resp = h.do("POST", ep, "", "", "Authorization", tc.header)
				}
				if resp.status != http.StatusUnauthorized || resp.errorKind(t) != KindUnauthorized {
					t.Fatalf("status %d %s", resp.status, resp.body)
				}
				if !strings.Contains(string(resp.body), tc.wantMsg) {
					t.Errorf("message %s lacks %q", resp.body, tc.wantMsg)
				}
				if h.rows() != before+1 {
					t.Fatal("failed attempt not audited")
				}
				row := h.lastRow()
				if row.Outcome != audit.OutcomeAuthFailed || row.RequesterWallet != audit.UnknownWallet || row.Detail == "" ||
					row.STSSessionName != unauthenticatedSession || (tc.wantHash != "" && row.RequesterTokenHash != tc.wantHash) {
					t.Fatalf("audit row = %+v", row)
				}
				if ep == PathMintJWT && row.RequestedRole != audit.RoleOIDCJWT {
					t.Errorf("requested_role = %s", row.RequestedRole)
				}
			})
		}
	}
	// The scheme is case-insensitive (RFC 9110).
	if r := h.do("POST", PathMintJWT, "", "", "Authorization", "bearer "+good); r.status != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %s", r.status, r.body)
	}
}

func TestRevokedSessionStopsMintingAtOnce(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	if r := h.mintJWT(tok); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	calls, epochs := h.backend.validateCalls(), h.backend.epochCallCount()
	if r := h.mintJWT(tok); r.status != http.StatusOK || h.backend.validateCalls() != calls {
		t.Fatalf("second mint at the same epoch: %d, backend validations %d -> %d", r.status, calls, h.backend.validateCalls())
	}
	if h.backend.epochCallCount() != epochs+1 {
		t.Fatalf("a cached mint made %d epoch calls, want 1", h.backend.epochCallCount()-epochs)
	}
	// No clock advance: the revocation moved the epoch, so the very next
	// mint re-validates and is refused.
	h.backend.revoke(tok)
	r := h.mintJWT(tok)
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "session revoked") {
		t.Fatalf("mint right after the revoke: %d %s", r.status, r.body)
	}
	// Another session's cached validation is dropped by the same epoch
	// move (it is re-validated, and still good).
	other, _ := h.backend.newSession("master", nil)
	if r := h.mintJWT(other); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	calls = h.backend.validateCalls()
	h.backend.set(func(b *fakeBackend) { b.epoch++ })
	if r := h.mintJWT(other); r.status != http.StatusOK || h.backend.validateCalls() != calls+1 {
		t.Fatalf("mint after an epoch move: %d, validations %d -> %d", r.status, calls, h.backend.validateCalls())
	}
}

func TestMintFailsClosedWhenTheEpochIsUnavailable(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	if r := h.mintJWT(tok); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	h.backend.set(func(b *fakeBackend) { b.epochStatus = http.StatusServiceUnavailable })
	r := h.mintJWT(tok)
	r.wantErrorf(t, http.StatusBadGateway, KindBackendUnreachable, "mint with the epoch unavailable")
	if row := h.lastRow(); row.Outcome != audit.OutcomeBackendError {
		t.Fatalf("audit row = %+v", row)
	}
}

func TestBackendWithoutEpochIsValidatedOnEveryMint(t *testing.T) {
	h := newHarness(t)
	h.backend.set(func(b *fakeBackend) { b.noEpoch = true })
	tok, _ := h.backend.newSession("master", nil)
	for i := range 3 {
		calls := h.backend.validateCalls()
		if r := h.mintJWT(tok); r.status != http.StatusOK || h.backend.validateCalls() != calls+1 {
			t.Fatalf("mint %d: %d, validations %d -> %d", i, r.status, calls, h.backend.validateCalls())
		}
	}
	h.backend.revoke(tok)
	if r := h.mintJWT(tok); r.status != http.StatusUnauthorized {
		t.Fatalf("mint right after the revoke: %d %s", r.status, r.body)
	}
}

// The epoch group never hands a caller the answer of a call that was
// already on the wire when the caller arrived, and callers that arrive
// together share one call.
func TestEpochGroupCoalescesOnlyLaterCalls(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	release := make(chan int64)
	started := make(chan struct{}, 16)
	g := newEpochGroup(func(ctx context.Context) (int64, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		started <- struct{}{}
		return <-release, nil
	}, time.Minute)
	first := make(chan int64, 1)
	go func() { e, _ := g.get(context.Background()); first <- e }()
	<-started // call 1 is on the wire
	const n = 20
	later := make(chan int64, n)
	for range n {
		go func() { e, _ := g.get(context.Background()); later <- e }()
	}
	// Wait until all n joined the queued call.
	for deadline := time.Now().Add(5 * time.Second); ; {
		g.mu.Lock()
		joined := g.queued != nil && g.queued.waiters == n
		g.mu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no queued call")
		}
		time.Sleep(time.Millisecond)
	}
	release <- 1 // answer of call 1: before any of the n arrived
	if e := <-first; e != 1 {
		t.Fatalf("first = %d", e)
	}
	<-started
	release <- 2
	for range n {
		if e := <-later; e != 2 {
			t.Fatalf("a later caller got epoch %d from a call that started before it", e)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("%d epoch calls for %d callers, want 2", calls, n+1)
	}
}

func TestSTSFailure(t *testing.T) {
	h := newHarness(t)
	h.sts.Set(func(f *ststest.Fake) {
		f.FailAssume = "simulated AccessDenied for arn:aws:iam::000000000000:role/agentkeys-data-role"
	})
	tok, wallet := h.backend.newSession("master", nil)
	r := h.mintAWS(tok)
	r.wantErrorf(t, http.StatusBadGateway, KindSTSError, "AWS mint with STS refusing")
	if strings.Contains(string(r.body), "simulated") || strings.Contains(string(r.body), "000000000000") {
		t.Fatalf("STS error text echoed to the client: %s", r.body)
	}
	// What STS answered (its error code) and what it means reach the client.
	if !strings.Contains(string(r.body), "AccessDenied") || !strings.Contains(string(r.body), "data role") {
		t.Fatalf("STS error code not passed on: %s", r.body)
	}
	row := h.lastRow()
	if row.Outcome != audit.OutcomeSTSError || row.RequesterWallet != string(wallet) || !strings.Contains(row.Detail, "simulated AccessDenied") ||
		!strings.HasPrefix(row.STSSessionName, "agentkeys-") || row.CredentialID != "" {
		t.Fatalf("audit row = %+v", row)
	}
}

func TestBackendFailures(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.BackendURL = "http://127.0.0.1:1" })
		tok := agentkeys.NewToken().Reveal()
		for _, ep := range []string{PathMintJWT, PathMintAWS} {
			r := h.do("POST", ep, tok, "")
			r.wantErrorf(t, http.StatusBadGateway, KindBackendUnreachable, "%s", ep)
			row := h.lastRow()
			if row.Outcome != audit.OutcomeBackendError || row.Detail == "" || row.RequesterWallet != audit.UnknownWallet {
				t.Fatalf("audit row = %+v", row)
			}
		}
	})
	t.Run("misbehaving", func(t *testing.T) {
		h := newHarness(t)
		tok, _ := h.backend.newSession("master", nil)
		for _, tc := range []struct {
			status int
			body   string
		}{
			{500, `{"error":"INTERNAL","message":"pq: password authentication failed for user secretuser"}`},
			{200, `{"wallet":"not-a-wallet"}`},
			{200, `not json`},
			{403, `forbidden`},
		} {
			h.backend.set(func(b *fakeBackend) { b.status, b.body = tc.status, tc.body })
			r := h.mintJWT(tok)
			r.wantErrorf(t, http.StatusBadGateway, KindBackendUnreachable, "backend %d %q: broker", tc.status, tc.body)
			if strings.Contains(string(r.body), "secretuser") || strings.Contains(string(r.body), "not-a-wallet") {
				t.Fatalf("upstream text echoed: %s", r.body)
			}
		}
		// A 401 with an unexpected message is not echoed either.
		h.backend.set(func(b *fakeBackend) { b.status, b.body = 401, `{"message":"token 1234 belongs to alice"}` })
		r := h.mintJWT(tok)
		if r.status != http.StatusUnauthorized || strings.Contains(string(r.body), "alice") {
			t.Fatalf("401 passthrough: %d %s", r.status, r.body)
		}
	})
}

func TestScopeEnforced(t *testing.T) {
	h := newHarness(t)
	narrow, _ := h.backend.newSession("agent", &agentkeys.Scope{Services: []string{"openrouter"}})
	wide, _ := h.backend.newSession("agent", &agentkeys.Scope{Services: []string{"aws"}, ReadOnly: true})
	master, _ := h.backend.newSession("master", nil)
	for _, ep := range []string{PathMintJWT, PathMintAWS} {
		r := h.do("POST", ep, narrow, "")
		r.wantErrorf(t, http.StatusForbidden, KindForbidden, "%s narrow scope", ep)
		if row := h.lastRow(); row.Outcome != audit.OutcomeScopeDenied || row.RequesterWallet == audit.UnknownWallet {
			t.Fatalf("audit row = %+v", row)
		}
		for _, tok := range []string{wide, master} {
			if r := h.do("POST", ep, tok, ""); r.status != http.StatusOK {
				t.Fatalf("%s allowed session: %d %s", ep, r.status, r.body)
			}
		}
	}
	if n := len(h.sts.Calls()); n != 2 {
		t.Fatalf("STS called %d times; a denied scope must not reach STS", n)
	}
}

func TestRequestBodies(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	ok := []struct{ body, ct string }{{"", ""}, {"{}", "application/json"}, {" { } ", ""}, {"", "application/x-www-form-urlencoded"}}
	for _, c := range ok {
		if r := h.do("POST", PathMintJWT, tok, c.body, "Content-Type", c.ct); r.status != http.StatusOK {
			t.Errorf("body %q (%s): %d %s", c.body, c.ct, r.status, r.body)
		}
	}
	bad := []struct {
		body, ct string
		status   int
	}{
		{`{"duration":60}`, "application/json", 400},
		{`[]`, "", 400},
		{`null`, "", 400},
		{`{} {}`, "", 400},
		{`{`, "", 400},
		{"{}", "text/plain", 415},
		{`{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, "", 413},
	}
	for _, c := range bad {
		before := h.rows()
		r := h.do("POST", PathMintAWS, tok, c.body, "Content-Type", c.ct)
		if r.status != c.status || r.errorKind(t) != KindBadRequest {
			t.Errorf("body %.40q: %d %s, want %d", c.body, r.status, r.body, c.status)
			continue
		}
		if h.rows() != before+1 || h.lastRow().Outcome != audit.OutcomeBadRequest {
			t.Errorf("body %.40q: not audited as bad_request", c.body)
		}
	}
	if n := len(h.sts.Calls()); n != 0 {
		t.Fatalf("a rejected body reached STS (%d calls)", n)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("per bearer", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.RatePerBearer, c.BurstPerBearer = 0.001, 2 })
		a, _ := h.backend.newSession("master", nil)
		b, _ := h.backend.newSession("master", nil)
		for i := range 2 {
			if r := h.mintJWT(a); r.status != http.StatusOK {
				t.Fatalf("mint %d: %d", i, r.status)
			}
		}
		r := h.mintJWT(a)
		r.wantErrorf(t, http.StatusTooManyRequests, KindRateLimited, "third mint")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
		if r := h.mintAWS(a); r.status != http.StatusTooManyRequests {
			t.Fatalf("limit is per bearer across endpoints: %d", r.status)
		}
		if r := h.mintJWT(b); r.status != http.StatusOK {
			t.Fatalf("another bearer is not limited: %d", r.status)
		}
	})
	t.Run("per IP", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.RatePerIP, c.BurstPerIP = 0.001, 3 })
		for range 3 {
			tok, _ := h.backend.newSession("master", nil)
			if r := h.mintJWT(tok); r.status != http.StatusOK {
				t.Fatal(r.status)
			}
		}
		before := h.backend.validateCalls()
		tok, _ := h.backend.newSession("master", nil)
		r := h.mintJWT(tok)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("fourth mint from one IP: %d %s", r.status, r.body)
		}
		if h.backend.validateCalls() != before {
			t.Fatal("a rate-limited request still reached the backend")
		}
		if r := h.do("GET", "/.well-known/jwks.json", "", ""); r.status != http.StatusOK {
			t.Fatal("JWKS must not be rate limited")
		}
	})
}

func TestProbes(t *testing.T) {
	t.Run("healthz needs no backend", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.BackendURL = "http://127.0.0.1:1" })
		r := h.do("GET", PathHealthz, "", "")
		if r.status != 200 || string(r.body) != "ok" {
			t.Fatalf("%d %q", r.status, r.body)
		}
	})
	t.Run("ready", func(t *testing.T) {
		h := newHarness(t)
		r := h.do("GET", PathReadyz, "", "")
		m := r.json(t)
		if r.status != 200 || m["status"] != "ready" || m["sts_ok"] != true || m["backend_ok"] != true || m["audit_ok"] != true {
			t.Fatalf("%d %s", r.status, r.body)
		}
		calls := h.sts.IdentityCalls()
		h.do("GET", PathReadyz, "", "")
		if h.sts.IdentityCalls() != calls {
			t.Fatal("every readiness probe costs an STS call")
		}
	})
	t.Run("STS failing", func(t *testing.T) {
		h := newHarness(t)
		h.sts.Set(func(f *ststest.Fake) { f.FailIdentity = "expired token" })
		r := h.do("GET", PathReadyz, "", "")
		m := r.json(t)
		if r.status != 503 || m["sts_ok"] != false || m["backend_ok"] != true || m["status"] != "not_ready" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if hint, _ := m["hint"].(string); !strings.Contains(hint, "only AWS STS") || strings.Contains(hint, "expired token") {
			t.Fatalf("no hint that only STS is missing (or the upstream error leaks): %s", r.body)
		}
	})
	t.Run("backend dead", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.BackendURL = "http://127.0.0.1:1" })
		r := h.do("GET", PathReadyz, "", "")
		if m := r.json(t); m["hint"] != nil {
			t.Fatalf("STS hint while the backend is down: %s", r.body)
		}
		if m := r.json(t); r.status != 503 || m["backend_ok"] != false {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("audit failing", func(t *testing.T) {
		h := newHarness(t, withSink(&failingSink{err: errors.New("disk full")}))
		r := h.do("GET", PathReadyz, "", "")
		if m := r.json(t); r.status != 503 || m["audit_ok"] != false || !strings.Contains(string(r.body), `"audit"`) {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("AWS not configured", func(t *testing.T) {
		h := newHarness(t, func(h *harness, c *Config) { c.DataRoleARN = "" })
		r := h.do("GET", PathReadyz, "", "")
		if m := r.json(t); r.status != 200 || m["sts_ok"] != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		tok, _ := h.backend.newSession("master", nil)
		h.mintAWS(tok).wantErrorf(t, 404, KindNotFound, "mint-aws-creds without a role")
	})
}

func TestRoutingErrorsUseTheEnvelope(t *testing.T) {
	h := newHarness(t)
	h.do("GET", "/v1/nope", "", "").wantErrorf(t, 404, KindNotFound, "GET /v1/nope")
	h.do("GET", PathMintJWT, "", "").wantErrorf(t, 405, KindMethodNotAllowed, "GET %s", PathMintJWT)
}

func TestDiscoveryThroughBroker(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/.well-known/openid-configuration", "", "")
	m := r.json(t)
	if m["issuer"] != h.cfg.Issuer || m["jwks_uri"] != h.cfg.Issuer+"/.well-known/jwks.json" {
		t.Fatalf("%s", r.body)
	}
	r = h.do("GET", "/.well-known/jwks.json", "", "")
	if !strings.Contains(r.header.Get("Cache-Control"), "max-age=") || r.status != 200 {
		t.Fatalf("JWKS: %d %v", r.status, r.header)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	h.mintJWT(tok)
	h.mintJWT(agentkeys.NewToken().Reveal())
	r := h.do("GET", PathMetrics, "", "")
	body := string(r.body)
	for _, want := range []string{
		`agentkeys_broker_mints_total{endpoint="oidc_jwt",outcome="ok"} 1`,
		`agentkeys_broker_mints_total{endpoint="oidc_jwt",outcome="auth_failed"} 1`,
		`agentkeys_broker_mint_duration_seconds_bucket{endpoint="oidc_jwt"`,
		`agentkeys_broker_audit_append_duration_seconds_count 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestNoSecretsInLogsOrResponses drives every outcome and then searches
// the captured logs and all error bodies for any secret.
func TestNoSecretsInLogsOrResponses(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	unknown := agentkeys.NewToken().Reveal()
	var errorBodies []string
	okAWS := h.mintAWS(tok)
	okJWT := h.mintJWT(tok)
	if okAWS.status != 200 || okJWT.status != 200 {
		t.Fatal("setup mints failed")
	}
	for _, r := range []response{
		h.mintJWT(unknown), h.mintAWS(unknown),
		h.do("POST", PathMintJWT, "", "", "Authorization", "Bearer "+tok+"x"),
		h.do("POST", PathMintJWT, tok, `{"secret":"`+tok+`"}`),
	} {
		errorBodies = append(errorBodies, string(r.body))
	}
	h.sts.Set(func(f *ststest.Fake) { f.FailAssume = "denied" })
	errorBodies = append(errorBodies, string(h.mintAWS(tok).body))
	h.backend.set(func(b *fakeBackend) { b.status, b.body = 500, "oops" })
	errorBodies = append(errorBodies, string(h.mintJWT(tok).body))

	var creds api.MintAWSResponse
	json.Unmarshal(okAWS.body, &creds)
	var jwt api.MintJWTResponse
	json.Unmarshal(okJWT.body, &jwt)
	keyFile, _ := os.ReadFile(h.keyFile)
	var ks struct {
		Keys []struct {
			PEM string `json:"private_key_pem"`
		} `json:"keys"`
	}
	json.Unmarshal(keyFile, &ks)
	secrets := map[string]string{
		"bearer": tok, "unknown bearer": unknown, "AWS secret": creds.SecretAccessKey, "AWS session token": creds.SessionToken,
		"broker static secret": h.cfg.SecretAccessKey, "minted JWT": jwt.JWT,
	}
	for i, k := range ks.Keys {
		lines := strings.Split(strings.TrimSpace(k.PEM), "\n")
		secrets[fmt.Sprintf("private key %d", i)] = lines[1] // a line of the key's base64 body
	}
	logs := h.logs.String()
	if len(logs) < 100 {
		t.Fatal("no logs captured")
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty: setup broken", name)
		}
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", name)
		}
		for _, b := range errorBodies {
			if strings.Contains(b, s) {
				t.Errorf("%s appears in an error response: %s", name, b)
			}
		}
	}
	// The ledger holds only the bearer's hash.
	rows, err := h.ledger.DB().Query("SELECT requester_token_hash, COALESCE(outcome_detail,'') FROM mint_log")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var hash, detail string
		rows.Scan(&hash, &detail)
		if strings.Contains(hash+detail, tok) || strings.Contains(hash+detail, unknown) || strings.Contains(detail, creds.SecretAccessKey) {
			t.Fatalf("ledger holds a secret: %s %s", hash, detail)
		}
	}
}

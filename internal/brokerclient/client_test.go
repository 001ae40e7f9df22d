package brokerclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// fakeDeriver derives a fixed broker token from any session.
type fakeDeriver struct {
	mu    sync.Mutex
	token agentkeys.Token
	calls int
	err   error
}

func (f *fakeDeriver) BrokerToken(_ context.Context, _ agentkeys.Token, _ time.Duration) (agentkeys.Token, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.token, time.Now().Add(5 * time.Minute), f.err
}

func (f *fakeDeriver) Calls() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func TestMintAndErrors(t *testing.T) {
	tok := agentkeys.NewToken()
	d := &fakeDeriver{token: tok}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+tok.Reveal() {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"unauthorized","message":"unauthorized: session not found"}`))
			return
		}
		switch r.URL.Path {
		case "/v1/mint-aws-creds":
			w.Write([]byte(`{"access_key_id":"ASIAFAKE","secret_access_key":"sekret-value","session_token":"sess-token","expiration":1900000000,"wallet":"0xabc"}`))
		case "/v1/mint-oidc-jwt":
			w.Write([]byte(`{"jwt":"a.b.c","wallet":"0xabc","expiration":"2030-01-01T00:00:00Z"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", nil, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	session := agentkeys.NewToken()
	aws, err := c.MintAWS(ctx, session)
	if err != nil || aws.AccessKeyID != "ASIAFAKE" || aws.Expiration.Unix() != 1900000000 {
		t.Fatalf("MintAWS = %+v, %v", aws, err)
	}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "creds", aws)
	for _, s := range []string{fmt.Sprint(aws), fmt.Sprintf("%+v", aws), logs.String()} {
		if strings.Contains(s, "sekret-value") || strings.Contains(s, "sess-token") {
			t.Fatalf("credentials printed their secrets: %s", s)
		}
	}
	env := strings.Join(aws.Env("eu-west-1"), " ")
	if !strings.Contains(env, "AWS_SECRET_ACCESS_KEY=sekret-value") || !strings.Contains(env, "AWS_DEFAULT_REGION=eu-west-1") {
		t.Fatalf("Env = %s", env)
	}
	jwt, err := c.MintOIDC(ctx, session)
	if err != nil || jwt.JWT != "a.b.c" || jwt.Expiration.Year() != 2030 {
		t.Fatalf("MintOIDC = %+v, %v", jwt, err)
	}
	other := agentkeys.NewToken()
	d.mu.Lock()
	d.token = other
	d.mu.Unlock()
	_, err = c.MintOIDC(ctx, agentkeys.NewToken())
	var be *Error
	if !errors.As(err, &be) || be.Status != 401 || be.Kind != "unauthorized" || strings.Contains(err.Error(), other.Reveal()) {
		t.Fatalf("401: %v", err)
	}
	down, _ := New("http://127.0.0.1:1", nil, d)
	_, err = down.MintAWS(ctx, session)
	var te *jsonhttp.TransportError
	if !errors.As(err, &te) || strings.Contains(err.Error(), "127.0.0.1:1/v1") {
		t.Fatalf("unreachable: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:8091", "http://user:pw@host"} {
		if _, err := New(bad, nil, d); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// TestBrokerSeesOnlyDerivedTokens: the session never reaches the broker;
// the derived token is reused while fresh, replaced once when the broker
// refuses a cached one, and an old backend (404) is an error, not a reason
// to send the session.
func TestBrokerSeesOnlyDerivedTokens(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	accept := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		h := r.Header.Get("Authorization")
		seen = append(seen, h)
		if !accept[h] {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"unauthorized","message":"unauthorized: session expired"}`))
			return
		}
		w.Write([]byte(`{"jwt":"a.b.c","wallet":"0xabc","expiration":1900000000}`))
	}))
	defer srv.Close()
	first := agentkeys.NewToken()
	accept["Bearer "+first.Reveal()] = true
	d := &fakeDeriver{token: first}
	c, err := New(srv.URL, nil, d)
	if err != nil {
		t.Fatal(err)
	}
	session := agentkeys.NewToken()
	ctx := context.Background()
	for range 3 {
		if _, err := c.MintOIDC(ctx, session); err != nil {
			t.Fatal(err)
		}
	}
	if d.Calls() != 1 {
		t.Errorf("derived %d times for 3 mints, want 1 (cached)", d.Calls())
	}
	// The broker stops accepting the cached token: one fresh derivation.
	second := agentkeys.NewToken()
	mu.Lock()
	accept = map[string]bool{"Bearer " + second.Reveal(): true}
	mu.Unlock()
	d.mu.Lock()
	d.token = second
	d.mu.Unlock()
	if _, err := c.MintOIDC(ctx, session); err != nil {
		t.Fatalf("after the cached token was refused: %v", err)
	}
	if d.Calls() != 2 {
		t.Errorf("derivations = %d, want 2", d.Calls())
	}
	// A backend without broker tokens: refused before the broker is called.
	old, _ := New(srv.URL, nil, &fakeDeriver{err: &backendclient.Error{Status: 404, Kind: "NOT_FOUND", Message: "no route"}})
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	_, err = old.MintAWS(ctx, session)
	var de *DeriveError
	if !errors.As(err, &de) || !errors.Is(err, ErrNoBrokerTokens) {
		t.Fatalf("old backend: %v, want ErrNoBrokerTokens", err)
	}
	// A revoked session: the backend's 401 comes through.
	_, err = (mustNew(t, srv.URL, &fakeDeriver{err: &backendclient.Error{Status: 401, Kind: "UNAUTHORIZED", Message: "session revoked"}})).MintAWS(ctx, session)
	if !errors.Is(err, backendclient.ErrUnauthorized) {
		t.Fatalf("revoked session: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("the broker was called although no token could be derived")
	}
	for _, h := range seen {
		if strings.Contains(h, session.Reveal()) {
			t.Fatal("the broker received the session")
		}
	}
	if _, err := New(srv.URL, nil, nil); err == nil {
		t.Error("New without a Deriver accepted")
	}
}

func mustNew(t *testing.T, u string, d Deriver) *Client {
	t.Helper()
	c, err := New(u, nil, d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

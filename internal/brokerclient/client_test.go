package brokerclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

func TestMintAndErrors(t *testing.T) {
	tok := agentkeys.NewToken()
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
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	aws, err := c.MintAWS(ctx, tok)
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
	jwt, err := c.MintOIDC(ctx, tok)
	if err != nil || jwt.JWT != "a.b.c" || jwt.Expiration.Year() != 2030 {
		t.Fatalf("MintOIDC = %+v, %v", jwt, err)
	}
	other := agentkeys.NewToken()
	_, err = c.MintOIDC(ctx, other)
	var be *Error
	if !errors.As(err, &be) || be.Status != 401 || be.Kind != "unauthorized" || strings.Contains(err.Error(), other.Reveal()) {
		t.Fatalf("401: %v", err)
	}
	down, _ := New("http://127.0.0.1:1", nil)
	_, err = down.MintAWS(ctx, tok)
	var te *TransportError
	if !errors.As(err, &te) || strings.Contains(err.Error(), "127.0.0.1:1/v1") {
		t.Fatalf("unreachable: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:8091", "http://user:pw@host"} {
		if _, err := New(bad, nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

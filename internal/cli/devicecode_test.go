package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
)

// deviceIdP is an OpenID provider offering the device grant. The user
// "approves" on the second poll; deny makes it refuse instead.
type deviceIdP struct {
	srv   *httptest.Server
	polls atomic.Int32
	deny  bool
}

func newDeviceIdP(t *testing.T, clientID, subject string, deny bool) *deviceIdP {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "d1"}}, nil)
	idp := &deviceIdP{deny: deny}
	mux := http.NewServeMux()
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	js := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		u := idp.srv.URL
		js(w, 200, map[string]any{"issuer": u, "jwks_uri": u + "/jwks", "authorization_endpoint": u + "/auth",
			"device_authorization_endpoint": u + "/device", "token_endpoint": u + "/token", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		js(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "d1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("client_id") != clientID {
			js(w, 400, map[string]string{"error": "invalid_client"})
			return
		}
		js(w, 200, map[string]any{"device_code": "dev-123", "user_code": "WDJB-MJHT", "verification_uri": idp.srv.URL + "/activate", "expires_in": 60, "interval": 0})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("device_code") != "dev-123" || r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
			js(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		if idp.polls.Add(1) < 2 {
			js(w, 400, map[string]string{"error": "authorization_pending"})
			return
		}
		if idp.deny {
			js(w, 400, map[string]string{"error": "access_denied"})
			return
		}
		tok, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: idp.srv.URL, Subject: subject, Audience: jwt.Audience{clientID},
			IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		js(w, 200, map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": tok})
	})
	return idp
}

func TestInitWithDeviceFlow(t *testing.T) {
	t.Parallel()
	idp := newDeviceIdP(t, "agentkeys-cli", "alice-sub", false)
	r := backendtest.Start(t, backend.Config{LoginOIDCIssuer: idp.srv.URL, LoginOIDCClientID: "agentkeys-cli"})
	w := worldOn(t, r.URL())

	// The mock identity no longer works against this backend.
	expectCode(t, w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN=alice"), "init"), 1, "mock identity against an OIDC backend")

	res := w.exec(nil, w.env(), "init", "--oidc-issuer", idp.srv.URL, "--oidc-client-id", "agentkeys-cli")
	if res.code != 0 || !strings.Contains(res.stderr, "WDJB-MJHT") || !strings.Contains(res.stdout, "Initialized. Wallet: 0x") {
		t.Fatalf("device-flow init: %s", res)
	}
	w.must("whoami")

	denied := newDeviceIdP(t, "agentkeys-cli", "bob", true)
	res = w.exec(nil, w.env(EnvLoginIssuer+"="+denied.srv.URL, EnvLoginClientID+"=agentkeys-cli"), "--profile", "bob", "init")
	if res.code != 1 || !strings.Contains(res.stderr, "denied") {
		t.Fatalf("denied device flow: %s", res)
	}
	expectCode(t, w.ak("init", "--oidc-issuer", idp.srv.URL), 2, "issuer without client id")
	expectCode(t, w.ak("init", "--oidc-issuer", "not a url", "--oidc-client-id", "x"), 2, "bad issuer")
}

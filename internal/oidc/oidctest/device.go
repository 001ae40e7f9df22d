// Package oidctest is an OpenID provider for tests of the device login:
// discovery, a JWKS and the device authorization grant (RFC 8628) with
// ES256 ID tokens, served by whatever server the test starts. Only test
// code imports it.
package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// UserCode is the code the provider asks the user to enter.
const UserCode = "WDJB-MJHT"

const deviceCode = "dev-123"

// DeviceProvider issues ID tokens for one client and one subject. The
// user "approves" on the second poll of each login; with Deny set the
// user refuses instead.
type DeviceProvider struct {
	ClientID, Subject string
	Deny              bool

	key    *ecdsa.PrivateKey
	signer jose.Signer
	polls  atomic.Int32
}

// NewDeviceProvider makes a provider with a fresh signing key.
func NewDeviceProvider(t testing.TB, clientID, subject string) *DeviceProvider {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "idp1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &DeviceProvider{ClientID: clientID, Subject: subject, key: key, signer: signer}
}

// Handler serves the provider as the issuer at URL u (the server's own).
func (p *DeviceProvider) Handler(u string) http.Handler {
	js := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		js(w, 200, map[string]any{"issuer": u, "jwks_uri": u + "/jwks", "authorization_endpoint": u + "/auth",
			"device_authorization_endpoint": u + "/device", "token_endpoint": u + "/token", "id_token_signing_alg_values_supported": []string{"ES256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		js(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "idp1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /device", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("client_id") != p.ClientID {
			js(w, 400, map[string]string{"error": "invalid_client"})
			return
		}
		js(w, 200, map[string]any{"device_code": deviceCode, "user_code": UserCode, "verification_uri": u + "/activate", "expires_in": 60, "interval": 0})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("device_code") != deviceCode || r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
			js(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		if p.polls.Add(1)%2 == 1 {
			js(w, 400, map[string]string{"error": "authorization_pending"})
			return
		}
		if p.Deny {
			js(w, 400, map[string]string{"error": "access_denied"})
			return
		}
		tok, err := jwt.Signed(p.signer).Claims(jwt.Claims{Issuer: u, Subject: p.Subject, Audience: jwt.Audience{p.ClientID},
			IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		if err != nil {
			js(w, 500, map[string]string{"error": "server_error"})
			return
		}
		js(w, 200, map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": tok})
	})
	return mux
}

package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fakeIdP is a minimal OpenID provider: discovery, JWKS, and a signer.
type fakeIdP struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idp := &fakeIdP{key: key, signer: signer}
	mux := http.NewServeMux()
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": idp.srv.URL, "jwks_uri": idp.srv.URL + "/jwks", "authorization_endpoint": idp.srv.URL + "/auth",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	return idp
}

func (idp *fakeIdP) token(t *testing.T, sub, aud string, exp time.Time) string {
	t.Helper()
	s, err := jwt.Signed(idp.signer).Claims(jwt.Claims{
		Issuer: idp.srv.URL, Subject: sub, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(exp),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDCLogin(t *testing.T) {
	idp := newFakeIdP(t)
	login, err := NewOIDCLogin(context.Background(), idp.srv.URL, "agentkeys-cli")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Login = login })
	hour := time.Now().Add(time.Hour)

	a1, err := e.client.CreateSession(ctx, idp.token(t, "alice", "agentkeys-cli", hour))
	if err != nil {
		t.Fatalf("valid ID token refused: %v", err)
	}
	a2, err := e.client.CreateSession(ctx, idp.token(t, "alice", "agentkeys-cli", hour))
	if err != nil || a2.Wallet != a1.Wallet {
		t.Fatalf("same subject reached another wallet: %v", err)
	}
	b, _ := e.client.CreateSession(ctx, idp.token(t, "bob", "agentkeys-cli", hour))
	if b.Wallet == a1.Wallet {
		t.Fatal("two subjects share a wallet")
	}

	other := newFakeIdP(t)
	forged, _ := jwt.Signed(other.signer).Claims(jwt.Claims{Issuer: idp.srv.URL, Subject: "alice", Audience: jwt.Audience{"agentkeys-cli"}, Expiry: jwt.NewNumericDate(hour)}).Serialize()
	for name, tok := range map[string]string{
		"mock string":    "alice",
		"wrong audience": idp.token(t, "alice", "someone-else", hour),
		"expired":        idp.token(t, "alice", "agentkeys-cli", time.Now().Add(-time.Hour)),
		"foreign signer": forged,
		"other issuer":   other.token(t, "alice", "agentkeys-cli", hour),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.client.CreateSession(ctx, tok)
			wantStatus(t, err, 401)
		})
	}
}

func TestOIDCLoginNeedsReachableProviderAndClientID(t *testing.T) {
	if _, err := NewOIDCLogin(context.Background(), "http://127.0.0.1:1", "x"); err == nil {
		t.Fatal("unreachable provider accepted")
	}
	idp := newFakeIdP(t)
	if _, err := NewOIDCLogin(context.Background(), idp.srv.URL, ""); err == nil {
		t.Fatal("missing client id accepted")
	}
}

package oidctest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Claims is the payload of an ID token the broker mints, as a relying
// party (AWS STS) reads it. It is spelled out here, apart from the
// issuer's own type, so that a renamed claim fails the tests.
type Claims struct {
	Iss    string `json:"iss"`
	Sub    string `json:"sub"`
	Aud    string `json:"aud"`
	Iat    int64  `json:"iat"`
	Nbf    int64  `json:"nbf"`
	Exp    int64  `json:"exp"`
	Jti    string `json:"jti"`
	Wallet string `json:"agentkeys_user_wallet"`
	Access string `json:"agentkeys_access"`
	Tags   struct {
		PrincipalTags     map[string][]string `json:"principal_tags"`
		TransitiveTagKeys []string            `json:"transitive_tag_keys"`
	} `json:"https://aws.amazon.com/tags"`
}

// DecodeClaims decodes the payload of the compact JWS raw without checking
// its signature (for tests where only the claims matter).
func DecodeClaims(t testing.TB, raw string) Claims {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return c
}

// FetchJWKS gets the key set at url, as a relying party does.
func FetchJWKS(t testing.TB, url string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

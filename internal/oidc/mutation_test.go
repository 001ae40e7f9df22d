package oidc_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/oidc"
)

// TestIssuerTTLRange: the token lifetime must be in (0, MaxTokenTTL]; a
// zero lifetime would mint tokens that are already expired.
func TestIssuerTTLRange(t *testing.T) {
	c := newClock()
	for _, tc := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{-time.Second, false},
		{0, false},
		{time.Nanosecond, true},
		{oidc.MaxTokenTTL, true},
		{oidc.MaxTokenTTL + time.Nanosecond, false},
	} {
		keyFile := filepath.Join(t.TempDir(), "oidc-keys.json")
		iss, err := oidc.NewIssuer(oidc.Config{Issuer: "https://oidc.test.invalid", TTL: tc.ttl, KeyFile: keyFile, Now: c.Now})
		if !tc.ok {
			if err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("TTL %v: err = %v, want out of range", tc.ttl, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("TTL %v refused: %v", tc.ttl, err)
			continue
		}
		if iss.TTL() != tc.ttl {
			t.Errorf("TTL() = %v, want %v", iss.TTL(), tc.ttl)
		}
	}
}

// rotatedTwice returns a key file holding a current, a next and two
// retired keys (retired a minute apart).
func rotatedTwice(t *testing.T) (string, time.Time) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	path := filepath.Join(t.TempDir(), "oidc-keys.json")
	if _, _, err := oidc.LoadOrCreate(path, now); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := oidc.Rotate(path, now.Add(time.Duration(i)*time.Minute), oidc.DefaultPolicy, true); err != nil {
			t.Fatal(err)
		}
	}
	return path, now
}

// TestKeyOrder: the key file, Keys() and the JWKS list the current key
// first, then the next key, then retired keys newest retirement first,
// whatever order the file was written in.
func TestKeyOrder(t *testing.T) {
	path, now := rotatedTwice(t)
	// Scramble the order in the file: loading sorts it again.
	var doc struct {
		Version int               `json:"version"`
		Keys    []json.RawMessage `json:"keys"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 4 {
		t.Fatalf("%d keys after two rotations, want 4", len(doc.Keys))
	}
	slices.Reverse(doc.Keys)
	scrambled, _ := json.Marshal(doc)
	if err := os.WriteFile(path, scrambled, 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := oidc.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Keys()
	var states []string
	for _, k := range keys {
		states = append(states, string(k.State))
	}
	if got := strings.Join(states, ","); got != "current,next,retired,retired" {
		t.Fatalf("key order %s", got)
	}
	if !keys[2].RetiredAt.After(keys[3].RetiredAt) {
		t.Fatalf("retired keys not newest first: %v then %v", keys[2].RetiredAt, keys[3].RetiredAt)
	}
	jwks := set.JWKS(now.Add(3*time.Minute), oidc.DefaultPolicy)
	if len(jwks.Keys) != 4 {
		t.Fatalf("JWKS has %d keys, want 4", len(jwks.Keys))
	}
	for i, k := range jwks.Keys {
		if k.KeyID != keys[i].KID {
			t.Fatalf("JWKS key %d is %s, want %s", i, k.KeyID, keys[i].KID)
		}
	}
}

// TestKeyFileWithTwoNextKeysRefused: a key file may publish at most one
// next key; one with two is refused rather than guessed at.
func TestKeyFileWithTwoNextKeysRefused(t *testing.T) {
	path, _ := rotatedTwice(t)
	var doc struct {
		Version int              `json:"version"`
		Keys    []map[string]any `json:"keys"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range doc.Keys {
		if k["state"] == "retired" {
			k["state"] = "next"
			delete(k, "retired_at")
			break
		}
	}
	edited, _ := json.Marshal(doc)
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := oidc.Load(path); err == nil || !strings.Contains(err.Error(), "at most one next key") {
		t.Fatalf("key file with two next keys: err = %v", err)
	}
}

// TestFreshKeySetActivation: a new key file's current key is active from
// its creation; its next key is not active yet.
func TestFreshKeySetActivation(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	path := filepath.Join(t.TempDir(), "oidc-keys.json")
	if _, _, err := oidc.LoadOrCreate(path, now); err != nil {
		t.Fatal(err)
	}
	set, err := oidc.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cur, ok := set.Current()
	if !ok || !cur.ActivatedAt.Equal(now) || !cur.CreatedAt.Equal(now) {
		t.Fatalf("current key: ok=%v created %v activated %v, want both %v", ok, cur.CreatedAt, cur.ActivatedAt, now)
	}
	next, ok := set.Next()
	if !ok || !next.ActivatedAt.IsZero() {
		t.Fatalf("next key: ok=%v activated %v, want not activated", ok, next.ActivatedAt)
	}
}

package oidc_test

import (
	"path/filepath"
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

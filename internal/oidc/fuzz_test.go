package oidc

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseKeySet feeds arbitrary key files to the parser: it must never
// panic, and its errors must never quote key material.
func FuzzParseKeySet(f *testing.F) {
	s, err := NewKeySet(time.Unix(1_800_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	good, err := s.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"kid":"v1-1","private_key_pem":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`))
	f.Add([]byte(`{"version":1,"keys":[]}`))
	f.Add([]byte(`{"version":2,"keys":[{"kid":"a","state":"current"}]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseKeySet(data)
		if err != nil {
			if strings.Contains(err.Error(), "-----BEGIN") || strings.Contains(err.Error(), "AAAA") {
				t.Fatalf("error quotes key material: %v", err)
			}
			return
		}
		if _, ok := set.Current(); !ok {
			t.Fatal("parsed key set has no current key")
		}
		if _, err := set.marshal(); err != nil {
			t.Fatalf("parsed key set does not re-encode: %v", err)
		}
	})
}

package seal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmptyValueRoundTrips: the shortest sealed value (an empty
// plaintext) opens.
func TestEmptyValueRoundTrips(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal(nil, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(sealed, []byte("aad")); err != nil || len(got) != 0 {
		t.Fatalf("empty value: %q %v", got, err)
	}
}

// TestEveryTruncationRefused: each prefix of a sealed value is refused
// with ErrOpen (no panic on a short header).
func TestEveryTruncationRefused(t *testing.T) {
	s := newSealer(t)
	sealed, err := s.Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sealed) {
		if _, err := s.Open(sealed[:n], nil); !errors.Is(err, ErrOpen) {
			t.Fatalf("%d of %d bytes: %v", n, len(sealed), err)
		}
	}
}

// TestKeyFileOfWrongLengthSaysWhatIsExpected: the error names the length
// a key file must have.
func TestKeyFileOfWrongLengthSaysWhatIsExpected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", KeySize-1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), "must hold 64 hex characters") {
		t.Fatalf("short key file: %v", err)
	}
}

package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	s, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTripAndCiphertextHidesPlaintext(t *testing.T) {
	s := newSealer(t)
	secret := []byte(rand.Text())
	aad := AAD("0xabc", "openrouter")
	sealed, err := s.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(sealed, aad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v; want the sealed secret", got, err)
	}
	again, _ := s.Seal(secret, aad)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are identical; nonces/data keys are not fresh")
	}
}

func TestOpenRejectsTamperingAndRebinding(t *testing.T) {
	s := newSealer(t)
	aad := AAD("0xabc", "openrouter")
	sealed, _ := s.Seal([]byte("value"), aad)

	if _, err := s.Open(sealed, AAD("0xabc", "openai")); !errors.Is(err, ErrOpen) {
		t.Fatalf("value moved to another service opened: %v", err)
	}
	if _, err := s.Open(sealed, AAD("0xab", "copenrouter")); !errors.Is(err, ErrOpen) {
		t.Fatalf("ambiguous AAD split opened: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := s.Open(bad, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	if _, err := s.Open(sealed[:headerSize], aad); !errors.Is(err, ErrOpen) {
		t.Fatal("truncated value opened")
	}
	other := newSealer(t)
	if _, err := other.Open(sealed, aad); !errors.Is(err, ErrOpen) {
		t.Fatal("value opened under another key")
	}
}

func TestKeyFileCreatedPrivateAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "seal.key")
	s1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WantPerm(t, path, 0o600)
	testkit.WantPerm(t, filepath.Dir(path), 0o700)
	sealed, _ := s1.Seal([]byte("v"), nil)
	s2, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s1.KeyID() != s2.KeyID() {
		t.Fatal("reloading the key file produced another key")
	}
	if _, err := s2.Open(sealed, nil); err != nil {
		t.Fatalf("value sealed before restart cannot be opened after: %v", err)
	}
}

func TestKeyFileRefusedWhenReadableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	if _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("world-readable key file accepted")
	}
}

func TestKeyFileRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(path, []byte("not hex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("malformed key file accepted")
	}
}

func FuzzOpen(f *testing.F) {
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Seal([]byte("seed"), []byte("aad"))
	f.Add(good)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, headerSize+tagSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := s.Open(b, []byte("aad"))
		if err == nil && !bytes.Equal(b, good) && !bytes.Equal(pt, []byte("seed")) {
			t.Fatalf("forged value opened to %q", pt)
		}
	})
}

func TestDeriveKeyIsStablePerKEKAndInfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	a, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKeyFile(path) // a second replica with the same key file
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := a.DeriveKey("purpose one", 32)
	k2, _ := b.DeriveKey("purpose one", 32)
	k3, _ := a.DeriveKey("purpose two", 32)
	other, _ := newSealer(t).DeriveKey("purpose one", 32)
	if len(k1) != 32 || !bytes.Equal(k1, k2) {
		t.Fatal("two sealers with one KEK derive different keys")
	}
	if bytes.Equal(k1, k3) || bytes.Equal(k1, other) {
		t.Fatal("derived keys do not depend on info and KEK")
	}
	raw, _ := os.ReadFile(path)
	if string(bytes.TrimSpace(raw)) == hex.EncodeToString(k1) {
		t.Fatal("derived key is the KEK")
	}
}

// Package seal encrypts credentials at rest with AES-256-GCM envelope
// encryption: every value gets its own random data key, which is wrapped by
// the operator's key-encryption key (KEK). The wallet and service are bound
// in as additional data, so a sealed value copied to another row fails to
// open. The KEK lives in a 0600 file created on first start, or one the
// operator provides.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the KEK and data-key size in bytes (AES-256).
const KeySize = 32

const (
	version   = 1
	kidSize   = 8
	nonceSize = 12
	tagSize   = 16
	// header: version | kid | wrapped DEK (nonce + key + tag) | nonce
	headerSize = 1 + kidSize + nonceSize + KeySize + tagSize + nonceSize
)

// ErrOpen is returned when a sealed value cannot be opened: wrong key,
// tampered bytes, or a value sealed for another wallet or service.
var ErrOpen = errors.New("seal: value cannot be opened (wrong key, tampered, or bound to another record)")

// Sealer seals and opens values under one KEK.
type Sealer struct {
	kid [kidSize]byte
	kek cipher.AEAD
	prk []byte // HKDF-SHA256 extract of the KEK, for DeriveKey
}

// New returns a Sealer for a 32-byte KEK.
func New(kek []byte) (*Sealer, error) {
	if len(kek) != KeySize {
		return nil, fmt.Errorf("seal: key must be %d bytes, got %d", KeySize, len(kek))
	}
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, kek, []byte("agentkeys-seal-derive-v1"))
	if err != nil {
		return nil, err
	}
	s := &Sealer{kek: aead, prk: prk}
	sum := sha256.Sum256(append([]byte("agentkeys-seal-kid\x00"), kek...))
	copy(s.kid[:], sum[:kidSize])
	return s, nil
}

// KeyID identifies the KEK (a hash prefix, safe to log).
func (s *Sealer) KeyID() string { return hex.EncodeToString(s.kid[:]) }

// DeriveKey returns n bytes of key material derived from the KEK with
// HKDF-SHA256 under info. Every holder of the same KEK derives the same
// bytes; distinct info strings give independent keys, and none reveals the
// KEK.
func (s *Sealer) DeriveKey(info string, n int) ([]byte, error) {
	return hkdf.Expand(sha256.New, s.prk, info, n)
}

// Seal encrypts plaintext, binding it to aad.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	defer clear(dek)
	data, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, headerSize+len(plaintext)+tagSize)
	out = append(out, version)
	out = append(out, s.kid[:]...)
	hdr := out[:1+kidSize]

	wrapNonce := randomNonce()
	out = append(out, wrapNonce...)
	out = s.kek.Seal(out, wrapNonce, dek, hdr)

	nonce := randomNonce()
	out = append(out, nonce...)
	return data.Seal(out, nonce, plaintext, bindAAD(out[:headerSize], aad)), nil
}

// Open decrypts a value produced by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < headerSize+tagSize || sealed[0] != version || !bytes.Equal(sealed[1:1+kidSize], s.kid[:]) {
		return nil, ErrOpen
	}
	hdr := sealed[:1+kidSize]
	p := 1 + kidSize
	wrapNonce := sealed[p : p+nonceSize]
	p += nonceSize
	dek, err := s.kek.Open(nil, wrapNonce, sealed[p:p+KeySize+tagSize], hdr)
	if err != nil {
		return nil, ErrOpen
	}
	defer clear(dek)
	p += KeySize + tagSize
	nonce := sealed[p : p+nonceSize]
	data, err := newGCM(dek)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := data.Open(nil, nonce, sealed[headerSize:], bindAAD(sealed[:headerSize], aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// AAD builds unambiguous additional data from parts (length-prefixed).
func AAD(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = fmt.Appendf(b, "%d:%s;", len(p), p)
	}
	return b
}

func bindAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func randomNonce() []byte {
	n := make([]byte, nonceSize)
	if _, err := rand.Read(n); err != nil {
		panic("seal: crypto/rand failed")
	}
	return n
}

// LoadOrCreateKeyFile reads a KEK from path (64 hex characters), creating
// the file with a fresh random key and mode 0600 when it does not exist. It
// refuses a file that group or others can read or write.
func LoadOrCreateKeyFile(path string) (*Sealer, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read key file: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal: stat key file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal: key file %s has mode %04o; it must not be accessible to group or others (chmod 600)", path, info.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("seal: key file %s must hold %d hex characters", path, 2*KeySize)
	}
	defer clear(key)
	return New(key)
}

func createKeyFile(path string) (*Sealer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("seal: create key directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	defer clear(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seal: create key file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("seal: write key file: %w", err)
	}
	return New(key)
}

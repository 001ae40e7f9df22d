// Package oidc is the broker's OIDC issuer: an ES256 key set kept in a file,
// rotated without breaking verifiers, the discovery document and JWKS that
// AWS IAM (or any OIDC relying party) fetches, and the minting of the
// short-lived ID tokens agents exchange with sts:AssumeRoleWithWebIdentity.
//
// Key lifecycle. Every key is in one of three states:
//
//   - next: published in the JWKS but not signing yet, so verifiers that
//     cache the JWKS already know it when it starts signing;
//   - current: the one key that signs;
//   - retired: no longer signs; its public half stays in the JWKS until every
//     token it signed has expired (the longest token lifetime) plus the JWKS
//     cache margin, then it disappears.
//
// A new key set holds a current and a next key. Rotate promotes the next key
// to current (only once it has been published for at least the publish
// delay, unless forced), retires the current one and publishes a fresh next
// key. The file is written atomically (temp file, fsync, rename) with mode
// 0600, and is refused at load when group or others can read it.
package oidc

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// KeyState is a key's place in its lifecycle.
type KeyState string

// Key states.
const (
	StateNext    KeyState = "next"
	StateCurrent KeyState = "current"
	StateRetired KeyState = "retired"
)

// Defaults of the rotation policy.
const (
	// MaxTokenTTL is the longest JWT lifetime the broker accepts.
	MaxTokenTTL = time.Hour
	// CacheMargin covers verifiers' JWKS caches (the broker serves the JWKS
	// with a much shorter max-age) and clock skew.
	CacheMargin = 10 * time.Minute
	// DefaultPublishDelay is how long a next key is published before it may
	// be promoted to signing.
	DefaultPublishDelay = CacheMargin
	// DefaultRetention is how long a retired key stays published.
	DefaultRetention = MaxTokenTTL + CacheMargin
)

// Policy sets the rotation windows.
type Policy struct {
	PublishDelay time.Duration
	Retention    time.Duration
}

// DefaultPolicy is the policy the broker and its CLI use.
var DefaultPolicy = Policy{PublishDelay: DefaultPublishDelay, Retention: DefaultRetention}

// Key is one signing key.
type Key struct {
	KID       string // RFC 7638 JWK thumbprint (SHA-256, base64url)
	State     KeyState
	CreatedAt time.Time // also when it was first published
	// ActivatedAt is when it started signing (zero for a next key).
	ActivatedAt time.Time
	// RetiredAt is when it stopped signing (zero unless retired).
	RetiredAt time.Time

	private *ecdsa.PrivateKey
}

// Public returns the key's public half as a JWK.
func (k Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.private.PublicKey, KeyID: k.KID, Algorithm: string(jose.ES256), Use: "sig"}
}

// publishedAt reports whether the key belongs in the JWKS at now.
func (k Key) publishedAt(now time.Time, p Policy) bool {
	return k.State != StateRetired || now.Before(k.RetiredAt.Add(p.Retention))
}

// KeySet is an immutable snapshot of the key file.
type KeySet struct {
	keys []Key
}

// Keys returns the keys, current first, then next, then retired (newest
// retirement first).
func (s *KeySet) Keys() []Key { return slices.Clone(s.keys) }

// Current returns the signing key.
func (s *KeySet) Current() (Key, bool) {
	for _, k := range s.keys {
		if k.State == StateCurrent {
			return k, true
		}
	}
	return Key{}, false
}

// Next returns the published-but-not-signing key, if any.
func (s *KeySet) Next() (Key, bool) {
	for _, k := range s.keys {
		if k.State == StateNext {
			return k, true
		}
	}
	return Key{}, false
}

// JWKS returns the public keys verifiers should know at now.
func (s *KeySet) JWKS(now time.Time, p Policy) jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range s.keys {
		if k.publishedAt(now, p) {
			set.Keys = append(set.Keys, k.Public())
		}
	}
	return set
}

func stateRank(s KeyState) int {
	switch s {
	case StateCurrent:
		return 0
	case StateNext:
		return 1
	default:
		return 2
	}
}

func (s *KeySet) sort() {
	slices.SortStableFunc(s.keys, func(a, b Key) int {
		if d := stateRank(a.State) - stateRank(b.State); d != 0 {
			return d
		}
		return b.RetiredAt.Compare(a.RetiredAt)
	})
}

func (s *KeySet) validate() error {
	var current, next int
	seen := map[string]bool{}
	for _, k := range s.keys {
		if seen[k.KID] {
			return fmt.Errorf("duplicate key id %s", k.KID)
		}
		seen[k.KID] = true
		switch k.State {
		case StateCurrent:
			current++
		case StateNext:
			next++
		case StateRetired:
			if k.RetiredAt.IsZero() {
				return fmt.Errorf("retired key %s has no retired_at", k.KID)
			}
		default:
			return fmt.Errorf("key %s has unknown state %q", k.KID, k.State)
		}
	}
	if current != 1 {
		return fmt.Errorf("want exactly one current key, found %d", current)
	}
	if next > 1 {
		return fmt.Errorf("want at most one next key, found %d", next)
	}
	return nil
}

// newKey generates a fresh P-256 key.
func newKey(state KeyState, now time.Time) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate ES256 key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return Key{}, err
	}
	k := Key{KID: kid, State: state, CreatedAt: now.UTC(), private: priv}
	if state == StateCurrent {
		k.ActivatedAt = k.CreatedAt
	}
	return k, nil
}

func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// NewKeySet returns a fresh key set: one current and one next key.
func NewKeySet(now time.Time) (*KeySet, error) {
	cur, err := newKey(StateCurrent, now)
	if err != nil {
		return nil, err
	}
	next, err := newKey(StateNext, now)
	if err != nil {
		return nil, err
	}
	return &KeySet{keys: []Key{cur, next}}, nil
}

// ErrRotationTooSoon is returned by Rotate when the next key has not been
// published long enough for verifiers' caches to know it.
var ErrRotationTooSoon = errors.New("next key not yet published long enough")

// Rotated returns a new key set in which the next key signs, the current key
// is retired, retired keys past the retention window are dropped and a fresh
// next key is published. Without a next key (a key set imported from the
// original single-key file) it only publishes a next key. force skips the
// publish-delay check (for a compromised current key).
func (s *KeySet) Rotated(now time.Time, p Policy, force bool) (*KeySet, error) {
	now = now.UTC()
	out := &KeySet{}
	next, hasNext := s.Next()
	if hasNext && !force {
		if ready := next.CreatedAt.Add(p.PublishDelay); now.Before(ready) {
			return nil, fmt.Errorf("%w: key %s was published at %s and may sign from %s (verifiers cache the JWKS); wait, or force the rotation if the current key is compromised",
				ErrRotationTooSoon, next.KID, next.CreatedAt.Format(time.RFC3339), ready.Format(time.RFC3339))
		}
	}
	for _, k := range s.keys {
		switch {
		case k.State == StateRetired && !k.publishedAt(now, p):
			continue // its tokens have all expired
		case hasNext && k.State == StateCurrent:
			k.State, k.RetiredAt = StateRetired, now
		case hasNext && k.State == StateNext:
			k.State, k.ActivatedAt = StateCurrent, now
		}
		out.keys = append(out.keys, k)
	}
	fresh, err := newKey(StateNext, now)
	if err != nil {
		return nil, err
	}
	out.keys = append(out.keys, fresh)
	out.sort()
	return out, out.validate()
}

// File format.

const fileVersion = 1

type fileSet struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	KID           string `json:"kid"`
	State         string `json:"state"`
	CreatedAt     int64  `json:"created_at"`
	ActivatedAt   int64  `json:"activated_at,omitempty"`
	RetiredAt     int64  `json:"retired_at,omitempty"`
	PrivateKeyPEM string `json:"private_key_pem"`
}

// legacyFile is the original broker's single-key file.
type legacyFile struct {
	KID           string `json:"kid"`
	PrivateKeyPEM string `json:"private_key_pem"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func (s *KeySet) marshal() ([]byte, error) {
	f := fileSet{Version: fileVersion}
	for _, k := range s.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k.private)
		if err != nil {
			return nil, fmt.Errorf("encode key %s: %w", k.KID, err)
		}
		f.Keys = append(f.Keys, fileKey{
			KID: k.KID, State: string(k.State),
			CreatedAt: unix(k.CreatedAt), ActivatedAt: unix(k.ActivatedAt), RetiredAt: unix(k.RetiredAt),
			PrivateKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		})
	}
	return json.MarshalIndent(f, "", "  ")
}

// parseKeySet decodes a key file. Its errors never quote key material.
func parseKeySet(data []byte) (*KeySet, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, errors.New("key file is not a JSON object")
	}
	if _, ok := probe["keys"]; !ok {
		if _, ok := probe["private_key_pem"]; ok {
			return parseLegacy(data)
		}
		return nil, errors.New("key file has no \"keys\"")
	}
	var f fileSet
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, errors.New("key file does not match the key set format")
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("key file version %d not supported (want %d)", f.Version, fileVersion)
	}
	s := &KeySet{}
	for i, fk := range f.Keys {
		priv, err := parsePrivate(fk.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		kid, err := thumbprint(&priv.PublicKey)
		if err != nil {
			return nil, err
		}
		if fk.KID != kid {
			return nil, fmt.Errorf("key %d: kid does not match its key's thumbprint", i)
		}
		s.keys = append(s.keys, Key{
			KID: kid, State: KeyState(fk.State), private: priv,
			CreatedAt: fromUnix(fk.CreatedAt), ActivatedAt: fromUnix(fk.ActivatedAt), RetiredAt: fromUnix(fk.RetiredAt),
		})
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	s.sort()
	return s, nil
}

func parseLegacy(data []byte) (*KeySet, error) {
	var l legacyFile
	if err := json.Unmarshal(data, &l); err != nil || l.KID == "" {
		return nil, errors.New("key file does not match the original single-key format")
	}
	priv, err := parsePrivate(l.PrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	// The original's kid ("v1-<unix>") is kept: verifiers may have cached it.
	return &KeySet{keys: []Key{{KID: l.KID, State: StateCurrent, private: priv}}}, nil
}

func parsePrivate(p string) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("private_key_pem is not a PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("private_key_pem is not a PKCS#8 key")
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("private key is not an ECDSA P-256 key")
	}
	return ec, nil
}

// Files.

// Load reads the key file at path. It refuses a file that group or others
// may access, or that another user owns.
func Load(path string) (*KeySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it holds private keys and must not be accessible to group or others (chmod 600)", path, st.Mode().Perm())
	}
	if err := checkOwner(st); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	s, err := parseKeySet(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// LoadOrCreate loads the key file, creating it with a fresh key set when it
// does not exist. Creation never replaces a file another process created
// meanwhile. created reports whether this call made the file.
func LoadOrCreate(path string, now time.Time) (s *KeySet, created bool, err error) {
	s, err = Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, false, err
	}
	s, err = NewKeySet(now)
	if err != nil {
		return nil, false, err
	}
	data, err := s.marshal()
	if err != nil {
		return nil, false, err
	}
	switch err := writeFile(path, data, false); {
	case errors.Is(err, os.ErrExist):
		s, err := Load(path) // a concurrent first start won
		return s, false, err
	case err != nil:
		return nil, false, err
	}
	return s, true, nil
}

// Rotate rotates the key file at path under an exclusive lock and returns
// the new key set. See KeySet.Rotated.
func Rotate(path string, now time.Time, p Policy, force bool) (*KeySet, error) {
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	r, err := s.Rotated(now, p, force)
	if err != nil {
		return nil, err
	}
	data, err := r.marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFile(path, data, true); err != nil {
		return nil, err
	}
	return r, nil
}

// writeFile writes data to path atomically with mode 0600: a temp file in
// the same directory is written and fsynced, then renamed over path
// (replace) or hard-linked to it (create only; fails with os.ErrExist).
func writeFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ErrExist
		}
		return fmt.Errorf("install key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

package oidc

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// SignCheckpoint signs msg with the current key for the audit ledger's
// checkpoints: ECDSA P-256 over SHA-256(msg), returned as the 64-byte r||s
// form with the key's kid. The caller must domain-separate msg (the audit
// ledger prefixes a version tag), so that a checkpoint signature is never a
// valid token signature or the reverse.
func (i *Issuer) SignCheckpoint(msg []byte) (kid string, sig []byte, err error) {
	cur, ok := i.state.Load().set.Current()
	if !ok || cur.private == nil {
		return "", nil, errors.New("key set has no current key")
	}
	sum := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, cur.private, sum[:])
	if err != nil {
		return "", nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return cur.KID, out, nil
}

package authreq

import (
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
)

// The session an approval mints can be sealed to a key the opener holds
// ("box_pubkey" in open, "sealed_session" in await), so whoever relays or
// observes the await answer never holds a usable bearer token. The
// sealing is HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256 and ChaCha20-Poly1305; the blob is the 32-byte encapsulated
// key followed by the ciphertext, and the request id is the AEAD's
// additional data, so a blob sealed for one request does not open as
// another's.

// BoxInfo is the HPKE info string of sealed sessions.
const BoxInfo = "agentkeys sealed session v1"

// BoxKeySize is the size of an X25519 public key.
const BoxKeySize = 32

// MaxSealedSize bounds a sealed session blob.
const MaxSealedSize = 8 << 10

var (
	boxKDF  = hpke.HKDFSHA256()
	boxAEAD = hpke.ChaCha20Poly1305()
)

// ErrSealedOpen is returned when a sealed session cannot be opened.
var ErrSealedOpen = errors.New("the sealed session cannot be opened with this pairing's key")

// NewBoxKey returns a fresh X25519 key for one pairing.
func NewBoxKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(nil)
}

// ParseBoxPublicKey checks an X25519 public key from the wire.
func ParseBoxPublicKey(b []byte) (*ecdh.PublicKey, error) {
	if len(b) != BoxKeySize {
		return nil, errors.New("box_pubkey must be a 32-byte X25519 public key")
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, errors.New("box_pubkey must be a 32-byte X25519 public key")
	}
	// A low-order point gives an all-zero shared secret; ECDH refuses it,
	// so a trial exchange rejects such keys up front.
	probe, err := NewBoxKey()
	if err != nil {
		return nil, err
	}
	if _, err := probe.ECDH(pub); err != nil {
		return nil, errors.New("box_pubkey is not a usable X25519 public key")
	}
	return pub, nil
}

// SealTo seals plaintext to an X25519 public key for one request.
func SealTo(boxPub []byte, requestID string, plaintext []byte) ([]byte, error) {
	pub, err := ParseBoxPublicKey(boxPub)
	if err != nil {
		return nil, err
	}
	hpub, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	enc, sender, err := hpke.NewSender(hpub, boxKDF, boxAEAD, []byte(BoxInfo))
	if err != nil {
		return nil, err
	}
	ct, err := sender.Seal([]byte(requestID), plaintext)
	if err != nil {
		return nil, err
	}
	return append(enc, ct...), nil
}

// OpenSealed opens a blob made by SealTo with the pairing's private key.
func OpenSealed(priv *ecdh.PrivateKey, requestID string, sealed []byte) ([]byte, error) {
	if priv == nil || len(sealed) <= BoxKeySize || len(sealed) > MaxSealedSize {
		return nil, ErrSealedOpen
	}
	hpriv, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, ErrSealedOpen
	}
	r, err := hpke.NewRecipient(sealed[:BoxKeySize], hpriv, boxKDF, boxAEAD, []byte(BoxInfo))
	if err != nil {
		return nil, ErrSealedOpen
	}
	pt, err := r.Open([]byte(requestID), sealed[BoxKeySize:])
	if err != nil {
		return nil, ErrSealedOpen
	}
	return pt, nil
}

package authreq

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ApprovalPurpose separates approval signatures from anything else the
// backend's signing key could ever sign.
const ApprovalPurpose = "agentkeys-auth-approval-v1"

// SigningKeyInfo is the HKDF info string under which a backend derives its
// approval signing key from its seal key: every replica that shares the
// seal key signs with the same key.
const SigningKeyInfo = "agentkeys pairing signing key v1"

// Approval is the statement a backend signs when a master approves a
// request. Its canonical CBOR encoding (ApprovalBytes) is the exact message
// given to Ed25519; the signature travels as standard base64 of its 64
// bytes in the "signature" field of approve and await.
//
// It binds everything the opener asked for (type, details, its public keys,
// the hash of its secret await token), who approved it and when the request
// was opened, and what was handed out (the resulting wallet and the SHA-256
// of the minted session token), so neither a relay nor a tampered database
// can swap any of them without the signature failing.
type Approval struct {
	Purpose        string `cbor:"purpose"` // always ApprovalPurpose
	RequestID      string `cbor:"request_id"`
	RequestType    string `cbor:"request_type"`
	RequestDetails []byte `cbor:"request_details"`
	ChildPubkey    []byte `cbor:"child_pubkey"`
	// BoxPubkey is the X25519 key the session is sealed to; empty when
	// the opener sent none.
	BoxPubkey      []byte `cbor:"box_pubkey"`
	ApproverWallet string `cbor:"approver_wallet"`
	// CreatedAt is when the request was opened, in Unix seconds.
	CreatedAt uint64 `cbor:"created_at"`
	// AwaitTokenHash is SHA-256 of the await token open returned.
	AwaitTokenHash []byte `cbor:"await_token_hash"`
	// ResultWallet is the wallet the approval acts on ("" if none).
	ResultWallet string `cbor:"result_wallet"`
	// SessionHash is SHA-256 of the delivered session token; empty when
	// the approval mints no session (a scope change).
	SessionHash []byte `cbor:"session_hash"`
}

// ApprovalBytes returns the canonical CBOR (RFC 8949 §4.2.1: definite
// lengths, shortest heads, map keys sorted by their encoded bytes) that is
// signed. Purpose is always set to ApprovalPurpose; nil byte strings encode
// as empty ones.
func ApprovalBytes(a Approval) ([]byte, error) {
	a.Purpose = ApprovalPurpose
	a.RequestDetails, a.ChildPubkey, a.BoxPubkey = nonNil(a.RequestDetails), nonNil(a.ChildPubkey), nonNil(a.BoxPubkey)
	a.AwaitTokenHash, a.SessionHash = nonNil(a.AwaitTokenHash), nonNil(a.SessionHash)
	return encMode.Marshal(a)
}

// SignApproval signs a with the backend's key.
func SignApproval(priv ed25519.PrivateKey, a Approval) ([]byte, error) {
	msg, err := ApprovalBytes(a)
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(priv, msg), nil
}

// ErrBadSignature is returned when an approval signature does not verify
// under any published key.
var ErrBadSignature = errors.New("the approval signature does not verify under the backend's published pairing key")

// VerifyApproval checks sig over a with the key of the given id (or, if
// keyID is empty, with any key of the set).
func VerifyApproval(keys []PublicKey, keyID string, a Approval, sig []byte) error {
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w (signature is %d bytes, want %d)", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	msg, err := ApprovalBytes(a)
	if err != nil {
		return err
	}
	tried := false
	for _, k := range keys {
		if keyID != "" && k.ID != keyID {
			continue
		}
		tried = true
		if ed25519.Verify(k.Key, msg, sig) {
			return nil
		}
	}
	if !tried {
		return fmt.Errorf("%w (no published key has id %q)", ErrBadSignature, truncate(keyID))
	}
	return ErrBadSignature
}

// TokenSHA256 is the raw SHA-256 of a token string, as bound in Approval.
func TokenSHA256(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// KeysPath is the backend route that publishes the approval-signing keys
// as a JWKS-style document.
const KeysPath = "/.well-known/agentkeys-pairing-keys"

// PublicKey is one published approval-signing key.
type PublicKey struct {
	ID  string // RFC 7638 JWK thumbprint (base64url, no padding)
	Key ed25519.PublicKey
}

// KeyID returns the RFC 7638 thumbprint of an Ed25519 key (RFC 8037 §2):
// base64url(SHA-256(`{"crv":"Ed25519","kty":"OKP","x":"…"}`)).
func KeyID(pub ed25519.PublicKey) string {
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

// MarshalKeySet renders keys as a JWKS-style document (RFC 7517 with RFC
// 8037 OKP keys).
func MarshalKeySet(keys []PublicKey) ([]byte, error) {
	doc := jwks{Keys: []jwk{}}
	for _, k := range keys {
		doc.Keys = append(doc.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Key), Kid: KeyID(k.Key), Use: "sig", Alg: "EdDSA"})
	}
	return json.Marshal(doc)
}

// MaxKeySetSize bounds a keys document.
const MaxKeySetSize = 64 << 10

// ParseKeySet reads a keys document from the backend. It keeps only
// Ed25519 signing keys, requires each kid to be the key's thumbprint, and
// fails when no usable key remains.
func ParseKeySet(raw []byte) ([]PublicKey, error) {
	if len(raw) > MaxKeySetSize {
		return nil, errors.New("pairing keys document is too large")
	}
	var doc jwks
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errors.New("pairing keys document is not valid JSON")
	}
	var out []PublicKey
	for _, k := range doc.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "EdDSA") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.X, "="))
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("pairing keys document has a malformed Ed25519 key")
		}
		pub := ed25519.PublicKey(x)
		id := KeyID(pub)
		if k.Kid != "" && k.Kid != id {
			return nil, errors.New("pairing keys document has a kid that is not the key's thumbprint")
		}
		out = append(out, PublicKey{ID: id, Key: pub})
	}
	if len(out) == 0 {
		return nil, errors.New("pairing keys document holds no Ed25519 signing key")
	}
	return out, nil
}

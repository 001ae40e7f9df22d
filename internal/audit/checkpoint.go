package audit

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Checkpoint is a chain head signed by the broker: "row ID of Chain had
// hash RowHash at Time". A verifier holding only the broker's public keys
// checks the signature and that the ledger still holds that row with that
// hash; rewriting the chain from an earlier row, or cutting it before the
// row, then fails even though the hashes are recomputed consistently.
//
// The exported form is one JSON object per line:
//
//	{"chain":"broker-1","id":1000,"row_hash":"<64 hex>","time":"2026-01-02T03:04:05Z","kid":"<JWK thumbprint>","signature":"<base64url>"}
//
// signature is ECDSA P-256 with SHA-256 (the broker's ES256 OIDC key named
// by kid), the 64-byte r||s form, base64url without padding, over
// SignedMessage: a length-prefixed encoding of a version tag, chain, id,
// row_hash and time in unix seconds. The tag keeps a checkpoint signature
// from ever being a valid signature of a JWT, and the reverse.
type Checkpoint struct {
	Chain     string    `json:"chain"`
	ID        int64     `json:"id"`
	RowHash   string    `json:"row_hash"`
	Time      time.Time `json:"time"`
	KID       string    `json:"kid"`
	Signature string    `json:"signature"`
}

// checkpointVersion is the domain-separation tag of SignedMessage.
const checkpointVersion = "agentkeys-broker-audit-checkpoint-v1"

// Signer signs checkpoints (the broker's OIDC issuer implements it).
type Signer interface {
	// SignCheckpoint signs msg with the current key: ECDSA P-256 over
	// SHA-256(msg), r||s.
	SignCheckpoint(msg []byte) (kid string, sig []byte, err error)
}

// SignedMessage is the byte string the signature covers.
func (c Checkpoint) SignedMessage() []byte {
	var b bytes.Buffer
	writeField(&b, checkpointVersion)
	writeField(&b, c.Chain)
	writeField(&b, strconv.FormatInt(c.ID, 10))
	writeField(&b, c.RowHash)
	writeField(&b, strconv.FormatInt(c.Time.Unix(), 10))
	return b.Bytes()
}

// NewCheckpoint signs the head (chain, id, rowHash) at now.
func NewCheckpoint(s Signer, chain string, id int64, rowHash string, now time.Time) (Checkpoint, error) {
	c := Checkpoint{Chain: chain, ID: id, RowHash: rowHash, Time: time.Unix(now.Unix(), 0).UTC()}
	kid, sig, err := s.SignCheckpoint(c.SignedMessage())
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	c.KID, c.Signature = kid, base64.RawURLEncoding.EncodeToString(sig)
	return c, nil
}

// Validate checks the checkpoint's fields (not its signature).
func (c Checkpoint) Validate() error {
	switch {
	case !ValidChain(c.Chain):
		return errors.New("invalid chain name")
	case c.ID < 1:
		return errors.New("id must be at least 1")
	case !isHash(c.RowHash):
		return errors.New("row_hash must be 64 lowercase hex digits")
	case c.Time.IsZero() || c.Time.Unix() <= 0:
		return errors.New("time missing")
	case c.KID == "" || len(c.KID) > 256:
		return errors.New("kid missing or too long")
	}
	sig, err := base64.RawURLEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != 64 {
		return errors.New("signature must be 64 bytes, base64url without padding")
	}
	return nil
}

// VerifySignature checks the signature with the public key named by kid in
// keys. Only ECDSA P-256 keys are accepted.
func (c Checkpoint) VerifySignature(keys jose.JSONWebKeySet) error {
	if err := c.Validate(); err != nil {
		return err
	}
	sig, _ := base64.RawURLEncoding.DecodeString(c.Signature)
	sum := sha256.Sum256(c.SignedMessage())
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	found := false
	for _, k := range keys.Key(c.KID) {
		pub, ok := k.Key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			continue
		}
		found = true
		if ecdsa.Verify(pub, sum[:], r, s) {
			return nil
		}
	}
	if !found {
		return fmt.Errorf("no ES256 public key with kid %q", c.KID)
	}
	return errors.New("signature does not verify")
}

// MarshalLine encodes c as one line of the export format (with "\n").
func (c Checkpoint) MarshalLine() []byte {
	c.Time = c.Time.UTC()
	b, _ := json.Marshal(c)
	return append(b, '\n')
}

// maxCheckpointLine bounds one line of a checkpoint file.
const maxCheckpointLine = 4 << 10

// ParseCheckpoints reads checkpoints in the export format: one JSON object
// per line (blank lines ignored), unknown fields refused, every field
// checked (signatures are not: see VerifySignature).
func ParseCheckpoints(r io.Reader) ([]Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxCheckpointLine)
	var out []Checkpoint
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var c Checkpoint
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("checkpoint line %d: not a checkpoint object", line)
		}
		if dec.More() {
			return nil, fmt.Errorf("checkpoint line %d: trailing data", line)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("checkpoint line %d: %v", line, err)
		}
		c.Time = c.Time.UTC()
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("checkpoint file: a line exceeds %d bytes", maxCheckpointLine)
		}
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	return out, nil
}

// Expectation is a head hash recorded earlier: verification passes only if
// a row with that hash is still in the chain (rows after it are fine).
// Chain "" matches any chain.
type Expectation struct {
	Chain string
	Hash  string
}

// ParseExpectation parses "HASH" or "CHAIN=HASH".
func ParseExpectation(s string) (Expectation, error) {
	chain, hash, ok := strings.Cut(s, "=")
	if !ok {
		chain, hash = "", s
	} else if !ValidChain(chain) {
		return Expectation{}, errors.New("expected head: invalid chain name before '='")
	}
	hash = strings.ToLower(hash)
	if !isHash(hash) {
		return Expectation{}, errors.New("expected head: want HASH or CHAIN=HASH with a 64-hex-digit hash")
	}
	return Expectation{Chain: chain, Hash: hash}, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

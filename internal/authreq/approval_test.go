package authreq

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func goldenApproval() Approval {
	return Approval{
		RequestID:      "r1",
		RequestType:    TypePair,
		RequestDetails: []byte{0xa0},
		ChildPubkey:    []byte{1, 2},
		BoxPubkey:      []byte{3},
		ApproverWallet: "0xab",
		CreatedAt:      1700000000,
		AwaitTokenHash: []byte{4},
		ResultWallet:   "0xcd",
		SessionHash:    []byte{5},
	}
}

// The signed bytes are frozen: a change here breaks every daemon that
// verifies approvals, so it must be deliberate (and versioned through
// ApprovalPurpose).
const goldenApprovalHex = "ab67707572706f7365781a6167656e746b6579732d617574682d617070726f76616c2d76316a626f785f7075626b657941036a637265617465645f61741a6553f1006a726571756573745f69646272316c6368696c645f7075626b65794201026c726571756573745f7479706564506169726c73657373696f6e5f6861736841056d726573756c745f77616c6c657464307863646f617070726f7665725f77616c6c657464307861626f726571756573745f64657461696c7341a07061776169745f746f6b656e5f686173684104"

func TestApprovalBytesGolden(t *testing.T) {
	got, err := ApprovalBytes(goldenApproval())
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != goldenApprovalHex {
		t.Fatalf("approval encoding changed:\n got %x\nwant %s", got, goldenApprovalHex)
	}
	// It is core deterministic CBOR: a strict canonical re-encoding of
	// the decoded map is byte-identical, and keys are sorted shortest
	// first.
	var m map[string]any
	if err := cbor.Unmarshal(got, &m); err != nil {
		t.Fatal(err)
	}
	again, err := encMode.Marshal(m)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("not canonical: %x vs %x", again, got)
	}
	if m["purpose"] != ApprovalPurpose || len(m) != 11 {
		t.Fatalf("decoded approval %v", m)
	}
}

func TestApprovalBytesNilAndEmptyAgree(t *testing.T) {
	a := goldenApproval()
	a.BoxPubkey, a.SessionHash = nil, nil
	b := a
	b.BoxPubkey, b.SessionHash = []byte{}, []byte{}
	x, _ := ApprovalBytes(a)
	y, _ := ApprovalBytes(b)
	if !bytes.Equal(x, y) {
		t.Fatal("nil and empty byte strings encode differently")
	}
}

func TestSignVerifyAndTamper(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := []PublicKey{{ID: KeyID(pub), Key: pub}}
	a := goldenApproval()
	sig, err := SignApproval(priv, a)
	if err != nil || len(sig) != ed25519.SignatureSize {
		t.Fatalf("sign: %d bytes, %v", len(sig), err)
	}
	if err := VerifyApproval(keys, KeyID(pub), a, sig); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}
	if err := VerifyApproval(keys, "", a, sig); err != nil {
		t.Fatalf("good signature refused without a key id: %v", err)
	}
	tamper := map[string]func(*Approval){
		"request_id":       func(a *Approval) { a.RequestID = "r2" },
		"request_type":     func(a *Approval) { a.RequestType = TypeRecover },
		"request_details":  func(a *Approval) { a.RequestDetails = []byte{0xa1} },
		"child_pubkey":     func(a *Approval) { a.ChildPubkey = []byte{1, 3} },
		"box_pubkey":       func(a *Approval) { a.BoxPubkey = []byte{9} },
		"no box_pubkey":    func(a *Approval) { a.BoxPubkey = nil },
		"approver_wallet":  func(a *Approval) { a.ApproverWallet = "0xac" },
		"created_at":       func(a *Approval) { a.CreatedAt++ },
		"await_token_hash": func(a *Approval) { a.AwaitTokenHash = []byte{6} },
		"result_wallet":    func(a *Approval) { a.ResultWallet = "0xce" },
		"session_hash":     func(a *Approval) { a.SessionHash = []byte{7} },
	}
	for name, f := range tamper {
		b := a
		f(&b)
		if err := VerifyApproval(keys, KeyID(pub), b, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered %s verified: %v", name, err)
		}
	}
	bad := bytes.Clone(sig)
	bad[10] ^= 1
	if err := VerifyApproval(keys, KeyID(pub), a, bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("flipped signature verified: %v", err)
	}
	if err := VerifyApproval(keys, KeyID(pub), a, sig[:63]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("short signature verified: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := VerifyApproval([]PublicKey{{ID: KeyID(other), Key: other}}, "", a, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature verified under another key: %v", err)
	}
	if err := VerifyApproval(keys, "unknown-kid", a, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unknown key id accepted: %v", err)
	}
}

func TestKeySetRoundTrip(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	raw, err := MarshalKeySet([]PublicKey{{Key: pub}})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]string
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	k := doc["keys"][0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["use"] != "sig" || k["alg"] != "EdDSA" || k["kid"] != KeyID(pub) ||
		k["x"] != base64.RawURLEncoding.EncodeToString(pub) {
		t.Fatalf("key document %s", raw)
	}
	keys, err := ParseKeySet(raw)
	if err != nil || len(keys) != 1 || !keys[0].Key.Equal(pub) || keys[0].ID != KeyID(pub) {
		t.Fatalf("parse: %v %v", keys, err)
	}
	for name, doc := range map[string]string{
		"not json":   `{`,
		"no keys":    `{"keys":[]}`,
		"only rsa":   `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"short x":    `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		"wrong kid":  strings.Replace(string(raw), KeyID(pub), "AAAA", 1),
		"enc key":    strings.Replace(string(raw), `"use":"sig"`, `"use":"enc"`, 1),
		"other algo": strings.Replace(string(raw), `"alg":"EdDSA"`, `"alg":"ES256"`, 1),
	} {
		if _, err := ParseKeySet([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// RFC 8037 Appendix A.3: the thumbprint of the RFC's example Ed25519 key.
func TestKeyIDIsTheRFC8037Thumbprint(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := KeyID(x); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestSealedSessionOnlyOpensForTheKeyHolder(t *testing.T) {
	k, err := NewBoxKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"token":"` + rand.Text() + `"}`)
	blob, err := SealTo(k.PublicKey().Bytes(), "req-1", secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, secret[10:30]) {
		t.Fatal("sealed blob contains the plaintext")
	}
	got, err := OpenSealed(k, "req-1", blob)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := NewBoxKey()
	if _, err := OpenSealed(other, "req-1", blob); !errors.Is(err, ErrSealedOpen) {
		t.Fatalf("another key opened it: %v", err)
	}
	if _, err := OpenSealed(k, "req-2", blob); !errors.Is(err, ErrSealedOpen) {
		t.Fatalf("opened as another request: %v", err)
	}
	for i := range blob {
		bad := bytes.Clone(blob)
		bad[i] ^= 0x80
		if _, err := OpenSealed(k, "req-1", bad); err == nil {
			t.Fatalf("flipped byte %d went unnoticed", i)
		}
	}
	if _, err := SealTo([]byte{1, 2, 3}, "req-1", secret); err == nil {
		t.Fatal("sealed to a malformed key")
	}
	if _, err := ParseBoxPublicKey(make([]byte, 32)); err == nil {
		t.Fatal("accepted the all-zero (low-order) X25519 point")
	}
}

func FuzzParseKeySet(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	good, _ := MarshalKeySet([]PublicKey{{Key: pub}})
	f.Add(good)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		keys, err := ParseKeySet(raw)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, k := range keys {
			if len(k.Key) != ed25519.PublicKeySize || k.ID != KeyID(k.Key) {
				t.Fatalf("bad key %v", k)
			}
		}
		// What parses re-marshals to a document that parses to the same keys.
		again, err := MarshalKeySet(keys)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseKeySet(again)
		if err != nil || len(back) != len(keys) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzOpenSealed(f *testing.F) {
	k, _ := NewBoxKey()
	good, _ := SealTo(k.PublicKey().Bytes(), "req", []byte("session"))
	f.Add("req", good)
	f.Add("req", good[:BoxKeySize])
	f.Add("", []byte{})
	f.Add("other", append(bytes.Clone(good), 0))
	f.Fuzz(func(t *testing.T, id string, blob []byte) {
		pt, err := OpenSealed(k, id, blob)
		if err == nil && (id != "req" || !bytes.Equal(blob, good) || string(pt) != "session") {
			// HPKE is an AEAD: only the sealed blob for "req" opens.
			t.Fatalf("forged blob opened: %q", pt)
		}
	})
}

package authreq

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/fxamacker/cbor/v2"
)

type vectorFile struct {
	Vectors []struct {
		Name    string  `json:"name"`
		Request Request `json:"request"`
		Hex     string  `json:"hex"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) vectorFile {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(raw, &vf); err != nil {
		t.Fatal(err)
	}
	if len(vf.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	return vf
}

func TestVectorsMatchTheOriginalEncoding(t *testing.T) {
	for _, v := range loadVectors(t).Vectors {
		got, err := Encode(v.Request)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if hex.EncodeToString(got) != v.Hex {
			t.Errorf("%s:\n got %x\nwant %s", v.Name, got, v.Hex)
		}
	}
}

func TestDecodeRoundTripAndValidation(t *testing.T) {
	wallet := "0x" + strings.Repeat("ab", 20)
	ok := []Request{
		{Type: TypePair, RequestedScope: Scope{Services: []string{"openai", "openrouter"}}},
		{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityAlias, Value: "bot"}, NewDaemonPubkey: []byte{1, 2}},
		{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityWallet, Value: wallet}},
		{Type: TypeScopeChange, AgentID: wallet, NewScope: Scope{Services: []string{"x"}, ReadOnly: true}},
		{Type: TypeHighValueRelease, AgentID: wallet, Service: "openai", EstimatedCostCents: 99},
		{Type: TypeKeyRotate, AgentID: wallet, NewPubkey: []byte{9}},
	}
	for _, r := range ok {
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(r.Type, b)
		if err != nil {
			t.Fatalf("%s: %v", r.Type, err)
		}
		again, _ := Encode(got)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: decode/encode changed the bytes", r.Type)
		}
		if got.Describe() == "" {
			t.Fatalf("%s: empty description", r.Type)
		}
	}
	pair, _ := Encode(ok[0])
	if _, err := Decode(TypeRecover, pair); err == nil {
		t.Fatal("Pair details accepted for a Recover request")
	}
	bad := []Request{
		{Type: TypePair, RequestedScope: Scope{Services: []string{"Not Valid"}}},
		{Type: TypeRecover, AgentIdentity: Identity{Type: "Phone", Value: "1"}},
		{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityEmail, Value: "no-at-sign"}},
		{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityWallet, Value: "0x12"}},
		{Type: TypeScopeChange, AgentID: "0xabc"},
		{Type: TypeKeyRotate, AgentID: wallet},
	}
	for _, r := range bad {
		b, err := Encode(r)
		if err != nil {
			continue
		}
		if _, err := Decode(r.Type, b); err == nil {
			t.Errorf("invalid %+v accepted", r)
		}
	}
	if _, err := Encode(Request{Type: "Nope"}); err == nil {
		t.Fatal("unknown type encoded")
	}
}

func TestDecodeRejectsNonCanonicalAndExtraFields(t *testing.T) {
	// Same content, keys in the wrong order.
	canon, _ := Encode(Request{Type: TypePair})
	var reordered []byte
	{
		// Build {"requested_scope":…, "type":"Pair"} by hand: map(2), key2, val2, key1, val1.
		em, _ := cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
		type kv struct {
			RequestedScope Scope  `cbor:"requested_scope"`
			Type           string `cbor:"type"`
		}
		reordered, _ = em.Marshal(kv{RequestedScope: Scope{Services: []string{}}, Type: "Pair"})
	}
	if bytes.Equal(reordered, canon) {
		t.Fatal("test setup: reordered encoding equals canonical")
	}
	if _, err := Decode(TypePair, reordered); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("non-canonical key order: %v", err)
	}
	extra, _ := cbor.Marshal(map[string]any{"type": "Pair", "requested_scope": map[string]any{"services": []string{}, "read_only": false}, "x": 1})
	if _, err := Decode(TypePair, extra); err == nil {
		t.Fatal("unknown field accepted")
	}
	// Non-shortest integer head for 1500 (0x1905dc) as 0x1a000005dc.
	hv, _ := Encode(Request{Type: TypeHighValueRelease, AgentID: "0x" + strings.Repeat("0", 40), Service: "s", EstimatedCostCents: 1500})
	long := bytes.Replace(hv, []byte{0x19, 0x05, 0xdc}, []byte{0x1a, 0, 0, 0x05, 0xdc}, 1)
	if _, err := Decode(TypeHighValueRelease, long); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("long integer form: %v", err)
	}
	for _, in := range [][]byte{nil, {0xff}, {0xa1, 0x64}, bytes.Repeat([]byte{0x81}, 64)} {
		if _, err := Decode(TypePair, in); err == nil {
			t.Errorf("garbage %x accepted", in)
		}
	}
}

func TestOTPMatchesRFC6238SHA256Vector(t *testing.T) {
	// RFC 6238 Appendix B: SHA-256 key, T=59s → counter 1 → 46119246
	// (8 digits); the 6-digit truncation of the same value is 119246.
	key := []byte("12345678901234567890123456789012")
	var counter [8]byte
	binary.BigEndian.PutUint64(counter[:], 1)
	if got := OTP(key, counter[:]); got != "119246" {
		t.Fatalf("OTP = %s, want 119246", got)
	}
	if !OTPEqual("123456", "123456") || OTPEqual("123456", "123457") || OTPEqual("123456", "12345") {
		t.Fatal("OTPEqual wrong")
	}
	// Different details under one nonce give (almost always) different codes.
	a, b := OTP(key, []byte("request-type-pair")), OTP(key, []byte("request-type-recover"))
	if a == b || len(a) != 6 {
		t.Fatalf("OTPs %s %s", a, b)
	}
}

func TestPairCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := NewPairCode()
		if len(c) != PairCodeLen || seen[c] {
			t.Fatalf("bad or repeated code %q", c)
		}
		seen[c] = true
		n, ok := NormalizePairCode(strings.ToLower(FormatPairCode(c)))
		if !ok || n != c {
			t.Fatalf("normalise(format(%s)) = %s, %v", c, n, ok)
		}
	}
	if n, ok := NormalizePairCode("abcd-efgo"); !ok || n != "ABCDEFG0" {
		t.Fatalf("O→0: %s %v", n, ok)
	}
	if n, ok := NormalizePairCode("il11 1111"); !ok || n != "11111111" {
		t.Fatalf("I/L→1: %s %v", n, ok)
	}
	for _, bad := range []string{"", "ABC", "ABCDEFGHJ", "ABCD-EFGU", "ABCD_EFGH"} {
		if _, ok := NormalizePairCode(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		b, _ := hex.DecodeString(v.Hex)
		f.Add(v.Request.Type, b)
	}
	f.Add("Pair", []byte{0xa0})
	f.Fuzz(func(t *testing.T, typ string, b []byte) {
		r, err := Decode(typ, b)
		if err != nil {
			return
		}
		again, err := Encode(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted input %x does not re-encode to itself", b)
		}
	})
}

func FuzzNormalizePairCode(f *testing.F) {
	f.Add("ABCD-EFGH")
	f.Add("abcd efgo")
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := NormalizePairCode(s)
		if !ok {
			return
		}
		if again, ok2 := NormalizePairCode(n); !ok2 || again != n || len(n) != PairCodeLen {
			t.Fatalf("%q → %q not a fixed point", s, n)
		}
	})
}

// TestIdentityKinds: every CBOR identity kind maps to an HTTP kind and back.
func TestIdentityKinds(t *testing.T) {
	for cborType, kind := range map[string]agentkeys.IdentityKind{
		IdentityAlias: agentkeys.KindAlias, IdentityEmail: agentkeys.KindEmail,
		IdentityEns: agentkeys.KindENS, IdentityWallet: agentkeys.KindWallet,
	} {
		if got := (Identity{Type: cborType}).Kind(); got != kind {
			t.Errorf("%s.Kind() = %q, want %q", cborType, got, kind)
		}
		if got := IdentityOf(agentkeys.Identity{Kind: kind, Value: "v"}); got != (Identity{Type: cborType, Value: "v"}) {
			t.Errorf("IdentityOf(%s) = %v", kind, got)
		}
	}
	if got := (Identity{Type: "wallet"}).Kind(); got != "" {
		t.Errorf("an HTTP spelling in CBOR maps to %q", got)
	}
}

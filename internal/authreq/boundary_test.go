package authreq

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// TestSizeLimitsAreInclusive: every limit accepts its maximum and refuses
// one more (a request at the limit must not be refused as too large).
func TestSizeLimitsAreInclusive(t *testing.T) {
	if _, err := Decode(TypePair, make([]byte, MaxDetailsSize)); err == nil || strings.Contains(err.Error(), "exceed") {
		t.Fatalf("details of exactly MaxDetailsSize: %v, want a parse error, not a size error", err)
	}
	if _, err := Decode(TypePair, make([]byte, MaxDetailsSize+1)); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Fatalf("details over MaxDetailsSize: %v", err)
	}

	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	raw, err := MarshalKeySet([]PublicKey{{Key: pub}})
	if err != nil {
		t.Fatal(err)
	}
	atMax := append(raw, bytes.Repeat([]byte(" "), MaxKeySetSize-len(raw))...)
	if keys, err := ParseKeySet(atMax); err != nil || len(keys) != 1 {
		t.Fatalf("keys document of exactly MaxKeySetSize: %v", err)
	}
	if _, err := ParseKeySet(append(atMax, ' ')); err == nil {
		t.Fatal("keys document over MaxKeySetSize accepted")
	}

	agent := string(agentkeys.NewWallet())
	roundTrip := func(r Request) error {
		t.Helper()
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(r.Type, b)
		return err
	}
	for _, tc := range []struct {
		name string
		make func(n int) Request
		max  int
	}{
		{"recover new_daemon_pubkey", func(n int) Request {
			return Request{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityAlias, Value: "a"}, NewDaemonPubkey: make([]byte, n)}
		}, 256},
		{"key rotate new_pubkey", func(n int) Request {
			return Request{Type: TypeKeyRotate, AgentID: agent, NewPubkey: bytes.Repeat([]byte{1}, n)}
		}, 256},
		{"identity value", func(n int) Request {
			return Request{Type: TypeRecover, AgentIdentity: Identity{Type: IdentityAlias, Value: strings.Repeat("a", n)}}
		}, 254},
	} {
		if err := roundTrip(tc.make(tc.max)); err != nil {
			t.Errorf("%s of %d bytes refused: %v", tc.name, tc.max, err)
		}
		if err := roundTrip(tc.make(tc.max + 1)); err == nil {
			t.Errorf("%s of %d bytes accepted", tc.name, tc.max+1)
		}
	}
}

// TestDescribeSaysWhatIsApproved: the line a master confirms names the
// services, the mode and the exact cost.
func TestDescribeSaysWhatIsApproved(t *testing.T) {
	agent := string(agentkeys.NewWallet())
	for _, tc := range []struct {
		r    Request
		want string
	}{
		{Request{Type: TypePair, RequestedScope: Scope{Services: []string{"openai", "openrouter"}}}, "Pair a new agent (services: openai, openrouter)"},
		{Request{Type: TypePair, RequestedScope: Scope{Services: []string{"openai"}, ReadOnly: true}}, "Pair a new agent (services: openai, read-only)"},
		{Request{Type: TypePair}, "Pair a new agent with no services yet (grant some later with `agentkeys scope set`)"},
		{Request{Type: TypeHighValueRelease, Service: "openai", AgentID: agent, EstimatedCostCents: 1234}, "Release openai for agent " + agent + " (estimated cost 12.34)"},
		{Request{Type: TypeHighValueRelease, Service: "openai", AgentID: agent, EstimatedCostCents: 105}, "Release openai for agent " + agent + " (estimated cost 1.05)"},
	} {
		if got := tc.r.Describe(); got != tc.want {
			t.Errorf("Describe() = %q, want %q", got, tc.want)
		}
	}
	// An unknown identity type is echoed cut to 32 bytes, no shorter.
	for _, n := range []int{32, 33} {
		typ := strings.Repeat("x", n)
		err := ValidateIdentity(Identity{Type: typ})
		want := typ
		if n > 32 {
			want = typ[:32] + "…"
		}
		if err == nil || !strings.Contains(err.Error(), `"`+want+`"`) {
			t.Errorf("unknown identity type of %d bytes: %v", n, err)
		}
	}
}

// TestSealedBlobOfMaximumSizeOpens: a sealed blob of exactly MaxSealedSize
// opens; one byte more is refused.
func TestSealedBlobOfMaximumSizeOpens(t *testing.T) {
	priv, err := NewBoxKey()
	if err != nil {
		t.Fatal(err)
	}
	probe, err := SealTo(priv.PublicKey().Bytes(), "req-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	overhead := len(probe)
	pt := bytes.Repeat([]byte("s"), MaxSealedSize-overhead)
	blob, err := SealTo(priv.PublicKey().Bytes(), "req-1", pt)
	if err != nil || len(blob) != MaxSealedSize {
		t.Fatalf("seal: %d bytes, %v", len(blob), err)
	}
	if got, err := OpenSealed(priv, "req-1", blob); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("blob of exactly MaxSealedSize: %v", err)
	}
	if _, err := OpenSealed(priv, "req-1", append(blob, 0)); err == nil {
		t.Fatal("blob over MaxSealedSize opened")
	}
}

// TestFormatPairCode: a full code gets its dash; anything else is shown
// as typed.
func TestFormatPairCode(t *testing.T) {
	c := NewPairCode()
	if got := FormatPairCode(c); got != c[:4]+"-"+c[4:] {
		t.Fatalf("FormatPairCode(%q) = %q", c, got)
	}
	if got := FormatPairCode(c[:5]); got != c[:5] {
		t.Fatalf("FormatPairCode(%q) = %q", c[:5], got)
	}
}

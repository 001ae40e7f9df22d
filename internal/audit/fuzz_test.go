package audit_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// FuzzParseCheckpoints: the checkpoint file is untrusted input (it comes
// back from wherever it was kept). Parsing never panics, and whatever it
// accepts is valid and survives a round trip through the export format.
func FuzzParseCheckpoints(f *testing.F) {
	signer := newSigner(f)
	c, err := audit.NewCheckpoint(signer, "broker-1", 1000, strings.Repeat("ab", 32), time.Unix(1_900_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	line := c.MarshalLine()
	f.Add(line)
	f.Add(append(append([]byte{}, line...), line...))
	f.Add([]byte("\n\n" + string(line) + "\n"))
	f.Add([]byte(`{"chain":"a","id":1,"row_hash":"00","time":"2026-01-01T00:00:00Z","kid":"k","signature":"AA"}`))
	f.Add([]byte(`{"chain":"a","id":-1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"chain":"a","extra":1}`))
	f.Add(bytes.Repeat([]byte("x"), 5000))
	f.Fuzz(func(t *testing.T, data []byte) {
		cks, err := audit.ParseCheckpoints(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, c := range cks {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted an invalid checkpoint %+v: %v", c, err)
			}
			again, err := audit.ParseCheckpoints(bytes.NewReader(c.MarshalLine()))
			if err != nil || len(again) != 1 || again[0].SignedMessage() == nil || !bytes.Equal(again[0].SignedMessage(), c.SignedMessage()) {
				t.Fatalf("round trip of %+v: %v", c, err)
			}
		}
	})
}

// FuzzParseExpectation: --expect-head values never panic and accepted ones
// are well formed.
func FuzzParseExpectation(f *testing.F) {
	h := strings.Repeat("0f", 32)
	for _, s := range []string{h, "broker-1=" + h, strings.ToUpper(h), "=" + h, "a=b=" + h, "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := audit.ParseExpectation(s)
		if err != nil {
			return
		}
		if len(e.Hash) != 64 || (e.Chain != "" && !audit.ValidChain(e.Chain)) {
			t.Fatalf("accepted %q as %+v", s, e)
		}
	})
}

package agentkeys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseWallet(t *testing.T) {
	w := NewWallet()
	if got, err := ParseWallet(string(w)); err != nil || got != w {
		t.Fatalf("ParseWallet(new wallet) = %q, %v", got, err)
	}
	mixed := "0X" + strings.ToUpper(string(w[2:]))
	if got, err := ParseWallet(mixed); err != nil || got != w {
		t.Fatalf("mixed case %q → %q, %v; want %q", mixed, got, err, w)
	}
	// Every hex digit in both cases, fixed (a random wallet lacks an "f"
	// one time in thirteen, so it cannot pin the ends of the ranges).
	every := "0x0123456789abcdefABCDEF0123456789abcdefAB"
	if got, err := ParseWallet(every); err != nil || string(got) != strings.ToLower(every) {
		t.Fatalf("ParseWallet(%q) = %q, %v", every, got, err)
	}
	for _, c := range "/:@G`g" { // the bytes either side of each range
		if _, err := ParseWallet("0x" + strings.Repeat("a", 39) + string(c)); err == nil {
			t.Errorf("ParseWallet accepted the digit %q", c)
		}
	}
	for _, bad := range []string{"", "0x", "0x123", string(w) + "0", "1x" + string(w[2:]), "0x" + strings.Repeat("g", 40), " " + string(w)[1:]} {
		if _, err := ParseWallet(bad); err == nil {
			t.Errorf("ParseWallet(%q) accepted", bad)
		}
	}
}

func TestTokenNeverFormatsItself(t *testing.T) {
	tok := NewToken()
	if _, err := ParseToken(tok.Reveal()); err != nil {
		t.Fatalf("fresh token rejected: %v", err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "tok", tok, "any", any(tok))
	outputs := []string{fmt.Sprint(tok), fmt.Sprintf("%v %s %+v %#v", tok, tok, tok, tok), logs.String()}
	for _, o := range outputs {
		if strings.Contains(o, tok.Reveal()) {
			t.Fatalf("token leaked through formatting: %s", o)
		}
	}
	// The wire form (JSON) is the value itself.
	raw, _ := json.Marshal(map[string]Token{"session": tok})
	if !strings.Contains(string(raw), tok.Reveal()) {
		t.Fatal("JSON encoding lost the token")
	}
	if tok.Hash() == TokenHash(tok.Reveal()) || !tok.Hash().Equal(HashSecret(tok.Reveal())) {
		t.Fatal("hash is not SHA-256 of the token")
	}
	for _, bad := range []string{"", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("z", 64)} {
		if _, err := ParseToken(bad); err == nil || strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("ParseToken(%q) = %v", bad, err)
		}
	}
}

func TestScopeAlgebra(t *testing.T) {
	s := func(ro bool, svcs ...string) *Scope {
		n, err := (&Scope{Services: svcs, ReadOnly: ro}).Normalize()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var all *Scope
	ab, a, aRO, none := s(false, "b", "a", "b"), s(false, "a"), s(true, "a"), s(false)
	if strings.Join(ab.Services, ",") != "a,b" {
		t.Fatalf("Normalize = %v, want sorted and de-duplicated", ab.Services)
	}
	cases := []struct {
		child, parent *Scope
		want          bool
	}{
		{a, ab, true}, {ab, a, false}, {a, all, true}, {all, a, false}, {all, all, true},
		{aRO, a, true}, {a, aRO, false}, {none, a, true},
	}
	for _, c := range cases {
		if got := c.child.Within(c.parent); got != c.want {
			t.Errorf("%+v Within %+v = %v, want %v", c.child, c.parent, got, c.want)
		}
	}
	if !all.Allows("x") || none.Allows("a") || !a.Allows("a") || a.Allows("b") {
		t.Fatal("Allows wrong")
	}
	if all.CanWrite() != true || aRO.CanWrite() {
		t.Fatal("CanWrite wrong")
	}
	if got := ab.Intersect(aRO); !got.ReadOnly || strings.Join(got.Services, ",") != "a" {
		t.Fatalf("Intersect = %+v", got)
	}
	if all.Intersect(all) != nil || all.Intersect(a) == nil {
		t.Fatal("Intersect with unrestricted wrong")
	}
	if got := a.Filter([]string{"a", "b"}); len(got) != 1 || got[0] != "a" {
		t.Fatalf("Filter = %v", got)
	}
	if _, err := (&Scope{Services: []string{"Open AI"}}).Normalize(); err == nil {
		t.Fatal("invalid service name accepted")
	}
}

func TestValidateService(t *testing.T) {
	for _, ok := range []string{"openrouter", "aws-prod", "a", "x_1"} {
		if err := ValidateService(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "_x", "A", "a b", "a/b", "../x", strings.Repeat("a", 65), "é"} {
		if err := ValidateService(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseWallet(f *testing.F) {
	f.Add(string(NewWallet()))
	f.Add("0x")
	f.Add("0XABCDEFabcdef0123456789abcdef0123456789ab")
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWallet(s)
		if err != nil {
			return
		}
		again, err := ParseWallet(string(w))
		if err != nil || again != w || strings.ToLower(s) != string(w) {
			t.Fatalf("ParseWallet(%q) = %q not canonical", s, w)
		}
	})
}

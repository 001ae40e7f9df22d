package agentkeys

import (
	"strings"
	"testing"
)

// TestParseIdentity pins the one identity rule the CLI, the daemon and the
// backend share; a changed row is a changed wire behaviour.
func TestParseIdentity(t *testing.T) {
	const lower = "0x00112233445566778899aabbccddeeff00112233"
	mixed := "0x00112233445566778899AaBbCcDdEeFf00112233"
	cases := []struct {
		in   string
		kind IdentityKind // "" means refused
		want string
	}{
		// wallets: 0x + 40 hex, any case, normalised to lower case
		{lower, KindWallet, lower},
		{mixed, KindWallet, lower},
		{"0X" + lower[2:], KindWallet, lower},
		{"  " + mixed + "\n", KindWallet, lower},
		{lower[:41], "", ""},                     // 39 hex digits
		{lower + "0", "", ""},                    // 41 hex digits
		{"0x" + strings.Repeat("g", 40), "", ""}, // not hex
		{"0x-office", "", ""},                    // 0x always reads as a wallet
		{"0Xdeadbeef", "", ""},
		// e-mail: exactly one @ with text on both sides, lower-cased in full
		{"Alice@Example.COM", KindEmail, "alice@example.com"},
		{" bob@example.com\t", KindEmail, "bob@example.com"},
		{"@example.com", "", ""},
		{"alice@", "", ""},
		{"a@b@c", "", ""},
		{"al ice@example.com", "", ""},
		{"x@y.eth", KindEmail, "x@y.eth"}, // @ wins over .eth
		// ENS: ends in .eth, lower-cased
		{"Vitalik.ETH", KindENS, "vitalik.eth"},
		{"x.eth", KindENS, "x.eth"},
		{".eth", "", ""},
		{"a b.eth", "", ""},
		// aliases: [a-z0-9._-], letter or digit first, at most 64, lower-cased
		{"bot", KindAlias, "bot"},
		{"Ops-Bot_1.x", KindAlias, "ops-bot_1.x"},
		{"-bot", "", ""},
		{"_bot", "", ""},
		{"b ot", "", ""},
		{"bot!", "", ""},
		{strings.Repeat("a", 64), KindAlias, strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), "", ""},
		// refused everywhere
		{"", "", ""},
		{"   ", "", ""},
		{"bot\x00", "", ""},
		{"bot\u202e", "", ""},               // bidi override
		{"alice\u2066@example.com", "", ""}, // bidi isolate
		{"bo\x07t", "", ""},
		{"\xff@example.com", "", ""},
		{strings.Repeat("a", 250) + "@b.co", "", ""}, // longer than 254
	}
	for _, c := range cases {
		got, err := ParseIdentity(c.in)
		if c.kind == "" || c.want == "" {
			if err == nil {
				t.Errorf("ParseIdentity(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseIdentity(%q): %v", c.in, err)
			continue
		}
		if got != (Identity{c.kind, c.want}) {
			t.Errorf("ParseIdentity(%q) = %v, want %s:%s", c.in, got, c.kind, c.want)
		}
		// Normalised output parses to itself, as the kind it was.
		again, err := ParseIdentityAs(got.Kind, got.Value)
		if err != nil || again != got {
			t.Errorf("ParseIdentityAs(%v) = %v, %v", got, again, err)
		}
	}
}

func TestParseIdentityAs(t *testing.T) {
	cases := []struct {
		kind  IdentityKind
		in    string
		want  string
		valid bool
	}{
		{KindAlias, "Ops.ETH", "ops.eth", true}, // an explicit alias may end in .eth
		{KindAlias, "0Xabc", "", false},
		{KindWallet, "bot", "", false},
		{KindEmail, "bot", "", false},
		{KindENS, "bot", "", false},
		{KindENS, "bot@x.eth", "", false},
		{"", "bot", "", false},
		{"Alias", "bot", "", false}, // CBOR spelling is not an HTTP kind
		{"phone", "bot", "", false},
	}
	for _, c := range cases {
		got, err := ParseIdentityAs(c.kind, c.in)
		if (err == nil) != c.valid || (c.valid && got.Value != c.want) {
			t.Errorf("ParseIdentityAs(%q, %q) = %v, %v", c.kind, c.in, got, err)
		}
	}
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"bot", "0x00112233445566778899AaBbCcDdEeFf00112233", "a@b.c", "x.eth", "\u202e", "0x", "@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if id.Value != strings.ToLower(id.Value) || id.Value != strings.TrimSpace(id.Value) || len(id.Value) > MaxIdentityLen {
			t.Fatalf("%q: not normalised: %q", s, id.Value)
		}
		again, err := ParseIdentity(id.Value)
		if err != nil || again != id {
			t.Fatalf("%q: %v does not parse to itself: %v, %v", s, id, again, err)
		}
	})
}

package agentkeys

import (
	"strings"
	"testing"
)

func TestParseAgentName(t *testing.T) {
	for _, c := range []struct {
		in, want, errPart string
	}{
		{"helper", "helper", ""},
		{"  helper ", "helper", ""},
		{"Helper", "", "lower-case letters"},
		{"ops.eth", "ops.eth", ""},
		{"my-bot_2", "my-bot_2", ""},
		{"", "", "1 to 64 characters"},
		{"-bot", "", "starting with a letter or digit"},
		{"my bot", "", "lower-case letters"},
		{"0xbot", "", "read as a wallet"},
		{"bot\u202e", "", "control character"},
		{"bot\x00", "", "NUL"},
		{strings.Repeat("a", 65), "", "1 to 64 characters"},
	} {
		got, err := ParseAgentName(c.in)
		if c.errPart == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseAgentName(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.errPart) || !strings.HasPrefix(err.Error(), "agent name") {
			t.Errorf("ParseAgentName(%q) error = %v; want one starting \"agent name\" mentioning %q", c.in, err, c.errPart)
		}
	}
}

func FuzzParseAgentName(f *testing.F) {
	for _, s := range []string{"bot", " helper", "Helper", "0xab", "a.eth", "\u202e", "", "a b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := ParseAgentName(s)
		if err != nil {
			return
		}
		if ValidAlias(name) != nil {
			t.Fatalf("%q: accepted %q, which is not an alias", s, name)
		}
		again, err := ParseAgentName(name)
		if err != nil || again != name {
			t.Fatalf("%q: %q does not parse to itself: %q, %v", s, name, again, err)
		}
		// A name always reads back as a name (alias or ENS), never as a
		// wallet or an e-mail address.
		id, err := ParseIdentity(name)
		if err != nil || (id.Kind != KindAlias && id.Kind != KindENS) {
			t.Fatalf("%q: name %q parses as identity %v, %v", s, name, id, err)
		}
	})
}

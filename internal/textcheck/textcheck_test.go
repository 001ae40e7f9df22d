package textcheck

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"", "plain", "tab\tand\nnewline", "ünïcødé ✓", "日本語", "emoji 🔑"} {
		if err := Check(ok, 100); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"nul\x00", "bad\xff", "cr\r", "esc\x1b[31m", "del\x7f", "c1\u0085", "csi\u009b", "rlo\u202e", "lre\u202a", "fsi\u2068", "pdi\u2069", strings.Repeat("a", 101)} {
		if err := Check(bad, 100); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		"evil\u202etxt.exe": `evil\u202etxt.exe`,
		"a\x00b":            `a\x00b`,
		"\x1b[2J":           `\x1b[2J`,
		"c1\u009b":          `c1\u009b`,
		"line\nnext\ttab":   `line\nnext\ttab`,
		`fake\u202e`:        `fake\\u202e`,
		"bad\xffbyte":       `bad\xffbyte`,
		"ünïcødé":           "ünïcødé",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckStrings(t *testing.T) {
	type inner struct {
		Detail string `json:"detail"`
	}
	type req struct {
		Name  string            `json:"name"`
		In    *inner            `json:"inner"`
		List  []string          `json:"list"`
		M     map[string]string `json:"m"`
		Bytes []byte            `json:"bytes"`
		any   string
	}
	if err := CheckStrings(&req{Name: "ok", In: &inner{"fine"}, List: []string{"a"}, M: map[string]string{"k": "v"}, Bytes: []byte{0, 0xff}, any: "\x00"}); err != nil {
		t.Fatal(err)
	}
	err := CheckStrings(&req{In: &inner{"x\u202e"}})
	if err == nil || !strings.HasPrefix(err.Error(), "inner.detail:") {
		t.Fatalf("err = %v", err)
	}
	for _, r := range []req{{List: []string{"\x00"}}, {M: map[string]string{"\x00": ""}}, {M: map[string]string{"": "\u2066"}}} {
		if CheckStrings(&r) == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "a\u202eb", "\x00\xff", `\u202e`, "\x1b[31mred", "\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not UTF-8", s, e)
		}
		for _, r := range e {
			if Unsafe(r) || r == '\n' || r == '\t' {
				t.Fatalf("Escape(%q) = %q keeps %U", s, e, r)
			}
		}
		if Check(s, 0) == nil && !strings.ContainsAny(s, "\\\t\n") && e != s {
			t.Fatalf("safe %q changed to %q", s, e)
		}
	})
}

func TestEscapeJSON(t *testing.T) {
	in := []byte("{\"d\":\"a\u202eb\u0085c\x7f ü\"}")
	got := string(EscapeJSON(in))
	if got != `{"d":"a\u202eb\u0085c\u007f ü"}` {
		t.Fatalf("EscapeJSON = %s", got)
	}
	var a, b map[string]string
	if json.Unmarshal(in, &a) != nil || json.Unmarshal([]byte(got), &b) != nil || a["d"] != b["d"] {
		t.Fatalf("value changed: %q vs %q", a, b)
	}
}

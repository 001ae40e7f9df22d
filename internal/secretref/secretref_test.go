package secretref

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, ok := range []struct{ in, agent, svc string }{
		{"agentkeys://bot/openrouter", "bot", "openrouter"},
		{"agentkeys://0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed/aws", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "aws"},
		{"agentkeys://me+ci@example.com/open-ai_2", "me+ci@example.com", "open-ai_2"},
	} {
		r, err := ParseRef(ok.in)
		if err != nil || r.Agent != ok.agent || r.Service != ok.svc || r.String() != ok.in {
			t.Errorf("ParseRef(%q) = %+v, %v", ok.in, r, err)
		}
	}
	for _, bad := range []string{"", "agentkeys://", "agentkeys://bot", "agentkeys:///svc", "agentkeys://bot/",
		"agentkeys://bot/Svc", "agentkeys://bot/a/b", "agentkeys://b ot/x", "agentkeys://bot/x?y", "AGENTKEYS://bot/x",
		"agentkeys://%62ot/x", " agentkeys://bot/x", "agentkeys://bot/x "} {
		if r, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", bad, r)
		}
	}
}

func TestParseDotenv(t *testing.T) {
	in := "\ufeff# a comment\n" +
		"PLAIN=hello world   # trailing comment\n" +
		"export EXPORTED = spaced\n" +
		"\n" +
		"   INDENTED=x#not-a-comment\n" +
		"EMPTY=\n" +
		"DQ=\"line1\\nline2 \\\"q\\\" \\$HOME \\\\ \\x\"  # ok\n" +
		"SQ='it is $literal \\n'\n" +
		"MULTI=\"a\nb\"\n" +
		"REF=agentkeys://bot/openrouter\r\n" +
		"DQREF=\"agentkeys://0xabc/aws\" # comment\n" +
		"SQREF='agentkeys://bot/openrouter'\n" +
		"PLAIN=again\n" +
		"LAST=no newline"
	got, err := ParseDotenv([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key, val string
		ref      bool
		line     int
	}{
		{"PLAIN", "hello world", false, 2},
		{"EXPORTED", "spaced", false, 3},
		{"INDENTED", "x#not-a-comment", false, 5},
		{"EMPTY", "", false, 6},
		{"DQ", "line1\nline2 \"q\" $HOME \\ \\x", false, 7},
		{"SQ", `it is $literal \n`, false, 8},
		{"MULTI", "a\nb", false, 9},
		{"REF", "agentkeys://bot/openrouter", true, 11},
		{"DQREF", "agentkeys://0xabc/aws", true, 12},
		{"SQREF", "agentkeys://bot/openrouter", false, 13},
		{"PLAIN", "again", false, 14},
		{"LAST", "no newline", false, 15},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Key != w.key || g.Value != w.val || (g.Ref != nil) != w.ref || g.Line != w.line {
			t.Errorf("entry %d = %+v (ref %v), want %+v", i, g, g.Ref, w)
		}
	}
	if r := got[7].Ref; r.Agent != "bot" || r.Service != "openrouter" {
		t.Errorf("REF = %+v", r)
	}
}

// TestParseDotenvErrors: each error names the line, and none shows a value.
func TestParseDotenvErrors(t *testing.T) {
	const secret = "sk-live-SECRET"
	for _, tc := range []struct{ in, want string }{
		{"OK=1\n" + secret + "\n", "line 2: expected NAME=VALUE"},
		{"1BAD=" + secret, "line 1: the name before '='"},
		{"bad-name=" + secret, "line 1: the name before '='"},
		{"K=\"" + secret, "line 1: K: unterminated double quote"},
		{"K='" + secret, "line 1: K: unterminated single quote"},
		{"\n\nK=\"" + secret + "\" trailing", "line 3: K: unexpected text after the closing quote"},
		{"K=agentkeys://bot/Open", `line 1: K: bad reference "agentkeys://bot/Open"`},
		{"K=a\x00b", "NUL"},
	} {
		_, err := ParseDotenv([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDotenv(%q) error = %v, want %q", tc.in, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the value: %v", err)
		}
	}
}

func TestParseTemplate(t *testing.T) {
	in := "url: https://x\nkey: {{ agentkeys://bot/openrouter }}\nhelm: {{ .Values.x }} and {{agentkeys://0xab/aws}}{{ agentkeys://bot/openrouter\t}}\n{{"
	segs, err := ParseTemplate([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := Render(segs, func(r Ref) []byte { return []byte("<" + r.Agent + ":" + r.Service + ">") })
	want := "url: https://x\nkey: <bot:openrouter>\nhelm: {{ .Values.x }} and <0xab:aws><bot:openrouter>\n{{"
	if string(out) != want {
		t.Fatalf("render = %q, want %q", out, want)
	}
	if refs := Refs(segs); len(refs) != 2 || refs[0].Service != "openrouter" || refs[1].Service != "aws" {
		t.Fatalf("refs = %+v", refs)
	}
	for _, tc := range []struct{ in, want string }{
		{"a\nb {{ agentkeys://bot/x\n}}", "line 2: {{ agentkeys://… is not closed"},
		{"{{ agentkeys://bot/x", "line 1"},
		{"x\n\n{{ agentkeys://bot/BAD }}", `line 3: bad reference "agentkeys://bot/BAD"`},
	} {
		if _, err := ParseTemplate([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTemplate(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestQuoteDotenvRoundTrip(t *testing.T) {
	for _, v := range []string{"", "plain", "it's", "a\nb", "x\"y$z\\w", "agentkeys://bot/x", " lead # hash", "tab\there\r\n", "é ✓"} {
		q, err := QuoteDotenv(v)
		if err != nil {
			t.Fatalf("QuoteDotenv(%q): %v", v, err)
		}
		es, err := ParseDotenv([]byte("K=" + q + "\n"))
		if err != nil || len(es) != 1 || es[0].Value != v || es[0].Ref != nil {
			t.Fatalf("QuoteDotenv(%q) = %s read back as %+v, %v", v, q, es, err)
		}
	}
	if _, err := QuoteDotenv("agentkeys://bot/x'\n"); !errors.Is(err, ErrUnrepresentable) {
		t.Fatalf("a reference-looking value with a quote: %v", err)
	}
}

// TestQuoteShellWithSh: a real sh reads every quoted value back unchanged.
func TestQuoteShellWithSh(t *testing.T) {
	vals := []string{"plain", "it's", `a"b`, "$(touch /tmp/x)`id`", "multi\nline", "back\\slash", "", "'''"}
	var script strings.Builder
	for i, v := range vals {
		script.WriteString("V" + string(rune('A'+i)) + "=" + QuoteShell(v) + "\n")
		script.WriteString(`printf '%s\0' "$V` + string(rune('A'+i)) + "\"\n")
	}
	out, err := exec.Command("sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(vals) {
		t.Fatalf("sh printed %q", out)
	}
	for i := range vals {
		if got[i] != vals[i] {
			t.Errorf("sh read %q back as %q", vals[i], got[i])
		}
	}
}

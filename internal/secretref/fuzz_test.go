package secretref

import (
	"strings"
	"testing"
)

// FuzzParseDotenv: no input panics; every entry has a valid name; a
// reference entry parses as a reference; every literal value survives
// QuoteDotenv and a second parse.
func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{
		"A=1\nB=\"x\\ny\"\nC='z'\n",
		"export K = v # c\n",
		"REF=agentkeys://bot/openrouter\n",
		"Q=\"agentkeys://0xab/aws\" # c\r\n",
		"M=\"a\nb\"\nN='c\nd'\n",
		"# only a comment",
		"K=\"unterminated",
		"=novalue\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := ParseDotenv(data)
		if err != nil {
			return
		}
		for _, e := range es {
			if !ValidEnvName(e.Key) {
				t.Fatalf("entry with invalid name %q", e.Key)
			}
			if e.Ref != nil {
				if r, err := ParseRef(e.Value); err != nil || r != *e.Ref {
					t.Fatalf("reference entry %q: %v", e.Value, err)
				}
				continue
			}
			q, err := QuoteDotenv(e.Value)
			if err != nil {
				continue
			}
			back, err := ParseDotenv([]byte(e.Key + "=" + q))
			if err != nil || len(back) != 1 || back[0].Value != e.Value || back[0].Ref != nil {
				t.Fatalf("%q quoted as %s read back as %+v, %v", e.Value, q, back, err)
			}
		}
	})
}

// FuzzParseTemplate: no input panics, and rendering each placeholder as
// written gives the template back unchanged.
func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{
		"key: {{ agentkeys://bot/openrouter }}\n",
		"{{ .Values }} {{agentkeys://0xab/aws}}",
		"{{ agentkeys://bot/x\n}}",
		"{{{{ agentkeys://a/b }}}}",
		"plain text",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		segs, err := ParseTemplate(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, g := range segs {
			if g.Ref != nil {
				if r, err := ParseRef(strings.Trim(g.Raw[2:len(g.Raw)-2], " \t")); err != nil || r != *g.Ref {
					t.Fatalf("placeholder %q: %v", g.Raw, err)
				}
				b.WriteString(g.Raw)
			} else {
				b.WriteString(g.Text)
			}
		}
		if b.String() != string(data) {
			t.Fatalf("segments do not cover the template:\n%q\n%q", b.String(), data)
		}
	})
}

// FuzzParseRef: an accepted reference prints back as itself.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"agentkeys://bot/openrouter", "agentkeys://a@b.c/x-y", "agentkeys://x", "agentkeys://x/y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err == nil && r.String() != s {
			t.Fatalf("ParseRef(%q) = %+v prints as %q", s, r, r.String())
		}
	})
}

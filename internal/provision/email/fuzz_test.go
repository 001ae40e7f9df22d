package email

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func seedEMLs(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	var out [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzParseMIME: any input parses or fails cleanly, and the result can
// be analysed.
func FuzzParseMIME(f *testing.F) {
	for _, b := range seedEMLs(f) {
		f.Add(b)
	}
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<a href=\"https://x/verify\">"))
	f.Add([]byte("Subject: =?UTF-8?B?////?=\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMIME(raw)
		if err != nil {
			return
		}
		for _, e := range []Expect{ExpectAny, ExpectOTP, ExpectLink} {
			checkAnalysis(t, Analyze(m, e))
		}
	})
}

// FuzzAnalyze: Analyze never panics and its results are well-formed.
func FuzzAnalyze(f *testing.F) {
	for _, b := range seedEMLs(f) {
		m, err := ParseMIME(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Text, m.HTML, m.Subject)
	}
	f.Add("Your code is AB12CD", "", "")
	f.Add("Your verification code is 123 456", "<style>#141415</style>", "123456 is your code")
	f.Add("", `<a href="https://click.example/c?u=https%3A%2F%2Fa.example%2Fverify%3Ftoken%3Dabc">x</a>`, "")
	f.Add("https://example.com/verify?a=1&amp;b=2&copy=3", "", "")
	f.Fuzz(func(t *testing.T, text, htmlBody, subject string) {
		m := Message{Text: text, HTML: htmlBody, Subject: subject}
		for _, e := range []Expect{ExpectAny, ExpectOTP, ExpectLink, Expect(99)} {
			checkAnalysis(t, Analyze(m, e))
		}
	})
}

func checkAnalysis(t *testing.T, a Analysis) {
	t.Helper()
	switch a.Kind {
	case KindOTP:
		if n := len(a.Code); n < 4 || n > 8 || a.URL != "" {
			t.Fatalf("bad OTP result %+v", a)
		}
		for _, r := range a.Code {
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') {
				t.Fatalf("bad code %q", a.Code)
			}
		}
	case KindLink:
		if !strings.HasPrefix(strings.ToLower(a.URL), "http") || a.Code != "" {
			t.Fatalf("bad link result %+v", a)
		}
		if _, ok := parseLinkURL(a.URL); !ok {
			t.Fatalf("link does not re-parse: %q", a.URL)
		}
	case KindUnknown:
		if a.Code != "" || a.URL != "" {
			t.Fatalf("bad unknown result %+v", a)
		}
	default:
		t.Fatalf("bad kind %q", a.Kind)
	}
	if a.Reason == "" || !utf8.ValidString(a.Reason) {
		t.Fatalf("bad reason %q", a.Reason)
	}
}

package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// wrapAt breaks s into lines of width characters (as base64 -w, xxd -p
// and fold do).
func wrapAt(s string, width int, eol string) string {
	if width <= 0 {
		return s
	}
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width])
		b.WriteString(eol)
		s = s[width:]
	}
	b.WriteString(s)
	return b.String()
}

// fullPercent is %XX of every byte.
func fullPercent(b []byte, lower bool) string {
	var s strings.Builder
	for _, c := range b {
		if lower {
			fmt.Fprintf(&s, "%%%02x", c)
		} else {
			fmt.Fprintf(&s, "%%%02X", c)
		}
	}
	return s.String()
}

// lenientUnescape decodes every %XX (and '+' as a space when plus) and
// leaves everything else: an oracle independent of the masker's views.
func lenientUnescape(s string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := hex.DecodeString(s[i+1 : i+3]); err == nil {
				b.WriteByte(v[0])
				i += 2
				continue
			}
		}
		if s[i] == '+' && plus {
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func dropEOL(s string) string { return strings.NewReplacer("\r", "", "\n", "").Replace(s) }

// pureBase64 returns the characters of enc(pre+secret+post) that depend
// on the secret alone, found by flipping every bit of pre and post and
// keeping the longest run of characters that did not change (padding
// excluded).
func pureBase64(enc *base64.Encoding, pre, secret, post []byte) string {
	flip := func(b []byte) []byte {
		o := make([]byte, len(b))
		for i, c := range b {
			o[i] = ^c
		}
		return o
	}
	join := func(a, b, c []byte) []byte { return append(append(append([]byte{}, a...), b...), c...) }
	p1 := enc.EncodeToString(join(pre, secret, post))
	p2 := enc.EncodeToString(join(flip(pre), secret, flip(post)))
	best, cur := "", 0
	for i := 0; i <= len(p1); i++ {
		if i < len(p1) && p1[i] == p2[i] && p1[i] != '=' {
			cur++
			continue
		}
		if cur > len(best) {
			best = p1[i-cur : i]
		}
		cur = 0
	}
	return best
}

// encodings of a secret as tools print them; pre and post are bytes
// encoded with it (to shift the base64 alignment).
type encoding struct {
	name string
	enc  func(pre, secret, post []byte) string
	// leaked reports whether masked output still shows the secret.
	leaked func(masked string, pre, secret, post []byte) bool
}

func b64Encoding(name string, enc *base64.Encoding) encoding {
	return encoding{name, func(pre, s, post []byte) string {
		return enc.EncodeToString(append(append(append([]byte{}, pre...), s...), post...))
	}, func(masked string, pre, s, post []byte) bool {
		p := pureBase64(enc, pre, s, post)
		return len(p) >= minPartialForm && strings.Contains(dropEOL(masked), p)
	}}
}

var maskEncodings = []encoding{
	{"raw", func(_, s, _ []byte) string { return string(s) }, func(m string, _, s, _ []byte) bool {
		return strings.Contains(m, string(s)) || (len(dropEOL(string(s))) >= minPartialForm && strings.Contains(dropEOL(m), dropEOL(string(s))))
	}},
	b64Encoding("base64", base64.StdEncoding),
	b64Encoding("base64-raw", base64.RawStdEncoding),
	b64Encoding("base64url", base64.URLEncoding),
	b64Encoding("base64url-raw", base64.RawURLEncoding),
	{"hex", func(_, s, _ []byte) string { return hex.EncodeToString(s) }, hexLeaked},
	{"HEX", func(_, s, _ []byte) string { return strings.ToUpper(hex.EncodeToString(s)) }, hexLeaked},
	{"query-escape", func(_, s, _ []byte) string { return url.QueryEscape(string(s)) }, percentLeaked},
	{"path-escape", func(_, s, _ []byte) string { return url.PathEscape(string(s)) }, percentLeaked},
	{"percent-all", func(_, s, _ []byte) string { return fullPercent(s, false) }, percentLeaked},
	{"percent-all-lower", func(_, s, _ []byte) string { return fullPercent(s, true) }, percentLeaked},
}

func hexLeaked(m string, _, s, _ []byte) bool {
	return strings.Contains(strings.ToLower(dropEOL(m)), hex.EncodeToString(s))
}

func percentLeaked(m string, _, s, _ []byte) bool {
	// Unwrapped: any length; wrapped: from minPartialForm characters.
	sj := dropEOL(string(s))
	for _, plus := range []bool{false, true} {
		if strings.Contains(lenientUnescape(m, plus), string(s)) {
			return true
		}
		if len(sj) >= minPartialForm && strings.Contains(dropEOL(lenientUnescape(dropEOL(m), plus)), sj) {
			return true
		}
	}
	return false
}

// checkMasked masks text holding the secret in encoding e (wrapped at
// width, 0 = not wrapped) and fails if the secret survives.
func checkMasked(t *testing.T, e encoding, secret, pre, post []byte, width int, eol string) {
	t.Helper()
	if bytes.ContainsRune(secret, '*') {
		return // the mask itself could rebuild such a secret
	}
	payload := wrapAt(e.enc(pre, secret, post), width, eol)
	text := "before: " + payload + eol + "after" + eol
	forms := secretForms(secret)
	defer clearForms(forms)
	got := string(maskSecret([]byte(text), forms, false))
	if e.leaked(got, pre, secret, post) {
		t.Fatalf("%s (width %d, eol %q, pre %d post %d bytes): secret %q survives in\n%s", e.name, width, eol, len(pre), len(post), secret, got)
	}
	if width == 0 && len(pre) == 0 && len(post) == 0 && !strings.Contains(got, Mask) {
		t.Fatalf("%s: nothing masked in %q", e.name, got)
	}
}

// TestMaskEncodings: every encoding, at every base64 alignment, wrapped at
// widths that tools use and odd ones, with \n and \r\n.
func TestMaskEncodings(t *testing.T) {
	for _, n := range []int{12, 33, 164} {
		secret := make([]byte, n)
		rand.Read(secret)
		// Printable secrets like real API keys, and binary ones.
		printable := []byte(base64.RawURLEncoding.EncodeToString(secret))[:n]
		printable[3] = ' ' // exercises '+' in query escaping
		for _, s := range [][]byte{printable, secret} {
			for _, e := range maskEncodings {
				for _, align := range [][2][]byte{{nil, nil}, {[]byte("u"), []byte("x")}, {[]byte("us"), []byte("xy")}, {[]byte("user:"), nil}} {
					for _, width := range []int{0, 1, 2, 3, 7, 19, 60, 64, 76} {
						for _, eol := range []string{"\n", "\r\n"} {
							checkMasked(t, e, s, align[0], align[1], width, eol)
						}
					}
				}
			}
		}
	}
}

func TestMaskKeepsCleanText(t *testing.T) {
	secret := []byte("sk-live-" + strings.Repeat("q", 4) + "0123456789abcdef")
	forms := secretForms(secret)
	for _, s := range []string{"nothing to see\n", "%41%42 + 100% sure\r\n", "deadbeef\ncafe\n", "c2stbGl2\nZS1x\n"} {
		if got := string(maskSecret([]byte(s), forms, false)); got != s {
			t.Fatalf("clean text %q changed to %q", s, got)
		}
	}
}

// BenchmarkMaskSecret: masking a full output buffer (MaxRunOutput) of
// wrapped base64 text that holds the secret once.
func BenchmarkMaskSecret(b *testing.B) {
	secret := make([]byte, 40)
	rand.Read(secret)
	filler := make([]byte, MaxRunOutput*3/4-100)
	rand.Read(filler)
	text := wrapAt(base64.StdEncoding.EncodeToString(filler)+base64.StdEncoding.EncodeToString(secret), 76, "\n")
	forms := secretForms(secret)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		maskSecret([]byte(text), forms, false)
	}
}

// Package masktest holds test oracles for the masker, independent of its
// implementation: encodings of a secret as tools print them, and whether
// masked output still shows one.
package masktest

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// MinPartialForm mirrors the masker's shortest masked fragment.
const MinPartialForm = 8

// WrapAt breaks s into lines of width characters (as base64 -w, xxd -p
// and fold do).
func WrapAt(s string, width int, eol string) string {
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

// FullPercent is %XX of every byte.
func FullPercent(b []byte, lower bool) string {
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

// LenientUnescape decodes every %XX (and '+' as a space when plus) and
// leaves everything else: an oracle independent of the masker's views.
func LenientUnescape(s string, plus bool) string {
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

func DropEOL(s string) string { return strings.NewReplacer("\r", "", "\n", "").Replace(s) }

// PureBase64 returns the characters of enc(pre+secret+post) that depend
// on the secret alone, found by flipping every bit of pre and post and
// keeping the longest run of characters that did not change (padding
// excluded).
func PureBase64(enc *base64.Encoding, pre, secret, post []byte) string {
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
type Encoding struct {
	Name string
	Enc  func(pre, secret, post []byte) string
	// leaked reports whether masked output still shows the secret.
	Leaked func(masked string, pre, secret, post []byte) bool
}

func b64Encoding(name string, enc *base64.Encoding) Encoding {
	return Encoding{name, func(pre, s, post []byte) string {
		return enc.EncodeToString(append(append(append([]byte{}, pre...), s...), post...))
	}, func(masked string, pre, s, post []byte) bool {
		p := PureBase64(enc, pre, s, post)
		return len(p) >= MinPartialForm && strings.Contains(DropEOL(masked), p)
	}}
}

var Encodings = []Encoding{
	{"raw", func(_, s, _ []byte) string { return string(s) }, func(m string, _, s, _ []byte) bool {
		return strings.Contains(m, string(s)) || (len(DropEOL(string(s))) >= MinPartialForm && strings.Contains(DropEOL(m), DropEOL(string(s))))
	}},
	b64Encoding("base64", base64.StdEncoding),
	b64Encoding("base64-raw", base64.RawStdEncoding),
	b64Encoding("base64url", base64.URLEncoding),
	b64Encoding("base64url-raw", base64.RawURLEncoding),
	{"hex", func(_, s, _ []byte) string { return hex.EncodeToString(s) }, hexLeaked},
	{"HEX", func(_, s, _ []byte) string { return strings.ToUpper(hex.EncodeToString(s)) }, hexLeaked},
	{"query-escape", func(_, s, _ []byte) string { return url.QueryEscape(string(s)) }, percentLeaked},
	{"path-escape", func(_, s, _ []byte) string { return url.PathEscape(string(s)) }, percentLeaked},
	{"percent-all", func(_, s, _ []byte) string { return FullPercent(s, false) }, percentLeaked},
	{"percent-all-lower", func(_, s, _ []byte) string { return FullPercent(s, true) }, percentLeaked},
}

func hexLeaked(m string, _, s, _ []byte) bool {
	return strings.Contains(strings.ToLower(DropEOL(m)), hex.EncodeToString(s))
}

func percentLeaked(m string, _, s, _ []byte) bool {
	// Unwrapped: any length; wrapped: from MinPartialForm characters.
	sj := DropEOL(string(s))
	for _, plus := range []bool{false, true} {
		if strings.Contains(LenientUnescape(m, plus), string(s)) {
			return true
		}
		if len(sj) >= MinPartialForm && strings.Contains(DropEOL(LenientUnescape(DropEOL(m), plus)), sj) {
			return true
		}
	}
	return false
}

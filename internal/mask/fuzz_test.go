package mask

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzMaskSecret: whatever a command prints, the masked output never
// contains the secret.
func FuzzMaskSecret(f *testing.F) {
	f.Add([]byte("sk-secret-value-1234"), []byte("before sk-secret-value-1234 after"), false)
	f.Add([]byte("abc"), []byte("abcabcab"), true)
	f.Fuzz(func(t *testing.T, secret, out []byte, truncated bool) {
		if len(secret) < 4 || len(secret) > 256 || len(out) > 4096 {
			return
		}
		forms := secretForms(secret)
		got := maskSecret(append([]byte(nil), out...), forms, truncated)
		if strings.Contains(string(got), string(secret)) && !strings.Contains(Mask, string(secret)) {
			// The mask itself could form the secret with its neighbours
			// only if the secret contains '*'.
			if !strings.Contains(string(secret), "*") {
				t.Fatalf("secret %q survives in %q", secret, got)
			}
		}
	})
}

// FuzzMaskEncodings: for random secrets, base64 alignments and wrap
// widths, no masktest.Encoding the masker claims to catch (raw, base64 standard and
// URL-safe with and without padding, hex either case, percent-masktest.Encoding in
// the QueryEscape, PathEscape and %XX forms) survives masking.
func FuzzMaskEncodings(f *testing.F) {
	f.Add([]byte("sk-or-v1-0123456789abcdef"), []byte{}, []byte{}, uint8(76), false)
	f.Add([]byte("a b+c/d=e%f\ng"), []byte("u"), []byte("xy"), uint8(7), true)
	f.Add(bytes.Repeat([]byte{0xff}, 40), []byte("us"), []byte("z"), uint8(1), false)
	f.Fuzz(func(t *testing.T, secret, pre, post []byte, width uint8, crlf bool) {
		if len(secret) < 4 || len(secret) > 256 || len(pre) > 8 || len(post) > 8 {
			return
		}
		eol := "\n"
		if crlf {
			eol = "\r\n"
		}
		for _, e := range maskEncodings {
			checkMasked(t, e, secret, pre, post, int(width%100), eol)
		}
	})
}

// FuzzWriter: whatever a child prints, in whatever pieces, the streaming
// Writer's output never contains the secret, and its output equals the
// input when nothing was masked.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("sk-secret-value-1234"), []byte("before sk-secret-value-1234 after"), []byte{3, 9, 1})
	f.Add([]byte("abcdefgh"), []byte("YWJjZGVm\nZ2g=\n"), []byte{5})
	f.Fuzz(func(t *testing.T, secret, out, cuts []byte) {
		if len(secret) < 4 || len(secret) > 128 || len(out) > 4096 || bytes.ContainsRune(secret, '*') {
			return
		}
		var got bytes.Buffer
		w := NewWriter(&got, [][]byte{secret}, time.Hour)
		rest := out
		for _, c := range cuts {
			n := min(int(c), len(rest))
			w.Write(rest[:n])
			rest = rest[n:]
		}
		w.Write(rest)
		w.Close()
		if bytes.Contains(got.Bytes(), secret) {
			t.Fatalf("secret %q survives in %q", secret, got.Bytes())
		}
		if !bytes.Contains(got.Bytes(), []byte(Mask)) && !bytes.Equal(got.Bytes(), out) {
			t.Fatalf("unmasked output changed: %q -> %q", out, got.Bytes())
		}
	})
}

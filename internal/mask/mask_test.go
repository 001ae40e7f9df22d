package mask

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"github.com/agentkeys/agentkeys/internal/mask/masktest"
	"strings"
	"testing"
)

var (
	wrapAt        = masktest.WrapAt
	maskEncodings = masktest.Encodings
)

// checkMasked masks text holding the secret in encoding e (wrapped at
// width, 0 = not wrapped) and fails if the secret survives.
func checkMasked(t *testing.T, e masktest.Encoding, secret, pre, post []byte, width int, eol string) {
	t.Helper()
	if bytes.ContainsRune(secret, '*') {
		return // the mask itself could rebuild such a secret
	}
	payload := wrapAt(e.Enc(pre, secret, post), width, eol)
	text := "before: " + payload + eol + "after" + eol
	forms := secretForms(secret)
	defer clearForms(forms)
	got := string(maskSecret([]byte(text), forms, false))
	if e.Leaked(got, pre, secret, post) {
		t.Fatalf("%s (width %d, eol %q, pre %d post %d bytes): secret %q survives in\n%s", e.Name, width, eol, len(pre), len(post), secret, got)
	}
	if width == 0 && len(pre) == 0 && len(post) == 0 && !strings.Contains(got, Mask) {
		t.Fatalf("%s: nothing masked in %q", e.Name, got)
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

// BenchmarkMaskSecret: masking a full output buffer (1 MiB, as run_with_credential collects) of
// wrapped base64 text that holds the secret once.
func BenchmarkMaskSecret(b *testing.B) {
	secret := make([]byte, 40)
	rand.Read(secret)
	filler := make([]byte, (1<<20)*3/4-100)
	rand.Read(filler)
	text := wrapAt(base64.StdEncoding.EncodeToString(filler)+base64.StdEncoding.EncodeToString(secret), 76, "\n")
	forms := secretForms(secret)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		maskSecret([]byte(text), forms, false)
	}
}

// TestMaskSecretSeveralSecrets: with the forms of several secrets in one
// list (as the daemon passes them for a command that got several), every
// secret is masked, verbatim and wrapped, not only the last one listed.
func TestMaskSecretSeveralSecrets(t *testing.T) {
	s1, s2 := []byte("sk-first-0123456789abcdef"), []byte("sk-second-fedcba9876543210")
	forms := append(secretForms(s1), secretForms(s2)...)
	for _, out := range []string{
		"a " + string(s1) + " b " + string(s2) + "\n",
		"a " + string(s1[:9]) + "\n" + string(s1[9:]) + " b " + string(s2[:5]) + "\r\n" + string(s2[5:]) + "\n",
	} {
		got := string(maskSecret([]byte(out), forms, false))
		for _, s := range [][]byte{s1, s2} {
			if strings.Contains(masktest.DropEOL(got), string(s)) {
				t.Fatalf("%q survives in %q", s, got)
			}
		}
	}
}

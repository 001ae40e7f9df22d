package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/mask/masktest"
)

// randomSecret returns a secret of one of the kinds the masker meets:
// printable API keys (some with a space, some with a line break, some
// upper-case hex), and binary ones.
func randomSecret(r *mrand.Rand) []byte {
	n := 8 + r.IntN(60)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	switch r.IntN(5) {
	case 0:
		return b
	case 1:
		return []byte(strings.ToUpper(hex.EncodeToString(b))[:n])
	default:
		s := []byte(base64.RawURLEncoding.EncodeToString(b)[:n])
		switch r.IntN(4) {
		case 0:
			s[r.IntN(n)] = ' '
		case 1:
			s[1+r.IntN(n-2)] = '\n'
		}
		if bytes.ContainsRune(s, '*') {
			return randomSecret(r)
		}
		return s
	}
}

// noise is output around the secrets: text lines of random widths, base64
// and hex runs (the alphabets the forms use), percent escapes and '+'.
func noise(r *mrand.Rand, n int) []byte {
	const alphabets = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=-_"
	var b []byte
	width := 1 + r.IntN(120)
	escapes := 40 + r.IntN(2)*4000 // some outputs have few escapes
	for len(b) < n {
		switch r.IntN(escapes) {
		case 0:
			b = append(b, '\n')
		case 1:
			b = append(b, "\r\n"...)
		case 2:
			b = append(b, "\n\n"...)
		case 3:
			b = append(b, url.QueryEscape(string(rune(0x20+r.IntN(200))))...)
		case 4:
			width = 1 + r.IntN(120)
		default:
			if len(b) > 0 && (len(b)+1)%width == 0 {
				b = append(b, '\n')
			}
			b = append(b, alphabets[r.IntN(len(alphabets))])
		}
	}
	return b
}

// randomOutput is noise with forms of the secrets in it: every encoding
// masktest knows, at any base64 alignment, wrapped at any width, in any
// case; sometimes a form's prefix ends it.
func randomOutput(r *mrand.Rand, secrets [][]byte, n int) []byte {
	out := noise(r, r.IntN(n))
	for range r.IntN(4) {
		s := secrets[r.IntN(len(secrets))]
		e := masktest.Encodings[r.IntN(len(masktest.Encodings))]
		pre, post := make([]byte, r.IntN(3)), make([]byte, r.IntN(3))
		for i := range pre {
			pre[i] = byte('a' + r.IntN(26))
		}
		form := e.Enc(pre, s, post)
		if r.IntN(3) == 0 {
			eol := []string{"\n", "\r\n", "\n\n"}[r.IntN(3)]
			form = masktest.WrapAt(form, 1+r.IntN(80), eol)
		}
		if e.Name == "hex" && r.IntN(2) == 0 {
			b := []byte(form)
			for i := range b {
				if r.IntN(2) == 0 {
					b[i] = bytes.ToUpper(b[i : i+1])[0]
				}
			}
			form = string(b)
		}
		out = append(out, form...)
		out = append(out, noise(r, r.IntN(n))...)
	}
	if r.IntN(4) == 0 {
		s := secrets[r.IntN(len(secrets))]
		form := masktest.Encodings[r.IntN(len(masktest.Encodings))].Enc(nil, s, nil)
		out = append(out, form[:r.IntN(len(form))]...)
	}
	return out
}

// TestFindSpansMatchesScan: the prefiltered search masks exactly what the
// exact scan of the whole output masks, for random secrets (one or two)
// and outputs, truncated or not; and it does use its windows (not a
// fallback to the exact scan) on most of them.
func TestFindSpansMatchesScan(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 6))
	windowed := 0
	const rounds = 400
	for round := range rounds {
		secrets := [][]byte{randomSecret(r)}
		if r.IntN(3) == 0 {
			secrets = append(secrets, randomSecret(r))
		}
		var forms []Form
		for _, s := range secrets {
			forms = append(forms, secretForms(s)...)
		}
		out := randomOutput(r, secrets, 4000)
		truncated := r.IntN(2) == 0
		m := newMatcher(forms)
		if _, ok := m.windows(out, truncated); ok {
			windowed++
		}
		got := applySpans(out, m.findPrefiltered(nil, out, truncated))
		want := applySpans(out, scanSpans(nil, out, forms, truncated))
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d: secrets %q, truncated %v: %s", round, secrets, truncated, firstDiff(got, want))
		}
	}
	if windowed < rounds/2 {
		t.Fatalf("only %d of %d outputs searched through windows", windowed, rounds)
	}
}

// firstDiff shows where two masked outputs part.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("from byte %d:\nprefiltered %q\nexact       %q", from, got[from:min(len(got), i+80)], want[from:min(len(want), i+80)])
}

// FuzzFindSpans: the same, for outputs the fuzzer picks.
func FuzzFindSpans(f *testing.F) {
	f.Add([]byte("sk-live-0123\n456789"), []byte("x sk-live-0123456789 %73k-live-0123456789 c2stbGl2ZS0wMTIzNDU2Nzg5\n"), true)
	f.Add([]byte("a b c d e f g"), []byte("a+b+c+d+e+f+g a%20b%20c%20d%20e%20f%20g"), false)
	f.Fuzz(func(t *testing.T, secret, out []byte, truncated bool) {
		if len(secret) < 1 || len(secret) > 64 || len(out) > 8192 {
			return
		}
		forms := secretForms(secret)
		got := applySpans(out, newMatcher(forms).findPrefiltered(nil, out, truncated))
		want := applySpans(out, scanSpans(nil, out, forms, truncated))
		if !bytes.Equal(got, want) {
			t.Fatal(firstDiff(got, want))
		}
	})
}

// filler is clean text: long lines of letters no form here uses.
func filler(n int) []byte {
	b := bytes.Repeat([]byte("xyz .,;"), n/7+1)[:n]
	for i := 79; i < n; i += 80 {
		b[i] = '\n'
	}
	return b
}

// TestPrefilterEveryOffset: a form that only the joined view shows (the
// secret has a line break; hex in upper case) is masked at every offset of
// a long output, whole or split by a line break at every point, so no
// sampled run or seam is skipped.
func TestPrefilterEveryOffset(t *testing.T) {
	secret := []byte("sk-live-Qw3\nrTy7uIo9pAs")
	joined := dropBreaks(secret)
	forms := secretForms(secret)
	m := newMatcher(forms)
	m.prepare()
	if m.step != len(joined)-gramLen+1 {
		t.Fatalf("step %d for a shortest form of %d", m.step, len(joined))
	}
	for _, form := range []string{string(joined), strings.ToUpper(hex.EncodeToString(secret))} {
		for _, eol := range []string{"", "\n", "\r\n", "\n\n\r\n"} {
			splits := []int{0}
			if eol != "" {
				splits = splits[:0]
				for k := 1; k < len(form); k++ {
					splits = append(splits, k)
				}
			}
			for _, k := range splits {
				shown := form[:k] + eol + form[k:]
				for off := 0; off <= 2*m.step+1; off++ {
					for _, tail := range []int{0, 1, 3 * m.reach} {
						out := append(append(filler(1000+off), shown...), filler(tail)...)
						if _, ok := m.windows(out, false); !ok {
							t.Fatalf("offset %d: no windows", off)
						}
						got := applySpans(out, m.findPrefiltered(nil, out, false))
						if bytes.Contains(got, []byte(form[:k])) && bytes.Contains(got, []byte(form[k:])) && !bytes.Contains(got, []byte(Mask)) {
							t.Fatalf("form %q split at %d by %q, offset %d, tail %d: not masked", form, k, eol, off, tail)
						}
						if want := applySpans(out, scanSpans(nil, out, forms, false)); !bytes.Equal(got, want) {
							t.Fatalf("form %q split at %d by %q, offset %d, tail %d:\ngot  %q\nwant %q", form, k, eol, off, tail, got, want)
						}
					}
				}
			}
		}
	}
}

// TestFoldGram: foldGram lower-cases ASCII letters and leaves every other
// byte, in each of its places.
func TestFoldGram(t *testing.T) {
	for c := range 256 {
		want := byte(c)
		if 'A' <= c && c <= 'Z' {
			want = byte(c) + 'a' - 'A'
		}
		for at := range gramLen {
			b := []byte("01234567")
			b[at] = byte(c)
			w := []byte("01234567")
			w[at] = want
			if got, wantN := foldGram(b), foldGram(w); got != wantN || got>>(8*at)&0xff != uint64(want) {
				t.Fatalf("foldGram of %q: byte %d is %#x, want %#x", b, at, got>>(8*at)&0xff, want)
			}
		}
	}
	if foldGram([]byte("AbZz\xc1\xdaQ~")) != foldGram([]byte("abzz\xc1\xdaq~")) || foldGram([]byte("@[`{@[`{")) == foldGram([]byte("`{@[`{@[")) {
		t.Fatal("foldGram folds the wrong bytes")
	}
}

// TestGramSet: a set holds what was put in it (the zero gram and grams
// that share a slot too) and nothing else.
func TestGramSet(t *testing.T) {
	r := mrand.New(mrand.NewPCG(7, 8))
	in := []uint64{0}
	for range 500 {
		in = append(in, r.Uint64())
	}
	s := newGramSet(in[1:])
	if s.has(0) {
		t.Fatal("the zero gram was not added but is in the set")
	}
	s = newGramSet(in)
	for _, g := range in {
		if !s.has(g) {
			t.Fatalf("%#x missing", g)
		}
	}
	for range 10000 {
		g := r.Uint64()
		if s.has(g) != slices.Contains(in, g) {
			t.Fatalf("%#x: has %v", g, s.has(g))
		}
	}
	if len(s.slots) < 2*len(in) {
		t.Fatalf("%d slots for %d grams", len(s.slots), len(in))
	}
}

// BenchmarkMask: the cost per MB of finding a secret's forms in 1 MiB of
// output of three kinds (server-sent events in 1 KiB lines, log lines of
// 80 bytes, base64 wrapped at 76 columns), each holding the secret once
// (hex), with the prefilter and with the exact scan of the whole output it
// replaces: compare the two within one run.
func BenchmarkMask(b *testing.B) {
	secret := []byte("sk-test-0123456789abcdef0123456789abcdef")
	sse := bytes.Repeat([]byte("data: "+strings.Repeat("x", 1017)+"\n\n"), 1<<10)
	logs := bytes.Repeat([]byte("2026-01-01T00:00:00Z INFO request served path=/v1/chat status=200 bytes=1234\n"), (1<<20)/80)
	raw := make([]byte, (1<<20)*3/4)
	r := mrand.New(mrand.NewPCG(1, 1))
	for i := range raw {
		raw[i] = byte(r.UintN(256))
	}
	wrapped := []byte(masktest.WrapAt(base64.StdEncoding.EncodeToString(raw), 76, "\n"))
	forms := secretForms(secret)
	for _, kind := range []struct {
		name string
		out  []byte
	}{{"sse", sse}, {"logs", logs}, {"base64", wrapped}} {
		out := append(bytes.Clone(kind.out[:len(kind.out)/2]), hex.EncodeToString(secret)...)
		out = append(out, kind.out[len(kind.out)/2:]...)
		for _, way := range []struct {
			name string
			find func([]byte) []span
		}{
			{"prefiltered", func(o []byte) []span { return findSpans(nil, o, forms, false) }},
			{"exact", func(o []byte) []span { return scanSpans(nil, o, forms, false) }},
		} {
			b.Run(kind.name+"/"+way.name, func(b *testing.B) {
				b.SetBytes(int64(len(out)))
				for b.Loop() {
					if len(way.find(out)) == 0 {
						b.Fatal("secret not found")
					}
				}
			})
		}
	}
}

// TestPrefilterWrappedLetters: hex of letters only (upper case), wrapped so
// narrowly that no line holds a run of gramLen characters: only the line
// breaks' seams, tested case-insensitively, find it.
func TestPrefilterWrappedLetters(t *testing.T) {
	for _, b := range []byte{0xab, 0xfe, 0xcd} {
		secret := bytes.Repeat([]byte{b}, 12)
		forms := secretForms(secret)
		form := strings.ToUpper(hex.EncodeToString(secret))
		for width := 1; width < gramLen; width++ {
			for _, eol := range []string{"\n", "\r\n"} {
				out := append(filler(2000), masktest.WrapAt(form, width, eol)...)
				out = append(out, filler(300)...)
				got := applySpans(out, newMatcher(forms).findPrefiltered(nil, out, false))
				if want := applySpans(out, scanSpans(nil, out, forms, false)); !bytes.Equal(got, want) || bytes.Equal(got, out) {
					t.Fatalf("%q wrapped at %d by %q: %s", form, width, eol, firstDiff(got, want))
				}
			}
		}
	}
}

// TestPrefilterShortSecrets: secrets too short to sample (some forms under
// minPartialForm) are found by the exact scan of the whole output.
func TestPrefilterShortSecrets(t *testing.T) {
	r := mrand.New(mrand.NewPCG(11, 12))
	for n := 1; n <= minPartialForm+1; n++ {
		secret := []byte(base64.RawURLEncoding.EncodeToString([]byte("0123456789"))[:n])
		forms := secretForms(secret)
		m := newMatcher(forms)
		m.prepare()
		if (m.step == 0) != (n < minPartialForm) {
			t.Fatalf("secret of %d bytes: step %d", n, m.step)
		}
		for range 20 {
			out := randomOutput(r, [][]byte{secret}, 3000)
			got := applySpans(out, m.findPrefiltered(nil, out, false))
			if want := applySpans(out, scanSpans(nil, out, forms, false)); !bytes.Equal(got, want) {
				t.Fatalf("secret %q: %s", secret, firstDiff(got, want))
			}
		}
	}
}

// TestPrefilterPrefixAfterForm: in a truncated output, a form followed
// (after a gap of any length) by a prefix of a form that does not end the
// output masks the form only, wherever the windows around the form end:
// only the window that ends the output looks for a cut form's prefix.
func TestPrefilterPrefixAfterForm(t *testing.T) {
	secret := []byte("sk-live-Qw3rTy7uIo9pAs")
	forms := secretForms(secret)
	m := newMatcher(forms)
	m.prepare()
	form := hex.EncodeToString(secret)
	for off := 0; off < m.step; off++ {
		for gap := 1; gap <= m.reach; gap++ {
			for j := minPartialForm; j < minPartialForm+3; j++ {
				out := append(filler(1000+off), form...)
				out = append(out, filler(gap)...)
				out = append(out, form[:j]...)
				out = append(out, filler(500)...)
				got := applySpans(out, m.findPrefiltered(nil, out, true))
				if want := applySpans(out, scanSpans(nil, out, forms, true)); !bytes.Equal(got, want) {
					t.Fatalf("offset %d, gap %d, prefix %d: %s", off, gap, j, firstDiff(got, want))
				}
			}
		}
	}
}

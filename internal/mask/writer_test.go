package mask

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/mask/masktest"
)

// writeSplit writes text to a Writer in pieces cut at random points.
func writeSplit(t testing.TB, w io.Writer, text []byte, r *mrand.Rand) {
	for len(text) > 0 {
		n := min(len(text), 1+r.IntN(200))
		if r.IntN(50) == 0 {
			n = min(len(text), chunk+r.IntN(chunk))
		}
		if _, err := w.Write(text[:n]); err != nil {
			t.Fatal(err)
		}
		text = text[n:]
	}
}

// TestWriterMasksSplitForms: every encoding of two secrets, wrapped or
// not, spread over a stream larger than a chunk and written in random
// pieces, leaves the Writer masked.
func TestWriterMasksSplitForms(t *testing.T) {
	s1 := make([]byte, 48)
	rand.Read(s1)
	s2 := []byte(base64.RawURLEncoding.EncodeToString(s1)[:40])
	s2[5] = ' '
	r := mrand.New(mrand.NewPCG(1, 2))
	for _, width := range []int{0, 1, 76} {
		for _, eol := range []string{"\n", "\r\n"} {
			var text bytes.Buffer
			filler := make([]byte, 3*chunk)
			for i := range filler {
				filler[i] = 'a' + byte(i%26)
				if i%80 == 79 {
					filler[i] = '\n'
				}
			}
			for _, e := range masktest.Encodings {
				for _, s := range [][]byte{s1, s2} {
					text.Write(filler[:r.IntN(len(filler))])
					text.WriteString(masktest.WrapAt(e.Enc(nil, s, nil), width, eol))
					text.WriteString(eol)
				}
			}
			var out bytes.Buffer
			w := NewWriter(&out, [][]byte{s1, s2}, time.Hour)
			writeSplit(t, w, text.Bytes(), r)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			for _, e := range masktest.Encodings {
				for _, s := range [][]byte{s1, s2} {
					if e.Leaked(out.String(), nil, s, nil) {
						t.Fatalf("width %d eol %q: %s form survives", width, eol, e.Name)
					}
				}
			}
			if !strings.Contains(out.String(), Mask) {
				t.Fatal("nothing masked")
			}
		}
	}
}

// TestWriterKeepsCleanText: text without a secret passes unchanged,
// whatever the write sizes.
func TestWriterKeepsCleanText(t *testing.T) {
	text := make([]byte, 5*chunk)
	rand.Read(text)
	secret := []byte("sk-live-0123456789abcdef")
	text = bytes.ReplaceAll(text, secret[:4], []byte("xxxx"))
	var out bytes.Buffer
	w := NewWriter(&out, [][]byte{secret}, time.Hour)
	writeSplit(t, w, text, mrand.New(mrand.NewPCG(3, 4)))
	w.Close()
	if !bytes.Equal(out.Bytes(), text) {
		t.Fatal("clean text changed")
	}
}

// chanWriter reports every write on a channel.
type chanWriter chan []byte

func (c chanWriter) Write(p []byte) (int, error) {
	c <- bytes.Clone(p)
	return len(p), nil
}

// TestWriterFlushesWhenIdle: a partial line (shorter than the hold-back)
// reaches the reader after the idle time, without a Flush; a secret's
// prefix at the end of it is masked.
func TestWriterFlushesWhenIdle(t *testing.T) {
	secret := []byte("sk-live-" + hex.EncodeToString([]byte("0123456789")))
	c := make(chanWriter, 4)
	w := NewWriter(c, [][]byte{secret}, 50*time.Millisecond)
	defer w.Close()
	start := time.Now()
	w.Write([]byte("Password: "))
	select {
	case got := <-c:
		if string(got) != "Password: " {
			t.Fatalf("flushed %q", got)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("flushed after %v, before the idle time", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("partial line never flushed")
	}
	w.Write([]byte("key " + url.QueryEscape(string(secret[:12]))))
	if got := <-c; strings.Contains(string(got), string(secret[:12])) || !strings.Contains(string(got), Mask) {
		t.Fatalf("idle flush shows a secret prefix: %q", got)
	}
}

// TestWriterNoSecretsPassesThrough: with no secret, writes go straight
// through.
func TestWriterNoSecretsPassesThrough(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, [][]byte{nil}, 0)
	w.Write([]byte("abc"))
	if out.String() != "abc" {
		t.Fatalf("got %q", out.String())
	}
}

// BenchmarkRunMasking: 100 MB of child-like output (text lines, a secret
// in a few of them) through the streaming Writer in 32 KiB writes, as
// `agentkeys run` copies a child's pipe.
func BenchmarkRunMasking(b *testing.B) {
	secret := []byte("sk-or-v1-" + strings.Repeat("0123456789abcdef", 4))
	line := []byte("2026-01-01T00:00:00Z INFO request served path=/v1/chat status=200 bytes=1234\n")
	block := bytes.Repeat(line, (32<<10)/len(line))
	leak := append(bytes.Clone(block[:len(block)-200]), []byte(" key="+string(secret)+"\n")...)
	const total = 100 << 20
	b.SetBytes(total)
	for b.Loop() {
		w := NewWriter(io.Discard, [][]byte{secret}, time.Hour)
		for n, i := 0, 0; n < total; i++ {
			p := block
			if i%100 == 0 {
				p = leak
			}
			w.Write(p)
			n += len(p)
		}
		w.Close()
	}
}

// BenchmarkRunNoMasking is the same copy without masking, the baseline.
func BenchmarkRunNoMasking(b *testing.B) {
	line := []byte("2026-01-01T00:00:00Z INFO request served path=/v1/chat status=200 bytes=1234\n")
	block := bytes.Repeat(line, (32<<10)/len(line))
	const total = 100 << 20
	b.SetBytes(total)
	for b.Loop() {
		for n := 0; n < total; n += len(block) {
			io.Discard.Write(block)
		}
	}
}

// TestWriterRandomChunkings: for random secrets (one or two) and outputs
// of several chunks holding every encoding of them at random places,
// wrapped or not, written in random pieces, no encoding survives in what
// the Writer passes on, and it masks exactly what masking the whole output
// at once masks.
func TestWriterRandomChunkings(t *testing.T) {
	r := mrand.New(mrand.NewPCG(9, 10))
	for round := range 8 {
		secrets := [][]byte{randomSecret(r)}
		if r.IntN(2) == 0 {
			secrets = append(secrets, randomSecret(r))
		}
		var text []byte
		for len(text) < 3*chunk {
			text = append(text, noise(r, r.IntN(chunk))...)
			s := secrets[r.IntN(len(secrets))]
			e := masktest.Encodings[r.IntN(len(masktest.Encodings))]
			width := []int{0, 0, 1, 7, 64, 76}[r.IntN(6)]
			eol := []string{"\n", "\r\n"}[r.IntN(2)]
			text = append(text, masktest.WrapAt(e.Enc(nil, s, nil), width, eol)...)
			text = append(text, eol...)
		}
		var out bytes.Buffer
		w := NewWriter(&out, secrets, time.Hour)
		writeSplit(t, w, text, r)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, e := range masktest.Encodings {
			for _, s := range secrets {
				if e.Leaked(out.String(), nil, s, nil) {
					t.Fatalf("round %d: %s form of %q survives", round, e.Name, s)
				}
			}
		}
		var forms []Form
		for _, s := range secrets {
			forms = append(forms, secretForms(s)...)
		}
		if want := maskSecret(bytes.Clone(text), forms, false); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("round %d: the Writer masked otherwise than the whole output: %s", round, firstDiff(out.Bytes(), want))
		}
	}
}

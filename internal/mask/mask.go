// Package mask hides secrets in command output: the daemon's
// run_with_credential masks a whole collected buffer (Secret), `agentkeys
// run` masks the child's output as it streams (Writer).
package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"sort"
)

// Mask is what replaces a secret in command output.
const Mask = "****"

// minPartialForm is the shortest secret-derived fragment masked when it
// is cut by truncation or base64 alignment, or found only after joining
// lines (shorter ones would mask ordinary text).
const minPartialForm = 8

// formKind says which views of the output a form is searched in.
type formKind uint8

const (
	formRaw formKind = iota // the secret itself
	formEnc                 // base64 (standard or URL-safe, any alignment)
	formHex                 // lower-case hex (searched case-insensitively)
)

// Form is one byte string that reveals the secret.
type Form struct {
	b    []byte
	kind formKind
}

// secretForms returns the byte strings that reveal secret: the secret
// itself; its standard and URL-safe base64, padded and not, and, at each of
// the three byte alignments (as when the secret is encoded after a prefix,
// e.g. "user:secret", or followed by more data), the part of the encoding
// that depends on the secret's bytes alone; and its hex. Percent-encoded
// and line-wrapped forms are not listed: maskSecret finds them by decoding
// and joining the output.
func secretForms(secret []byte) []Form {
	if len(secret) == 0 {
		return nil
	}
	forms := []Form{{bytes.Clone(secret), formRaw}}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		full := []byte(enc.EncodeToString(secret))
		forms = append(forms, Form{full, formEnc}, Form{bytes.Clone(bytes.TrimRight(full, "=")), formEnc})
		raw := enc.WithPadding(base64.NoPadding)
		for k := 0; k <= 2; k++ {
			pre := append(make([]byte, k), secret...)
			e := []byte(raw.EncodeToString(pre))
			clear(pre)
			// The first characters mix in the k prefix bytes (none, the
			// second, the third character); of a final partial quantum
			// only the characters before the last depend on our bytes
			// alone.
			start := []int{0, 2, 3}[k]
			m := len(pre)
			end := 4*(m/3) + m%3
			if end-start >= minPartialForm {
				forms = append(forms, Form{bytes.Clone(e[start:end]), formEnc})
			}
			// When the secret ends the encoded data, the last character
			// is its own (zero bits fill it), with or without padding.
			if k > 0 && len(e)-start >= minPartialForm {
				tail := e[start:]
				forms = append(forms, Form{bytes.Clone(tail), formEnc})
				if pad := (4 - len(e)%4) % 4; pad > 0 {
					forms = append(forms, Form{append(bytes.Clone(tail), "=="[:pad]...), formEnc})
				}
			}
			clear(e)
		}
	}
	forms = append(forms, Form{[]byte(hex.EncodeToString(secret)), formHex})
	slices.SortStableFunc(forms, func(a, b Form) int { return len(b.b) - len(a.b) })
	return slices.CompactFunc(forms, func(a, b Form) bool { return a.kind == b.kind && bytes.Equal(a.b, b.b) })
}

// Forms returns the byte strings that reveal secret (see secretForms).
func Forms(secret []byte) []Form { return secretForms(secret) }

// Secret masks every form of one secret in out (see maskSecret).
func Secret(out []byte, forms []Form, truncated bool) []byte {
	return maskSecret(out, forms, truncated)
}

// Clear zeroes the forms' bytes.
func Clear(forms []Form) { clearForms(forms) }

// clearForms zeroes the forms' bytes.
func clearForms(forms []Form) {
	for _, f := range forms {
		clear(f.b)
	}
}

// view is a transformation of the output: b[i] stands for the original
// bytes [start[i], end[i]) (nil start and end: b is the output itself).
// owned views hold a copy of output bytes that clear zeroes.
type view struct {
	b          []byte
	start, end []int32
	// segs, when start is nil, maps runs of b to the output: b[i] for
	// segs[k].at <= i < segs[k+1].at is output byte segs[k].orig+i-at
	// (the joined output: one run per line, no per-byte tables).
	segs  []seg
	owned bool
}

type seg struct{ at, orig int32 }

func (v view) s(i int) int32 {
	if v.start == nil {
		if v.segs != nil {
			k := sort.Search(len(v.segs), func(k int) bool { return v.segs[k].at > int32(i) }) - 1
			return v.segs[k].orig + int32(i) - v.segs[k].at
		}
		return int32(i)
	}
	return v.start[i]
}

func (v view) e(i int) int32 {
	if v.end == nil {
		return v.s(i) + 1
	}
	return v.end[i]
}

func identityView(out []byte) view { return view{b: out} }

// joined drops every line break, so that text wrapped at any width (base64
// -w N, xxd -p, fold, PEM/MIME at 64 or 76 columns, with \n or \r\n) reads
// as one line.
func (v view) joined() view {
	if !bytes.ContainsAny(v.b, "\r\n") {
		v.owned = false
		return v
	}
	n := 0
	if v.start == nil && v.segs == nil {
		// Fast path for the output itself: copy each line at once and
		// note where it came from.
		w := view{b: make([]byte, len(v.b)), owned: true}
		rest := v.b
		off := 0
		for len(rest) > 0 {
			k := bytes.IndexAny(rest, "\r\n")
			if k < 0 {
				k = len(rest)
			}
			if k > 0 {
				w.segs = append(w.segs, seg{at: int32(n), orig: int32(off)})
			}
			copy(w.b[n:], rest[:k])
			n += k
			if k < len(rest) {
				k++
			}
			rest, off = rest[k:], off+k
		}
		w.b = w.b[:n]
		if w.segs == nil {
			w.segs = []seg{{}}
		}
		return w
	}
	w := view{b: make([]byte, len(v.b)), start: make([]int32, len(v.b)), end: make([]int32, len(v.b)), owned: true}
	{
		for i, c := range v.b {
			if c == '\n' || c == '\r' {
				continue
			}
			w.b[n], w.start[n], w.end[n] = c, v.s(i), v.e(i)
			n++
		}
	}
	w.b, w.start, w.end = w.b[:n], w.start[:n], w.end[:n]
	return w
}

// lower folds ASCII letters, for case-insensitive hex (byte for byte:
// bytes.ToLower would rewrite invalid UTF-8 and shift positions).
func (v view) lower() view {
	b := make([]byte, len(v.b))
	for i, c := range v.b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	v.b, v.owned = b, true
	return v
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecoded decodes every %XX (either case), and '+' as a space when
// plus is set (query-string form). Anything else stays as it is.
func (v view) percentDecoded(plus bool) view {
	w := view{b: make([]byte, 0, len(v.b)), start: make([]int32, 0, len(v.b)), end: make([]int32, 0, len(v.b)), owned: true}
	for i := 0; i < len(v.b); i++ {
		c, s, e := v.b[i], v.s(i), v.e(i)
		if c == '%' && i+2 < len(v.b) {
			if h, ok := unhex(v.b[i+1]); ok {
				if l, ok := unhex(v.b[i+2]); ok {
					c, e = h<<4|l, v.e(i+2)
					i += 2
				}
			}
		} else if c == '+' && plus {
			c = ' '
		}
		w.b, w.start, w.end = append(w.b, c), append(w.start, s), append(w.end, e)
	}
	return w
}

func (v view) clear() {
	if v.owned {
		clear(v.b)
	}
}

type span struct{ s, e int32 }

// find appends the original spans of every occurrence of f in v and, if
// truncated, of a prefix of f (at least min(minPartialForm, len(f)-1)
// long) that ends the view.
func (v view) find(spans []span, f []byte, truncated bool) []span {
	if len(f) == 0 {
		return spans
	}
	for off := 0; off <= len(v.b)-len(f); {
		i := bytes.Index(v.b[off:], f)
		if i < 0 {
			break
		}
		i += off
		spans = append(spans, span{v.s(i), v.e(i + len(f) - 1)})
		off = i + 1
	}
	if truncated {
		for l := min(len(f)-1, len(v.b)); l >= min(minPartialForm, len(f)-1) && l > 0; l-- {
			if bytes.HasSuffix(v.b, f[:l]) {
				spans = append(spans, span{v.s(len(v.b) - l), v.e(len(v.b) - 1)})
				break
			}
		}
	}
	return spans
}

// maskSecret replaces with Mask every stretch of out that shows a form of
// the secret: verbatim; base64 or hex, also wrapped over lines of any
// width; percent-encoded (url.QueryEscape, url.PathEscape, %XX of every
// byte, either case), also wrapped; and, with truncated, a prefix of a
// form that ends out (cut by the output limit). out is cleared when a new
// slice is returned. maskSecret works on a whole buffer: run_with_credential
// collects the command's output (up to its output limit) before masking.
func maskSecret(out []byte, forms []Form, truncated bool) []byte {
	if len(forms) == 0 || len(out) == 0 {
		return out
	}
	spans := findSpans(nil, out, forms, truncated)
	if len(spans) == 0 {
		return out
	}
	masked := applySpans(out, spans)
	clear(out)
	return masked
}

// scanSpans appends to spans the stretches of out (original offsets) that
// show a form of a secret, building every view of the whole of out: the
// exact search that findSpans runs on the windows its prefilter picks.
// forms may hold several secrets' forms (the daemon concatenates them):
// every raw form is searched.
func scanSpans(spans []span, out []byte, forms []Form, truncated bool) []span {
	if len(forms) == 0 || len(out) == 0 {
		return spans
	}
	var raws, rawsJoined [][]byte
	var rawSpaced bool
	for _, f := range forms {
		if f.kind == formRaw {
			raws = append(raws, f.b)
			rawSpaced = rawSpaced || bytes.IndexByte(f.b, ' ') >= 0
			rawsJoined = append(rawsJoined, dropBreaks(f.b))
		}
	}
	defer func() {
		for _, rj := range rawsJoined {
			clear(rj)
		}
	}()

	id := identityView(out)
	for _, raw := range raws {
		spans = id.find(spans, raw, truncated)
	}
	j := id.joined()
	defer j.clear()
	for _, rj := range rawsJoined {
		if len(rj) >= minPartialForm {
			spans = j.find(spans, rj, truncated)
		}
	}
	jl := j.lower()
	defer jl.clear()
	for _, f := range forms {
		switch f.kind {
		case formEnc:
			spans = j.find(spans, f.b, truncated)
		case formHex:
			spans = jl.find(spans, f.b, truncated)
		}
	}
	if bytes.IndexByte(out, '%') >= 0 || (rawSpaced && bytes.IndexByte(out, '+') >= 0) {
		plus := []bool{false}
		if rawSpaced {
			plus = append(plus, true)
		}
		for _, p := range plus {
			pd := j.percentDecoded(p)
			for k, raw := range raws {
				spans = pd.find(spans, raw, truncated)
				spans = pd.find(spans, rawsJoined[k], truncated)
			}
			for _, f := range forms {
				if f.kind == formEnc {
					spans = pd.find(spans, f.b, truncated)
				}
			}
			pd.clear()
		}
	}
	return spans
}

// dropBreaks returns a copy of b without its line breaks.
func dropBreaks(b []byte) []byte {
	return slices.DeleteFunc(bytes.Clone(b), func(c byte) bool { return isBreak(c) })
}

func isBreak(c byte) bool { return c == '\n' || c == '\r' }

// mergeSpans sorts spans and joins the overlapping ones.
func mergeSpans(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int { return int(a.s - b.s) })
	merged := spans[:0]
	for i := 0; i < len(spans); {
		s, e := spans[i].s, spans[i].e
		for i++; i < len(spans) && spans[i].s <= e; i++ {
			e = max(e, spans[i].e)
		}
		merged = append(merged, span{s, e})
	}
	return merged
}

// applySpans returns a copy of out with every span replaced by Mask.
func applySpans(out []byte, spans []span) []byte {
	spans = mergeSpans(spans)
	masked := make([]byte, 0, len(out))
	at := int32(0)
	for _, sp := range spans {
		masked = append(masked, out[at:sp.s]...)
		masked = append(masked, Mask...)
		at = sp.e
	}
	return append(masked, out[at:]...)
}

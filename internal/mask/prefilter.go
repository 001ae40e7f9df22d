package mask

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// The prefilter. scanSpans builds a joined, a lower-cased and (with a '%')
// a percent-decoded copy of the whole output and searches each for every
// form: on a stream it cost more than the copy the output takes to reach
// its reader. A matcher reads the output as it is, without copying it,
// looks for the places a form could be, and runs scanSpans only on a window
// around each. The windows cover every place where the exact scan of the
// whole output finds a form, and cut no %XX, so both mask the same bytes
// (TestFindSpansMatchesScan and FuzzFindSpans hold them to that).
//
// Why the windows cover every find. A gram is a run of gramLen bytes of a
// searched string: the raw form as it is and without its line breaks, the
// base64 forms, the hex form (case-folded, as all grams are). Every
// searched string is at least minLen long (else the matcher does not
// prefilter). Let J be the output without its line breaks (the joined
// view). An occurrence of a form in the output as it is (raw) or in J
//   - either lies within one line: it is a run of at least minLen bytes
//     of the output, and with step = minLen-gramLen+1 one of the runs of
//     gramLen bytes that start at a multiple of step lies inside it
//     (sampled);
//   - or crosses a line break: then one of the gramLen-1 runs of J that
//     hold characters on both sides of the break lies inside it (seams),
//     and so do the two characters next to the break (pairs, a cheaper
//     first test).
//
// An occurrence in the percent-decoded view that holds no decoded %XX
// (or '+', decoded as a space for a secret with one) is one in J; one that
// holds one has a gram of the decoded view around that token (tokens). A
// window reaches from a hit as far as an occurrence through it can: a
// form's length (reach) in J, three times that percent-encoded. A
// truncated output also gets a window over its tail, where scanSpans looks
// for the prefix of a form that the cut left.

// gramLen is the length of the runs of bytes the prefilter looks up.
const gramLen = 8

// maxWindowShare: when the windows would cover more than a 1/maxWindowShare
// of the output (a burst of candidates), scanning all of it costs less.
const maxWindowShare = 2

// prefilterMin is the shortest output find prefilters: on less, the exact
// scan costs less than preparing the prefilter.
const prefilterMin = 1 << 10

// matcher finds the spans of a set of forms (of one or more secrets).
type matcher struct {
	forms    []Form
	prepared bool
	// plus: a secret has a space, so '+' is decoded too (query strings).
	plus bool
	// grams holds every gramLen-byte run of the forms searched in the
	// joined view, case-folded; pairs every two bytes in a row in them
	// (a bit per pair, indexed by the two bytes).
	grams gramSet
	pairs *[1 << 16 / 64]uint64
	// step is the distance between sampled runs; 0 when a form is too
	// short to sample: find then scans the whole output.
	step int
	// reach is the length of the longest form.
	reach int
	wins  []window // scratch, kept between calls
	walk  int      // what windows may still walk over out
}

// window is a stretch [a, e) of the output that scanSpans searches.
type window struct{ a, e int }

// newMatcher returns a matcher for forms (see Forms); it prepares the
// prefilter when it first meets an output of prefilterMin bytes.
func newMatcher(forms []Form) *matcher { return &matcher{forms: forms} }

// prepare finds the forms' grams, pairs, shortest and longest length.
func (m *matcher) prepare() {
	if m.prepared {
		return
	}
	m.prepared = true
	minLen := -1
	var grams []uint64
	pairs := new([1 << 16 / 64]uint64)
	add := func(b []byte) {
		for i := 0; i+gramLen <= len(b); i++ {
			grams = append(grams, foldGram(b[i:]))
		}
		for i := 0; i+1 < len(b); i++ {
			k := pairKey(b[i], b[i+1])
			pairs[k/64] |= 1 << (k % 64)
		}
	}
	for _, f := range m.forms {
		m.reach = max(m.reach, len(f.b))
		b := f.b
		if f.kind == formRaw {
			// The raw form is searched as it is (in the output and,
			// with a %0A for a line break, percent-decoded) and
			// without its line breaks (in the joined view).
			m.plus = m.plus || bytes.IndexByte(f.b, ' ') >= 0
			add(f.b)
			b = dropBreaks(f.b)
		}
		if minLen < 0 || len(b) < minLen {
			minLen = len(b)
		}
		add(b)
		if f.kind == formRaw {
			clear(b)
		}
	}
	if minLen >= minPartialForm {
		m.step = minLen - gramLen + 1
		m.grams = newGramSet(grams)
		m.pairs = pairs
	} else {
		clear(pairs[:])
	}
	clear(grams)
}

// hasPair reports whether the bytes a, b follow each other in a form
// searched in the joined view (case-folded).
func (m *matcher) hasPair(a, b byte) bool {
	k := pairKey(a, b)
	return m.pairs[k/64]&(1<<(k%64)) != 0
}

func pairKey(a, b byte) int { return int(lower(a))<<8 | int(lower(b)) }

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// clear zeroes the matcher's grams (fragments of the secrets).
func (m *matcher) clear() {
	if m.pairs != nil {
		clear(m.pairs[:])
	}
	clear(m.grams.slots)
	m.grams.zero = false
	m.forms = nil
}

// findSpans appends to spans the stretches of out (original offsets) that
// show a form of the secrets forms belong to (see maskSecret).
func findSpans(spans []span, out []byte, forms []Form, truncated bool) []span {
	m := newMatcher(forms)
	defer m.clear()
	return m.find(spans, out, truncated)
}

// find appends to spans the stretches of out that show a form: the same
// as scanSpans(spans, out, m.forms, truncated), found without copying all
// of out when it is longer than prefilterMin.
func (m *matcher) find(spans []span, out []byte, truncated bool) []span {
	if len(out) < prefilterMin {
		return scanSpans(spans, out, m.forms, truncated)
	}
	return m.findPrefiltered(spans, out, truncated)
}

// findPrefiltered is find with the prefilter, whatever the length of out.
func (m *matcher) findPrefiltered(spans []span, out []byte, truncated bool) []span {
	if len(out) == 0 || len(m.forms) == 0 {
		return spans
	}
	wins, ok := m.windows(out, truncated)
	if !ok {
		return scanSpans(spans, out, m.forms, truncated)
	}
	for _, w := range wins {
		at := len(spans)
		spans = scanSpans(spans, out[w.a:w.e], m.forms, truncated && w.e == len(out))
		for k := at; k < len(spans); k++ {
			spans[k].s += int32(w.a)
			spans[k].e += int32(w.a)
		}
	}
	return spans
}

// windows returns the sorted, disjoint stretches of out that scanSpans
// must search, or false when a form is too short to sample or the windows
// would cover most of out (then scanning all of it costs less).
func (m *matcher) windows(out []byte, truncated bool) ([]window, bool) {
	m.prepare()
	if m.step == 0 {
		return nil, false
	}
	n := len(out)
	w := m.wins[:0]
	defer func() { m.wins = w[:0] }()
	// Finding a window's ends walks over the output; past this many
	// steps the windows cover it several times over.
	m.walk = maxWindowShare*n + 6*m.reach
	// Within a line: a sampled run of a form.
	for p := 0; p+gramLen <= n; p += m.step {
		if m.grams.has(foldGram(out[p:])) {
			w = append(w, window{max(0, p+gramLen-m.reach), min(n, p+m.reach)})
			m.walk -= 2 * m.reach
		}
	}
	// Across a line break: the runs on both sides of each break.
	c := cluster{m: m, out: out, before: m.reach - 1, after: m.reach - 1}
	nl, cr := bytes.IndexByte(out, '\n'), bytes.IndexByte(out, '\r')
	for (nl >= 0 || cr >= 0) && m.walk >= 0 {
		r0 := nl
		if r0 < 0 || (cr >= 0 && cr < r0) {
			r0 = cr
		}
		r1 := r0 + 1
		for r1 < n && isBreak(out[r1]) {
			r1++
		}
		if r0 > 0 && r1 < n && m.seamHit(out, r0, r1) {
			w = c.add(w, r0, r1)
		}
		if nl >= 0 && nl < r1 {
			nl = indexFrom(out, r1, '\n')
		}
		if cr >= 0 && cr < r1 {
			cr = indexFrom(out, r1, '\r')
		}
	}
	w = c.close(w)
	// Percent-decoded: a %XX (or a '+') that a form's run of the
	// percent-decoded view holds; the form has up to reach tokens, each up
	// to 3 characters of the joined view.
	pct := bytes.IndexByte(out, '%') >= 0
	triggers := "%"
	if m.plus {
		triggers = "%+"
	}
	for k := range len(triggers) {
		t := triggers[k]
		c = cluster{m: m, out: out, before: 3*m.reach - 1, after: 3 * m.reach}
		for i := bytes.IndexByte(out, t); i >= 0 && m.walk >= 0; i = indexFrom(out, i+1, t) {
			if m.tokenHit(out, i, false) || (m.plus && m.tokenHit(out, i, true)) {
				w = c.add(w, i, i)
			}
		}
		w = c.close(w)
	}
	// Truncated: the prefix of a form (percent-encoded, up to 3(reach-1)
	// characters of the joined view) that ends out.
	if truncated {
		w = append(w, window{m.back(out, n, 3*(m.reach-1)), n})
	}
	if pct {
		for k := range w {
			w[k] = m.alignEscapes(out, w[k])
		}
	}
	if m.walk < 0 {
		return nil, false
	}
	if len(w) == 0 {
		return w, true
	}
	slices.SortFunc(w, func(x, y window) int { return x.a - y.a })
	merged := w[:1]
	for _, x := range w[1:] {
		last := &merged[len(merged)-1]
		if x.a <= last.e {
			last.e = max(last.e, x.e)
			continue
		}
		merged = append(merged, x)
	}
	w = merged
	covered := 0
	for _, x := range w {
		covered += x.e - x.a
	}
	return w, covered*maxWindowShare <= n
}

// cluster gathers hits close enough that their windows overlap into one
// window, so that a form wrapped at every character or percent-encoded
// whole costs one walk over the output, not one per line break or %XX.
// A hit at [lo, hi) of out has the window from before characters (line
// breaks not counted) before lo to after characters from hi on.
type cluster struct {
	m             *matcher
	out           []byte
	before, after int
	lo, hi        int
	open          bool
}

// add adds the hit [lo, hi): it joins the open cluster when its window
// overlaps the cluster's (the gap is at most before+after bytes, fewer
// characters), or closes it and opens another.
func (c *cluster) add(w []window, lo, hi int) []window {
	if c.open && lo-c.hi > c.before+c.after {
		w = c.close(w)
	}
	if !c.open {
		c.lo, c.open = lo, true
	}
	c.hi = hi
	return w
}

// close appends the open cluster's window.
func (c *cluster) close(w []window) []window {
	if c.open {
		w = append(w, window{c.m.back(c.out, c.lo, c.before), c.m.fwd(c.out, c.hi, c.after)})
		c.open = false
	}
	return w
}

// seamHit reports whether a form can cross the line break out[r0:r1]: one
// of the runs of the joined view that hold characters on both sides of it
// is a gram of a form.
func (m *matcher) seamHit(out []byte, r0, r1 int) bool {
	// Such a run holds the characters next to the break.
	if !m.hasPair(out[r0-1], out[r1]) {
		return false
	}
	// g[:gramLen-1] are the characters before the break, g[gramLen-1:]
	// those after it (line breaks skipped).
	var g [2 * (gramLen - 1)]byte
	nb, na := 0, 0
	for i := r0 - 1; i >= 0 && nb < gramLen-1; i-- {
		if !isBreak(out[i]) {
			nb++
			g[gramLen-1-nb] = out[i]
		}
	}
	for i := r1; i < len(out) && na < gramLen-1; i++ {
		if !isBreak(out[i]) {
			g[gramLen-1+na] = out[i]
			na++
		}
	}
	// The run starting before the break with before characters.
	for before := 1; before < gramLen; before++ {
		if before <= nb && gramLen-before <= na && m.grams.has(foldGram(g[gramLen-1-before:])) {
			return true
		}
	}
	return false
}

// tokenHit reports whether the token of the percent-decoded view (with
// '+' as a space when plus) that starts at out[i], a '%' or '+', decodes
// to something else than itself and a run of the view around it is a gram
// of a form.
func (m *matcher) tokenHit(out []byte, i int, plus bool) bool {
	// g[gramLen-1] is the token, g[:gramLen-1] the tokens before it and
	// g[gramLen:] those after it.
	var g [2*gramLen - 1]byte
	c, next, ok := decodeToken(out, i, plus)
	if !ok {
		return false
	}
	g[gramLen-1] = c
	nb, na := 0, 0
	for j := i; nb < gramLen-1; nb++ {
		var c byte
		if c, j, ok = decodeTokenBefore(out, j, plus); !ok {
			break
		}
		g[gramLen-2-nb] = c
	}
	for j := next; na < gramLen-1 && j < len(out); na++ {
		g[gramLen+na], j, _ = decodeToken(out, j, plus)
	}
	for before := 0; before < gramLen; before++ {
		if before <= nb && gramLen-1-before <= na && m.grams.has(foldGram(g[gramLen-1-before:])) {
			return true
		}
	}
	return false
}

// decodeToken decodes the token of the percent-decoded joined view that
// starts at out[i] (a character, not a line break): its byte, where the next
// token starts (line breaks skipped), and whether it was decoded (a %XX, or
// '+' when plus).
func decodeToken(out []byte, i int, plus bool) (byte, int, bool) {
	c := out[i]
	next := skipBreaks(out, i+1)
	switch {
	case c == '+' && plus:
		return ' ', next, true
	case c == '%' && next < len(out):
		y := skipBreaks(out, next+1)
		if y < len(out) {
			if h, ok := unhex(out[next]); ok {
				if l, ok := unhex(out[y]); ok {
					return h<<4 | l, skipBreaks(out, y+1), true
				}
			}
		}
	}
	return c, next, false
}

// decodeTokenBefore decodes the token of the percent-decoded joined view
// that ends before out[i], a token's start: its byte and where it starts;
// false when there is none.
func decodeTokenBefore(out []byte, i int, plus bool) (byte, int, bool) {
	y := prevChar(out, i)
	if y < 0 {
		return 0, 0, false
	}
	if x := prevChar(out, y); x >= 0 {
		if p := prevChar(out, x); p >= 0 && out[p] == '%' {
			if h, ok := unhex(out[x]); ok {
				if l, ok := unhex(out[y]); ok {
					return h<<4 | l, p, true
				}
			}
		}
	}
	if out[y] == '+' && plus {
		return ' ', y, true
	}
	return out[y], y, true
}

// skipBreaks returns the index of the first character at or after i that
// is not a line break (len(out) if none).
func skipBreaks(out []byte, i int) int {
	for i < len(out) && isBreak(out[i]) {
		i++
	}
	return i
}

// prevChar returns the index of the last character before i that is not a
// line break (-1 if none).
func prevChar(out []byte, i int) int {
	for i--; i >= 0 && isBreak(out[i]); i-- {
	}
	return i
}

// alignEscapes widens w so that it neither starts nor ends inside a %XX:
// its percent-decoded view is then the whole output's, cut at w.
func (m *matcher) alignEscapes(out []byte, w window) window {
	// A '%' always starts a token: the digits of a %XX are not '%'.
	if p1 := m.back(out, w.a, 1); p1 < w.a && out[p1] == '%' {
		w.a = p1
	} else if p2 := m.back(out, w.a, 2); p2 < p1 && out[p2] == '%' {
		w.a = p2
	}
	if q1 := m.back(out, w.e, 1); q1 < w.e && out[q1] == '%' {
		w.e = m.fwd(out, w.e, 2)
	} else if q2 := m.back(out, w.e, 2); q2 < q1 && out[q2] == '%' {
		w.e = m.fwd(out, w.e, 1)
	}
	return w
}

// back returns the index of the k-th character before i that is not a
// line break (0 if there are fewer).
func (m *matcher) back(out []byte, i, k int) int {
	for i > 0 && k > 0 {
		i--
		m.walk--
		if !isBreak(out[i]) {
			k--
		}
	}
	return i
}

// fwd returns the end of the first k characters from i on that are not
// line breaks (len(out) if there are fewer).
func (m *matcher) fwd(out []byte, i, k int) int {
	for i < len(out) && k > 0 {
		m.walk--
		if !isBreak(out[i]) {
			k--
		}
		i++
	}
	return i
}

func indexFrom(b []byte, from int, c byte) int {
	i := bytes.IndexByte(b[from:], c)
	if i >= 0 {
		i += from
	}
	return i
}

// foldGram reads gramLen bytes of b as a number, ASCII letters
// lower-cased.
func foldGram(b []byte) uint64 {
	x := binary.LittleEndian.Uint64(b)
	t := x & 0x7f7f7f7f7f7f7f7f
	// Bit 7 of each byte: at least 'A' and not past 'Z', and ASCII.
	upper := (t + 0x3f3f3f3f3f3f3f3f) &^ (t + 0x2525252525252525) &^ x & 0x8080808080808080
	return x | upper>>2
}

// gramSet is a set of grams: open addressing, 0 marks an empty slot.
type gramSet struct {
	slots []uint64
	zero  bool // the gram 0 (NUL bytes) is in the set
	shift uint
}

func newGramSet(grams []uint64) gramSet {
	size := 16
	for size < 2*len(grams) {
		size <<= 1
	}
	s := gramSet{slots: make([]uint64, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
	for _, g := range grams {
		if g == 0 {
			s.zero = true
			continue
		}
		h := s.slot(g)
		for s.slots[h] != 0 && s.slots[h] != g {
			h = (h + 1) & (len(s.slots) - 1)
		}
		s.slots[h] = g
	}
	return s
}

func (s *gramSet) slot(g uint64) int { return int((g * 0x9e3779b97f4a7c15) >> s.shift) }

func (s *gramSet) has(g uint64) bool {
	if g == 0 {
		return s.zero
	}
	for h := s.slot(g); ; h = (h + 1) & (len(s.slots) - 1) {
		switch s.slots[h] {
		case g:
			return true
		case 0:
			return false
		}
	}
}

package mask

import (
	"io"
	"slices"
	"sync"
	"time"
)

// DefaultIdle is how long a Writer waits for more output before it
// flushes what it holds back.
const DefaultIdle = 50 * time.Millisecond

// chunk is how much a Writer collects beyond its hold-back before it
// masks and writes (larger chunks cost fewer re-scans of the tail).
const chunk = 64 << 10

// Writer masks secrets in a stream: every form Secret finds (raw, base64
// standard and URL-safe at any alignment, hex either case, percent-encoded,
// each also wrapped over lines) is replaced by Mask before it reaches the
// underlying writer.
//
// To find a form that two writes split, a Writer holds back the tail of
// what it has seen: HoldBack bytes, the longest span a form can take in
// the output. The bound assumes at most one line break (\n or \r\n)
// between two characters of a wrapped form, i.e. wrapping at any width
// down to 1 column, and allows for every character being percent-encoded
// (%XX): 3 bytes per form byte, times 3 for a "\r\n" after each. A form
// split by blank lines (several line breaks in a row) across a write
// boundary may escape; within one buffer it is still found.
//
// After Idle (DefaultIdle if zero) without a write, the held-back tail is
// masked and written, with a trailing prefix of a form (of at least 8
// characters) masked as well, so a prompt or a partial line is not kept
// from the reader. Close flushes the rest and zeroes the Writer's copies
// of the secrets.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	forms [][]Form
	match *matcher // all the secrets' forms
	hold  int
	idle  time.Duration
	buf   []byte
	timer *time.Timer
	err   error
}

// NewWriter returns a Writer that masks secrets in what it writes to w.
// Empty secrets are ignored; with none, it passes writes through.
func NewWriter(w io.Writer, secrets [][]byte, idle time.Duration) *Writer {
	if idle <= 0 {
		idle = DefaultIdle
	}
	m := &Writer{w: w, idle: idle}
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		f := secretForms(s)
		for _, x := range f {
			m.hold = max(m.hold, 9*len(x.b))
		}
		m.forms = append(m.forms, f)
	}
	m.match = newMatcher(slices.Concat(m.forms...))
	return m
}

// HoldBack is the most output the Writer keeps back between writes.
func (m *Writer) HoldBack() int { return m.hold }

// Write masks and writes all but the held-back tail of what it has seen.
func (m *Writer) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	if len(m.forms) == 0 {
		n, err := m.w.Write(p)
		m.err = err
		return n, err
	}
	m.buf = append(m.buf, p...)
	if len(m.buf) >= m.hold+chunk {
		m.emit(len(m.buf)-m.hold, false)
	}
	if len(m.buf) > 0 {
		if m.timer == nil {
			m.timer = time.AfterFunc(m.idle, m.idleFlush)
		} else {
			m.timer.Reset(m.idle)
		}
	}
	if m.err != nil {
		return 0, m.err
	}
	return len(p), nil
}

func (m *Writer) idleFlush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil && len(m.buf) > 0 {
		m.emit(len(m.buf), true)
	}
}

// emit masks the buffer and writes its first cut bytes, or fewer: a form
// found across cut stays whole in the buffer. truncated also masks a
// prefix of a form that ends the buffer (only with cut = len(buf)).
func (m *Writer) emit(cut int, truncated bool) {
	spans := m.match.find(nil, m.buf, truncated)
	if len(spans) > 0 {
		spans = mergeSpans(spans)
	}
	keep := spans[:0:0]
	for _, sp := range spans {
		if int(sp.s) >= cut {
			break
		}
		if int(sp.e) > cut {
			cut = int(sp.s)
			break
		}
		keep = append(keep, sp)
	}
	out := m.buf[:cut]
	if len(keep) > 0 {
		out = applySpans(m.buf[:cut], keep)
	}
	if len(out) > 0 {
		if _, err := m.w.Write(out); err != nil {
			m.err = err
		}
	}
	if len(keep) > 0 {
		clear(out)
	}
	rest := copy(m.buf, m.buf[cut:])
	clear(m.buf[rest:])
	m.buf = m.buf[:rest]
}

// Flush masks and writes everything held back.
func (m *Writer) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil && len(m.buf) > 0 {
		m.emit(len(m.buf), false)
	}
	return m.err
}

// Close flushes and zeroes the secrets' forms; later writes fail.
func (m *Writer) Close() error {
	err := m.Flush()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer != nil {
		m.timer.Stop()
	}
	for _, f := range m.forms {
		clearForms(f)
	}
	m.forms = nil
	m.match.clear()
	clear(m.buf)
	m.buf = nil
	if m.err == nil {
		m.err = errClosed
	}
	return err
}

type closedError struct{}

func (closedError) Error() string { return "mask: write to a closed Writer" }

var errClosed error = closedError{}

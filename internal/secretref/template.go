package secretref

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Segment is a piece of a template: literal Text, or a placeholder (Ref
// set; Raw is the placeholder as written, braces included).
type Segment struct {
	Text string
	Ref  *Ref
	Raw  string
	Line int // 1-based line where the segment starts
}

// ParseTemplate splits a template into literal text and
// {{ agentkeys://<agent>/<service> }} placeholders (blanks inside the
// braces optional). Other {{ … }} text, as other template languages use
// it, stays literal. A placeholder must close on its own line.
func ParseTemplate(data []byte) ([]Segment, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errors.New("contains a NUL byte (not a text file)")
	}
	s := string(data)
	var out []Segment
	line, textStart, textLine := 1, 0, 1
	for i := 0; i < len(s); {
		if s[i] == '\n' {
			line++
			i++
			continue
		}
		if !strings.HasPrefix(s[i:], "{{") {
			i++
			continue
		}
		inner := strings.TrimLeft(s[i+2:], " \t")
		if !strings.HasPrefix(inner, Scheme) {
			i += 2
			continue
		}
		end := strings.Index(s[i:], "}}")
		if nl := strings.IndexByte(s[i:], '\n'); end < 0 || (nl >= 0 && nl < end) {
			return nil, &SyntaxError{Line: line, Msg: "{{ " + Scheme + "… is not closed by }} on the same line"}
		}
		raw := s[i : i+end+2]
		body := strings.Trim(raw[2:len(raw)-2], " \t")
		r, err := ParseRef(body)
		if err != nil {
			return nil, &SyntaxError{Line: line, Msg: fmt.Sprintf("bad reference %s: %v", quoteRef(body), err)}
		}
		if textStart < i {
			out = append(out, Segment{Text: s[textStart:i], Line: textLine})
		}
		out = append(out, Segment{Ref: &r, Raw: raw, Line: line})
		i += len(raw)
		textStart, textLine = i, line
	}
	if textStart < len(s) {
		out = append(out, Segment{Text: s[textStart:], Line: textLine})
	}
	return out, nil
}

// Refs lists the distinct references of segments, in order of first use.
func Refs(segs []Segment) []Ref {
	seen := map[Ref]bool{}
	var out []Ref
	for _, g := range segs {
		if g.Ref != nil && !seen[*g.Ref] {
			seen[*g.Ref] = true
			out = append(out, *g.Ref)
		}
	}
	return out
}

// Render concatenates segments, replacing each placeholder by value(ref),
// into one buffer sized up front (no stray partial copies of a secret are
// left behind by growth; the caller clears the result).
func Render(segs []Segment, value func(Ref) []byte) []byte {
	n := 0
	for _, g := range segs {
		if g.Ref != nil {
			n += len(value(*g.Ref))
		} else {
			n += len(g.Text)
		}
	}
	out := make([]byte, 0, n)
	for _, g := range segs {
		if g.Ref != nil {
			out = append(out, value(*g.Ref)...)
		} else {
			out = append(out, g.Text...)
		}
	}
	return out
}

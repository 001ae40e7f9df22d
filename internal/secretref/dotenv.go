package secretref

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MaxFileSize bounds a dotenv file or a template.
const MaxFileSize = 1 << 20

// Entry is one NAME=VALUE of a dotenv file. Ref is set when the value is a
// reference (then Value is the reference as written).
type Entry struct {
	Key   string
	Value string
	Ref   *Ref
	Line  int // 1-based line of the key
}

// SyntaxError is a parse failure at a line. Its message never holds a value.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ParseDotenv parses dotenv text:
//
//	# comment
//	NAME=value            unquoted: trimmed; " #" starts a comment
//	export NAME=value     "export " is allowed and ignored
//	NAME="a\nb"           double quotes: \n \r \t \" \\ \$ are escapes; may span lines
//	NAME='literal'        single quotes: no escapes, never a reference; may span lines
//	NAME=agentkeys://bot/openrouter   a reference (unquoted or double-quoted)
//
// There is no variable expansion. A later NAME replaces an earlier one
// (the caller sees both, in order). Names are letters, digits and '_', not
// starting with a digit.
func ParseDotenv(data []byte) ([]Entry, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errors.New("contains a NUL byte (not a text file)")
	}
	s := strings.TrimPrefix(string(data), "\ufeff")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	p := &dotenvParser{s: s, line: 1}
	var out []Entry
	for {
		e, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		out = append(out, e)
	}
}

type dotenvParser struct {
	s    string
	pos  int
	line int
}

func (p *dotenvParser) errf(line int, format string, args ...any) error {
	return &SyntaxError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// restOfLine returns the text up to (not including) the next newline and
// moves past the newline.
func (p *dotenvParser) restOfLine() string {
	end := strings.IndexByte(p.s[p.pos:], '\n')
	var l string
	if end < 0 {
		l, p.pos = p.s[p.pos:], len(p.s)
	} else {
		l, p.pos = p.s[p.pos:p.pos+end], p.pos+end+1
		p.line++
	}
	return l
}

func (p *dotenvParser) skipBlank() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *dotenvParser) next() (Entry, bool, error) {
	for {
		p.skipBlank()
		if p.pos >= len(p.s) {
			return Entry{}, false, nil
		}
		if c := p.s[p.pos]; c == '\n' || c == '#' {
			p.restOfLine()
			continue
		}
		break
	}
	line := p.line
	if rest := p.s[p.pos:]; strings.HasPrefix(rest, "export ") || strings.HasPrefix(rest, "export\t") {
		p.pos += len("export")
		p.skipBlank()
	}
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] != '=' && p.s[p.pos] != '\n' {
		p.pos++
	}
	if p.pos >= len(p.s) || p.s[p.pos] != '=' {
		return Entry{}, false, p.errf(line, "expected NAME=VALUE")
	}
	key := strings.TrimRight(p.s[start:p.pos], " \t")
	if !ValidEnvName(key) {
		return Entry{}, false, p.errf(line, "the name before '=' is not a variable name (letters, digits and '_', not starting with a digit)")
	}
	p.pos++ // '='
	p.skipBlank()
	e := Entry{Key: key, Line: line}
	refCandidate := true
	switch {
	case p.pos < len(p.s) && p.s[p.pos] == '"':
		v, err := p.doubleQuoted(line, key)
		if err != nil {
			return Entry{}, false, err
		}
		e.Value = v
	case p.pos < len(p.s) && p.s[p.pos] == '\'':
		end := strings.IndexByte(p.s[p.pos+1:], '\'')
		if end < 0 {
			return Entry{}, false, p.errf(line, "%s: unterminated single quote", key)
		}
		e.Value = p.s[p.pos+1 : p.pos+1+end]
		p.line += strings.Count(e.Value, "\n")
		p.pos += end + 2
		refCandidate = false
	default:
		v := p.restOfLine()
		if i := commentStart(v); i >= 0 {
			v = v[:i]
		}
		e.Value = strings.TrimRight(v, " \t")
		if strings.HasPrefix(e.Value, Scheme) {
			if err := e.resolveRef(line); err != nil {
				return Entry{}, false, err
			}
		}
		return e, true, nil
	}
	// After a closing quote: blanks and an optional comment, then the line ends.
	tail := p.restOfLine()
	if t := strings.TrimLeft(tail, " \t"); t != "" && t[0] != '#' {
		return Entry{}, false, p.errf(line, "%s: unexpected text after the closing quote", key)
	}
	if refCandidate && strings.HasPrefix(e.Value, Scheme) {
		if err := e.resolveRef(line); err != nil {
			return Entry{}, false, err
		}
	}
	return e, true, nil
}

func (e *Entry) resolveRef(line int) error {
	r, err := ParseRef(e.Value)
	if err != nil {
		return &SyntaxError{Line: line, Msg: fmt.Sprintf("%s: bad reference %s: %v", e.Key, quoteRef(e.Value), err)}
	}
	e.Ref = &r
	return nil
}

// commentStart is the index of a '#' that starts an inline comment in an
// unquoted value (preceded by a blank), or -1.
func commentStart(v string) int {
	for i := 1; i < len(v); i++ {
		if v[i] == '#' && (v[i-1] == ' ' || v[i-1] == '\t') {
			return i
		}
	}
	return -1
}

func (p *dotenvParser) doubleQuoted(line int, key string) (string, error) {
	var b strings.Builder
	i := p.pos + 1
	for i < len(p.s) {
		c := p.s[i]
		switch c {
		case '"':
			p.pos = i + 1
			return b.String(), nil
		case '\n':
			p.line++
			b.WriteByte(c)
		case '\\':
			if i+1 >= len(p.s) {
				return "", p.errf(line, "%s: unterminated double quote", key)
			}
			i++
			switch d := p.s[i]; d {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '"', '\\', '$':
				b.WriteByte(d)
			default:
				if d == '\n' {
					p.line++
				}
				b.WriteByte('\\')
				b.WriteByte(d)
			}
		default:
			b.WriteByte(c)
		}
		i++
	}
	return "", p.errf(line, "%s: unterminated double quote", key)
}

// ValidEnvName reports whether s is a portable environment variable name.
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || (i > 0 && '0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

// ErrUnrepresentable is returned by QuoteDotenv for a value no dotenv
// quoting can carry back unchanged.
var ErrUnrepresentable = errors.New("value cannot be written as dotenv")

// QuoteDotenv quotes v as a dotenv value that ParseDotenv (and common
// dotenv readers) read back as v, never as a reference: single quotes when
// v has no quote or line break, else double quotes with escapes.
func QuoteDotenv(v string) (string, error) {
	if strings.IndexByte(v, 0) >= 0 {
		return "", ErrUnrepresentable
	}
	if !strings.ContainsAny(v, "'\n\r") {
		return "'" + v + "'", nil
	}
	if strings.HasPrefix(v, Scheme) {
		return "", ErrUnrepresentable
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`, nil
}

// QuoteShell quotes v for a POSIX shell: single quotes, with each ' as '\”.
func QuoteShell(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

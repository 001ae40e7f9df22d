// Package textcheck is the one rule for text AgentKeys accepts from a client
// and stores or shows to a master: valid UTF-8, no NUL, no control
// characters other than tab and newline (C0, DEL and C1 are refused), no
// bidirectional overrides or isolates (U+202A–U+202E, U+2066–U+2069) that
// make what a reader sees differ from what is stored, and a length bound.
// Both database engines then see the same input, and PostgreSQL never gets
// a NUL or a broken UTF-8 sequence to choke on. Escape renders text for a
// terminal with anything unsafe made visible.
package textcheck

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the default bound for one value, in bytes.
const MaxLen = 4096

// Check reports why s is not acceptable text, or nil.
func Check(s string, max int) error {
	if max > 0 && len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return errors.New("not valid UTF-8")
			}
		}
		if Unsafe(r) {
			if r == 0 {
				return errors.New("contains a NUL byte")
			}
			return fmt.Errorf("contains the control character %U", r)
		}
	}
	return nil
}

// Unsafe reports whether r is a character the rule refuses (and Escape
// makes visible).
func Unsafe(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Escape returns s with every unsafe character (and invalid UTF-8 byte)
// written as a visible escape (\u202e, \x00, \xff); a backslash is
// doubled so that escapes cannot be forged. Tab and newline are escaped
// too, since an audit field is printed on one line.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x80 && Unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			b.WriteString(`\u` + strconv.FormatInt(int64(r)+0x10000, 16)[1:])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i, r := range s {
		if r == '\\' || r == '\t' || r == '\n' || Unsafe(r) {
			return true
		}
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return true
			}
		}
	}
	return false
}

// CheckStrings applies Check, without a length bound (the decoder's body
// limit bounds the total), to every string reachable from v: struct fields,
// pointers, slices, maps (keys and values) and interfaces. Byte slices are
// binary and skipped. A struct field tagged `text:"raw"` (a mail body with
// CRLF line ends) is held only to CheckRaw. The error names the JSON field
// when it can.
func CheckStrings(v any) error {
	return walk(reflect.ValueOf(v), "", 0, false)
}

// CheckRaw is the minimum every stored string meets: valid UTF-8, no NUL.
func CheckRaw(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

func walk(v reflect.Value, path string, depth int, raw bool) error {
	if depth > 32 || !v.IsValid() {
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		check := func(s string) error { return Check(s, 0) }
		if raw {
			check = CheckRaw
		}
		if err := check(v.String()); err != nil {
			return fieldError(path, err)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return walk(v.Elem(), path, depth+1, raw)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
				name = tag
			}
			if err := walk(v.Field(i), join(path, name), depth+1, f.Tag.Get("text") == "raw"); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i := range v.Len() {
			if err := walk(v.Index(i), path, depth+1, raw); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if err := walk(it.Key(), path, depth+1, raw); err != nil {
				return err
			}
			if err := walk(it.Value(), path, depth+1, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// FieldError names the offending field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func fieldError(path string, err error) error { return &FieldError{Field: path, Err: err} }

// EscapeJSON rewrites encoded JSON so that no unsafe character reaches a
// terminal raw: DEL, C1 controls and bidi controls inside strings become
// \uXXXX escapes (the same JSON value; encoding/json already escapes C0).
// Outside strings JSON is ASCII, so every such rune is inside one.
func EscapeJSON(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError && r >= 0x7f && Unsafe(r) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}

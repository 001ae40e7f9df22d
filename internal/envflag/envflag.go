// Package envflag binds each command-line flag to its environment variable
// in one place, the same way for all four binaries:
//
//   - precedence is flag, then environment, then the default;
//   - a variable counts as set when its value is not blank (surrounding
//     white space is dropped), so VAR= is the same as no VAR;
//   - a bad value is recorded, not fatal at once: Err reports every bad
//     variable together, naming each, as a usage error (exit status 2);
//   - the flag's help ends in " [VAR]";
//   - durations accept whole seconds ("30") or a Go duration ("30s", "5m").
package envflag

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Annotation is the pflag annotation key holding a flag's variable name.
const Annotation = "envflag_env"

// Lookup reads one environment variable (os.LookupEnv in production).
type Lookup func(name string) (string, bool)

// Binder registers flags on one flag set.
type Binder struct {
	fs     *pflag.FlagSet
	lookup Lookup
	errs   []error
}

// New returns a Binder for fs reading the environment through lookup (nil:
// os.LookupEnv).
func New(fs *pflag.FlagSet, lookup Lookup) *Binder {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &Binder{fs: fs, lookup: lookup}
}

// Get returns the variable's value and whether it is set (not blank).
func (b *Binder) Get(env string) (string, bool) { return Get(b.lookup, env) }

// Get reads env through lookup: its trimmed value, and whether it is set
// (not blank). This is the one meaning of "set" for every binary.
func Get(lookup Lookup, env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v, ok := lookup(env)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Err returns every bad environment value seen so far as one *UsageError,
// or nil.
func (b *Binder) Err() error {
	if len(b.errs) == 0 {
		return nil
	}
	return &UsageError{Err: errors.Join(b.errs...)}
}

func (b *Binder) bad(env, v, want string) {
	b.errs = append(b.errs, fmt.Errorf("%s=%q is not %s", env, v, want))
}

// Usage is how a flag bound to env ends its help text.
func Usage(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " [" + env + "]"
}

func (b *Binder) annotate(name, env string) {
	if env != "" {
		_ = b.fs.SetAnnotation(name, Annotation, []string{env})
	}
}

// String binds a string flag.
func (b *Binder) String(dst *string, name, env, def, usage string) {
	if v, ok := b.Get(env); ok {
		def = v
	}
	b.fs.StringVar(dst, name, def, Usage(usage, env))
	b.annotate(name, env)
}

// fromEnv returns the variable's value parsed, or def when it is unset or
// (recorded for Err) does not parse.
func fromEnv[T any](b *Binder, env string, def T, want string, parse func(string) (T, error)) T {
	v, ok := b.Get(env)
	if !ok {
		return def
	}
	t, err := parse(v)
	if err != nil {
		b.bad(env, v, want)
		return def
	}
	return t
}

// Int binds an integer flag.
func (b *Binder) Int(dst *int, name, env string, def int, usage string) {
	b.fs.IntVar(dst, name, fromEnv(b, env, def, "a whole number", strconv.Atoi), Usage(usage, env))
	b.annotate(name, env)
}

// Float binds a floating-point flag.
func (b *Binder) Float(dst *float64, name, env string, def float64, usage string) {
	parse := func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
	b.fs.Float64Var(dst, name, fromEnv(b, env, def, "a number", parse), Usage(usage, env))
	b.annotate(name, env)
}

// Bool binds a boolean flag; the variable takes 1/0/true/false.
func (b *Binder) Bool(dst *bool, name, env string, def bool, usage string) {
	b.fs.BoolVar(dst, name, fromEnv(b, env, def, "a boolean (1/0/true/false)", strconv.ParseBool), Usage(usage, env))
	b.annotate(name, env)
}

// Duration binds a duration flag that takes whole seconds or a Go duration,
// on the command line and in the variable. Negative values are refused.
func (b *Binder) Duration(dst *time.Duration, name, env string, def time.Duration, usage string) {
	*dst = fromEnv(b, env, def, "whole seconds (30) or a duration (30s, 5m)", ParseDuration)
	b.fs.Var((*durationValue)(dst), name, Usage(usage, env))
	b.annotate(name, env)
}

// CSV binds a comma-separated list flag (repeatable on the command line);
// blank items are dropped.
func (b *Binder) CSV(dst *[]string, name, env string, def []string, usage string) {
	if v, ok := b.Get(env); ok {
		def = SplitCSV(v)
	}
	*dst = def
	b.fs.Var(&csvValue{dst: dst}, name, Usage(usage, env))
	b.annotate(name, env)
}

// csvValue is a repeatable comma-separated list; the first Set replaces
// the default, later ones append.
type csvValue struct {
	dst     *[]string
	changed bool
}

func (c *csvValue) String() string {
	if len(*c.dst) == 0 {
		return "" // help shows no "(default [])"
	}
	return "[" + strings.Join(*c.dst, ",") + "]"
}
func (c *csvValue) Type() string { return "strings" }
func (c *csvValue) Set(v string) error {
	items := SplitCSV(v)
	if !c.changed {
		*c.dst, c.changed = items, true
		return nil
	}
	*c.dst = append(*c.dst, items...)
	return nil
}

// SplitCSV splits a comma-separated list, trimming items and dropping
// blank ones.
func SplitCSV(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ParseDuration accepts whole seconds ("300") or a Go duration ("5m"); it
// refuses negative values.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, errors.New("too large")
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, errors.New("want whole seconds (300) or a duration (5m)")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }
func (d *durationValue) Set(v string) error {
	p, err := ParseDuration(v)
	if err != nil {
		return err
	}
	*d = durationValue(p)
	return nil
}

// UsageError is a configuration mistake: a bad flag or variable value, or
// a combination Validate refuses. Binaries exit 2 on it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is 2.
func (e *UsageError) ExitCode() int { return 2 }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// AsUsage wraps a non-nil err as a *UsageError (nil stays nil).
func AsUsage(err error) error {
	if err == nil {
		return nil
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return err
	}
	return &UsageError{Err: err}
}

// ExitCode is the process exit status for err: 0 for nil, the code of the
// first error in the chain with an ExitCode method, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

var flagValueErr = regexp.MustCompile(`^invalid argument "(.*)" for "(?:-[^,]*, )?--([^"]+)" flag: (.*)$`)

// FlagError is a flag-parsing error of fs as a *UsageError whose message
// says what value is wanted rather than which Go parser failed
// (strconv.ParseInt…, time: missing unit…). Binaries pass it to cobra's
// SetFlagErrorFunc.
func FlagError(fs *pflag.FlagSet, err error) error {
	if err == nil {
		return nil
	}
	m := flagValueErr.FindStringSubmatch(err.Error())
	if m == nil {
		return AsUsage(err)
	}
	value, name, why := m[1], m[2], m[3]
	typ := ""
	if f := fs.Lookup(name); f != nil {
		typ = f.Value.Type()
	}
	internal := strings.Contains(why, "strconv.") || strings.Contains(why, "time: ")
	switch {
	case strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint"):
		why = "want a whole number"
	case strings.HasPrefix(typ, "float"):
		why = "want a number"
	case typ == "bool":
		why = "want true or false"
	case typ == "duration" && internal:
		why = "want a duration such as 30s, 5m or 1h"
	case internal:
		why = "not a valid " + typ
	}
	return &UsageError{Err: fmt.Errorf("--%s %q: %s", name, value, why)}
}

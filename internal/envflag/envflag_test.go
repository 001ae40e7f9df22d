package envflag

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func env(m map[string]string) Lookup {
	return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
}

// Precedence: flag, then a non-blank variable, then the default.
func TestPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", nil, nil, "def"},
		{"env", map[string]string{"X_S": "fromenv"}, nil, "fromenv"},
		{"blank env is unset", map[string]string{"X_S": "  "}, nil, "def"},
		{"env trimmed", map[string]string{"X_S": " v "}, nil, "v"},
		{"flag beats env", map[string]string{"X_S": "fromenv"}, []string{"--s", "fromflag"}, "fromflag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			b := New(fs, env(tc.env))
			var s string
			b.String(&s, "s", "X_S", "def", "a string")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if s != tc.want || b.Err() != nil {
				t.Fatalf("got %q, err %v; want %q", s, b.Err(), tc.want)
			}
		})
	}
}

func TestTypedBinders(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	b := New(fs, env(map[string]string{
		"X_D1": "30", "X_D2": "1m30s", "X_I": "7", "X_F": "2.5", "X_B": "1", "X_L": "a, b,,c",
	}))
	var (
		d1, d2, d3 time.Duration
		i          int
		f          float64
		bo         bool
		l          []string
	)
	b.Duration(&d1, "d1", "X_D1", time.Hour, "")
	b.Duration(&d2, "d2", "X_D2", time.Hour, "")
	b.Duration(&d3, "d3", "", time.Hour, "")
	b.Int(&i, "i", "X_I", 1, "")
	b.Float(&f, "f", "X_F", 1, "")
	b.Bool(&bo, "b", "X_B", false, "")
	b.CSV(&l, "l", "X_L", nil, "")
	if err := fs.Parse([]string{"--d3", "45"}); err != nil {
		t.Fatal(err)
	}
	if d1 != 30*time.Second || d2 != 90*time.Second || d3 != 45*time.Second || i != 7 || f != 2.5 || !bo || strings.Join(l, "|") != "a|b|c" {
		t.Fatalf("d1=%v d2=%v d3=%v i=%d f=%v b=%v l=%q", d1, d2, d3, i, f, bo, l)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	// The command line takes seconds, durations and repeated lists too.
	if err := fs.Parse([]string{"--d1", "5m", "--l", "x", "--l", "y,z"}); err != nil {
		t.Fatal(err)
	}
	if d1 != 5*time.Minute || strings.Join(l, "|") != "x|y|z" {
		t.Fatalf("d1=%v l=%q", d1, l)
	}
	for _, bad := range []string{"-1", "x", "-5s"} {
		if err := fs.Parse([]string{"--d1", bad}); err == nil {
			t.Errorf("--d1 %s accepted", bad)
		}
	}
}

// Every bad variable is reported at once, by name, as a usage error (2).
func TestBadEnvIsUsageErrorNamingEachVariable(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	b := New(fs, env(map[string]string{"X_D": "soon", "X_I": "7x", "X_F": "fast", "X_B": "yes please"}))
	var (
		d  time.Duration
		i  int
		f  float64
		bo bool
	)
	b.Duration(&d, "d", "X_D", time.Minute, "")
	b.Int(&i, "i", "X_I", 3, "")
	b.Float(&f, "f", "X_F", 1.5, "")
	b.Bool(&bo, "b", "X_B", true, "")
	err := b.Err()
	var ue *UsageError
	if !errors.As(err, &ue) || ExitCode(err) != 2 {
		t.Fatalf("err = %#v, exit %d", err, ExitCode(err))
	}
	for _, want := range []string{`X_D="soon"`, `X_I="7x"`, `X_F="fast"`, `X_B="yes please"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
	// A bad value leaves the default in place.
	if d != time.Minute || i != 3 || f != 1.5 || !bo {
		t.Fatalf("defaults lost: %v %d %v %v", d, i, f, bo)
	}
}

func TestUsageNamesTheVariable(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	b := New(fs, env(nil))
	var s, u string
	b.String(&s, "s", "X_S", "", "a string")
	b.String(&u, "u", "", "", "no variable")
	if got := fs.Lookup("s").Usage; got != "a string [X_S]" {
		t.Fatalf("usage %q", got)
	}
	if got := fs.Lookup("u").Usage; got != "no variable" {
		t.Fatalf("usage %q", got)
	}
	if got := fs.Lookup("s").Annotations[Annotation]; len(got) != 1 || got[0] != "X_S" {
		t.Fatalf("annotation %q", got)
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 || ExitCode(Usagef("x")) != 2 || ExitCode(AsUsage(errors.New("x"))) != 2 || AsUsage(nil) != nil {
		t.Fatal("exit codes")
	}
}

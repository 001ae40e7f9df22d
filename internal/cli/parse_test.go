package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/envflag"
	"github.com/agentkeys/agentkeys/internal/secretref"
	"github.com/agentkeys/agentkeys/internal/services"
)

func TestEnvNameFor(t *testing.T) {
	for svc, want := range map[string]string{
		"openrouter":   "OPENROUTER_API_KEY",
		"brave-search": "BRAVE_SEARCH_API_KEY",
		"github":       "GITHUB_API_KEY",
		"aws_prod-2":   "AWS_PROD_2_API_KEY",
	} {
		if got := services.EnvNameFor(svc); got != want {
			t.Errorf("%s: %s, want %s", svc, got, want)
		}
	}
}

func TestParseEnvSpec(t *testing.T) {
	good := map[string]envOverride{
		"KEY=openrouter":        {"KEY", "openrouter"},
		"_k1=brave-search":      {"_k1", "brave-search"},
		"OPENAI_API_KEY=openai": {"OPENAI_API_KEY", "openai"},
	}
	for raw, want := range good {
		got, err := parseEnvSpec(raw)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", raw, got, err)
		}
	}
	bad := map[string]string{
		"KEY":          "no '=' found",
		"=svc":         "KEY must not be empty",
		"KEY=":         "SERVICE must not be empty",
		"1KEY=svc":     "KEY must be",
		"K-EY=svc":     "KEY must be",
		"KEY=a=b":      "service name",
		"KEY=Upper":    "service name",
		"K EY=svc":     "KEY must be",
		"KEY=svc\x00x": "service name",
	}
	for raw, msg := range bad {
		_, err := parseEnvSpec(raw)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.HasPrefix(err.Error(), "Invalid --env format") {
			t.Errorf("%q: %v (want %q)", raw, err, msg)
		}
	}
}

func TestParseDurationAndSince(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-01-01T00:00:00Z": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "yesterday", "-5h", "0s", "d", "-1d", "99999999d", "1.5d"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// FuzzParseEnvSpec: --env values come from scripts and users. Whatever it
// accepts yields a portable variable name and a valid service, and it
// never panics.
func FuzzParseEnvSpec(f *testing.F) {
	for _, s := range []string{"KEY=openrouter", "=x", "x=", "A=b=c", "_=_", "Ä=x", "K=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := parseEnvSpec(raw)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Invalid --env format") {
				t.Fatalf("unexpected message %q", err)
			}
			return
		}
		if !secretref.ValidEnvName(o.Name) || strings.ContainsAny(o.Name, "=\x00") {
			t.Fatalf("accepted name %q", o.Name)
		}
		if agentkeys.ValidateService(o.Service) != nil {
			t.Fatalf("accepted service %q", o.Service)
		}
		if o.Name+"="+o.Service != raw {
			t.Fatalf("lost input: %q -> %+v", raw, o)
		}
		if n := services.EnvNameFor(o.Service); !secretref.ValidEnvName(n) && !(n[0] >= '0' && n[0] <= '9') {
			t.Fatalf("service %q maps to odd variable %q", o.Service, n)
		}
	})
}

// FuzzParseSince: --since/--until input.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"24h", "7d", "2026-01-01T00:00:00Z", "-1h", "1e9h", "65535d"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err == nil && got.After(now) && !strings.Contains(s, "T") {
			t.Fatalf("duration %q lies in the future: %v", s, got)
		}
	})
}

// FuzzParseUsageCursor: --cursor either parses into a cursor that prints
// back the same way, or is a usage error.
func FuzzParseUsageCursor(f *testing.F) {
	for _, s := range []string{"", "12", "b:12|k:1800000000:3:default", "b:-|k:", "b:|k:-", "b:x|k:", "|", "b:1|k:1:1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseUsageCursor(s)
		if err != nil {
			var ue *envflag.UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("%q: not a usage error: %v", s, err)
			}
			return
		}
		back, err := parseUsageCursor(c.String())
		if err != nil || back != c && !(c.backendDone && c.brokerDone) {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), back, err)
		}
	})
}

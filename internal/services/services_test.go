package services

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	for _, name := range []string{"openai", "openrouter", "anthropic"} {
		s, ok := Lookup(name, func(string) string { return "" })
		if !ok {
			t.Fatalf("%s missing from the table", name)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.APIBase, "https://") || s.BaseURLEnv == "" || s.KeyEnv == "" {
			t.Fatalf("%s: %+v", name, s)
		}
	}
	if s, _ := Lookup("anthropic", nil); s.Auth.Name != "x-api-key" || s.Auth.Prefix != "" {
		t.Fatalf("anthropic auth: %+v", s.Auth)
	}
	if got := strings.Join(Provisionable(), ","); got != "openai,openrouter" {
		t.Fatalf("provisionable: %s", got)
	}
	s, _ := Lookup("openai", func(k string) string {
		if k == "AGENTKEYS_OPENAI_API_URL" {
			return "https://127.0.0.1:8443"
		}
		return ""
	})
	if s.APIBase != "https://127.0.0.1:8443" || s.VerifyURL() != "https://127.0.0.1:8443/v1/models" {
		t.Fatalf("override: %+v", s)
	}
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec("example=https://api.example.com,query:api_key")
	if err != nil || s.Name != "example" || s.APIBase != "https://api.example.com" || s.Auth != (Auth{In: "query", Name: "api_key"}) {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{
		"example", "example=https://api.example.com", "Example=https://x,bearer", "x=ftp://h,bearer",
		"x=https://h/path,bearer", "x=https://u:p@h,bearer", "x=https://h?q=1,bearer", "x=https://h,header:Host",
		"x=https://h,header:", "x=https://h,cookie:a", "x=https://h,header:a b",
	} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseSpec: any accepted spec is a service the gateway can route:
// a valid name, an origin without path, an auth form that round-trips.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"example=https://api.example.com,header:X-Api-Key", "a=http://127.0.0.1:1,bearer", "b=https://h,query:k", "=,", "x=https://[::1]:9,bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSpec(spec)
		if err != nil {
			return
		}
		if err := s.Check(); err != nil {
			t.Fatalf("accepted %q but Check fails: %v", spec, err)
		}
		u, err := Origin(s.APIBase)
		if err != nil || u.Path != "" || u.Host == "" {
			t.Fatalf("accepted %q with origin %v %v", spec, u, err)
		}
		a, err := ParseAuth(s.Auth.String())
		if err != nil || a != s.Auth {
			t.Fatalf("auth %+v does not round-trip: %+v %v", s.Auth, a, err)
		}
	})
}

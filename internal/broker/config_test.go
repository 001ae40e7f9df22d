package broker

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) LookupFunc {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func load(t *testing.T, m map[string]string) (Config, error) {
	t.Helper()
	c, err := FromEnv(env(m))
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigDefaults(t *testing.T) {
	c, err := load(t, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bind != "127.0.0.1" || c.Port != 8091 || c.JWTTTL != 300*time.Second || c.SessionDuration != time.Hour ||
		c.Region != "us-east-1" || c.BackendURL != "http://127.0.0.1:8090" || c.AWSEnabled() {
		t.Fatalf("defaults = %+v", c)
	}
	if c.Issuer != "http://127.0.0.1:8091" {
		t.Fatalf("derived loopback issuer = %q", c.Issuer)
	}
	if !strings.HasSuffix(c.AuditDB, "audit.sqlite") || !strings.HasSuffix(c.KeyFile, ".json") {
		t.Fatalf("paths = %s %s", c.AuditDB, c.KeyFile)
	}
}

func TestConfigRoleARNFallbacks(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"BROKER_DATA_ROLE_ARN": "arn:aws:iam::111111111111:role/a", "BROKER_AGENT_ROLE_ARN": "arn:aws:iam::222222222222:role/b", "ACCOUNT_ID": "333333333333"}, "arn:aws:iam::111111111111:role/a"},
		{map[string]string{"BROKER_DATA_ROLE_ARN": "", "BROKER_AGENT_ROLE_ARN": "arn:aws:iam::222222222222:role/b", "ACCOUNT_ID": "333333333333"}, "arn:aws:iam::222222222222:role/b"},
		{map[string]string{"ACCOUNT_ID": "333333333333"}, "arn:aws:iam::333333333333:role/agentkeys-data-role"},
		{map[string]string{}, ""},
	} {
		c, err := load(t, tc.env)
		if err != nil || c.DataRoleARN != tc.want {
			t.Errorf("%v: role %q, %v; want %q", tc.env, c.DataRoleARN, err, tc.want)
		}
	}
	c, _ := load(t, map[string]string{"REGION": "eu-central-1"})
	if c.Region != "eu-central-1" {
		t.Errorf("REGION fallback: %s", c.Region)
	}
	c, _ = load(t, map[string]string{"REGION": "eu-central-1", "BROKER_AWS_REGION": "ap-south-1"})
	if c.Region != "ap-south-1" {
		t.Errorf("BROKER_AWS_REGION precedence: %s", c.Region)
	}
	c, _ = load(t, map[string]string{"BROKER_AUDIT_DB_PATH": "/tmp/legacy.sqlite"})
	if c.AuditDB != "/tmp/legacy.sqlite" {
		t.Errorf("legacy BROKER_AUDIT_DB_PATH: %s", c.AuditDB)
	}
}

func TestConfigRefusals(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"TTL too short", map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "59"}, "BROKER_OIDC_JWT_TTL_SECONDS=59 out of range 60-3600"},
		{"TTL too long", map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "3601"}, "out of range 60-3600"},
		{"TTL not a number", map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "5m"}, `BROKER_OIDC_JWT_TTL_SECONDS="5m"`},
		{"issuer trailing slash", map[string]string{"BROKER_OIDC_ISSUER": "https://broker.example.com/"}, "must not end with a slash"},
		{"issuer relative", map[string]string{"BROKER_OIDC_ISSUER": "broker.example.com"}, "not an absolute URL"},
		{"issuer plain http public", map[string]string{"BROKER_OIDC_ISSUER": "http://broker.example.com"}, "plain http"},
		{"only key id", map[string]string{"DAEMON_ACCESS_KEY_ID": "AKIAEXAMPLE"}, "must be set together"},
		{"only secret", map[string]string{"DAEMON_SECRET_ACCESS_KEY": secret}, "must be set together"},
		{"duration too short", map[string]string{"BROKER_SESSION_DURATION_SECONDS": "899"}, "900-43200"},
		{"duration too long", map[string]string{"BROKER_SESSION_DURATION_SECONDS": "43201"}, "900-43200"},
		{"bad account id", map[string]string{"ACCOUNT_ID": "12345"}, "12-digit"},
		{"bad role ARN", map[string]string{"BROKER_DATA_ROLE_ARN": "agentkeys-data-role"}, "not an IAM role ARN"},
		{"bad backend URL", map[string]string{"BROKER_BACKEND_URL": "127.0.0.1:8090"}, "BROKER_BACKEND_URL"},
		{"bad STS endpoint", map[string]string{"BROKER_STS_ENDPOINT": "sts.local"}, "BROKER_STS_ENDPOINT"},
		{"cache too long", map[string]string{"BROKER_VALIDATE_CACHE_SECONDS": "30"}, "within seconds"},
		{"bad bool", map[string]string{"BROKER_OIDC_ALLOW_INSECURE_ISSUER": "maybe"}, "not a boolean"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error quotes the secret key: %v", err)
			}
		})
	}

	// Several problems are reported together.
	_, err := load(t, map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "1", "BROKER_SESSION_DURATION_SECONDS": "1"})
	if err == nil || !strings.Contains(err.Error(), "JWT_TTL") || !strings.Contains(err.Error(), "SESSION_DURATION") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigBindAndIssuer(t *testing.T) {
	c, _ := FromEnv(env(nil))
	c.Bind = "0.0.0.0"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "BROKER_OIDC_ISSUER is required") {
		t.Fatalf("public bind without issuer: %v", err)
	}
	c, _ = FromEnv(env(map[string]string{"BROKER_OIDC_ISSUER": "https://broker.example.com"}))
	c.Bind = "::"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c, _ = FromEnv(env(nil))
	c.Bind, c.Port = "::1", 9000
	if err := c.Validate(); err != nil || c.Issuer != "http://[::1]:9000" {
		t.Fatalf("IPv6 loopback: %q %v", c.Issuer, err)
	}
	c, _ = FromEnv(env(nil))
	c.TLSCertFile = "cert.pem"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("half TLS: %v", err)
	}
	for _, h := range []string{"127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"} {
		if !isLoopback(h) {
			t.Errorf("isLoopback(%q) = false", h)
		}
	}
	for _, h := range []string{"0.0.0.0", "::", "10.0.0.1", "example.com"} {
		if isLoopback(h) {
			t.Errorf("isLoopback(%q) = true", h)
		}
	}
}

// BROKER_SKIP_STARTUP_CHECK lets an env file (a host that cannot reach AWS
// yet) do what --skip-startup-check does.
func TestConfigSkipStartupCheckFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "true": true, "0": false, "": false} {
		c, err := load(t, map[string]string{"BROKER_SKIP_STARTUP_CHECK": v})
		if err != nil || c.SkipStartupCheck != want {
			t.Errorf("BROKER_SKIP_STARTUP_CHECK=%q: %v, %v; want %v", v, c.SkipStartupCheck, err, want)
		}
	}
}

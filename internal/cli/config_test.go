package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Profile: "default", RequestTimeout: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"urls", func(c *Config) { c.BackendFlag, c.BrokerURL = "https://b.example/", "http://127.0.0.1:8091" }, nil},
		{"profile", func(c *Config) { c.Profile = "../x" }, []string{"--profile"}},
		{"timeout", func(c *Config) { c.RequestTimeout = 0 }, []string{"--request-timeout"}},
		{"backend scheme", func(c *Config) { c.BackendFlag = "ftp://b.example" }, []string{"--backend"}},
		{"backend user info", func(c *Config) { c.BackendFlag = "http://u:p@b.example" }, []string{"--backend"}},
		{"broker query", func(c *Config) { c.BrokerURL = "http://b.example/?x=1" }, []string{"--broker-url"}},
		{"all at once", func(c *Config) { c.Profile, c.RequestTimeout, c.BackendFlag, c.BrokerURL = "", -1, "x", "y" },
			[]string{"--profile", "--request-timeout", "--backend", "--broker-url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid configuration refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %+v", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Errorf("error quotes the URL's user info: %q", err)
			}
		})
	}
}

// A bad global setting stops every command before it runs: exit 2 naming
// each bad setting, nothing written, no request sent; with --json the
// envelope says "usage".
func TestGlobalConfigIsValidatedFirst(t *testing.T) {
	w := newWorld(t)
	r := w.exec(nil, w.env("AGENTKEYS_BACKEND_URL=ftp://127.0.0.1:1", "AGENTKEYS_BROKER_URL=not a url"), "--profile", "../x", "init")
	if r.code != 2 {
		t.Fatalf("want exit 2, got %s", r)
	}
	for _, want := range []string{"--profile", "--backend / AGENTKEYS_BACKEND_URL", "--broker-url / AGENTKEYS_BROKER_URL"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not name %s: %s", want, r)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(w.cfg, "agentkeys")); len(ents) != 0 {
		t.Fatalf("files written before the configuration was validated: %v", ents)
	}

	r = w.exec(nil, w.env(), "--json", "--broker-url", "http://u:p@127.0.0.1:1", "whoami")
	var env struct{ Error, Message string }
	if r.code != 2 || json.Unmarshal([]byte(r.stderr), &env) != nil || env.Error != "usage" || !strings.Contains(env.Message, "--broker-url") {
		t.Fatalf("--json: want exit 2 and a usage envelope naming --broker-url, got %s", r)
	}
	if strings.Contains(r.stderr, "u:p@") {
		t.Fatalf("the URL's user info reached stderr: %s", r)
	}
}

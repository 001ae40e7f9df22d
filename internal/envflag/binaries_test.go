package envflag_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/cli"
	"github.com/agentkeys/agentkeys/internal/daemon"
	"github.com/agentkeys/agentkeys/internal/envflag"
)

// roots are the four binaries' command trees.
func roots() map[string]func() *cobra.Command {
	return map[string]func() *cobra.Command{
		"agentkeys":         cli.Command,
		"agentkeys-daemon":  daemon.Command,
		"agentkeys-backend": backend.Command,
		"agentkeys-broker":  broker.Command,
	}
}

// envFlags walks a command tree and returns "path --flag" -> variable for
// every flag bound to a variable; it fails on any other flag whose help
// names a variable the old ways ("(env X)").
func envFlags(t *testing.T, root *cobra.Command) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			key := c.CommandPath() + " --" + f.Name
			if strings.Contains(f.Usage, "(env ") {
				t.Errorf("%s: help uses the old (env X) notation: %q", key, f.Usage)
			}
			env := f.Annotations[envflag.Annotation]
			if len(env) == 0 {
				return
			}
			if !strings.HasSuffix(f.Usage, " ["+env[0]+"]") {
				t.Errorf("%s: help %q does not end in [%s]", key, f.Usage, env[0])
			}
			out[key] = env[0]
		}
		c.LocalNonPersistentFlags().VisitAll(visit)
		c.PersistentFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// Every flag that reads a variable says so as " [VAR]" in its help, for
// all four binaries.
func TestHelpNamesEveryVariable(t *testing.T) {
	want := map[string][]string{
		"agentkeys": {
			"agentkeys --backend=AGENTKEYS_BACKEND_URL", "agentkeys --broker-url=AGENTKEYS_BROKER_URL",
			"agentkeys --profile=AGENTKEYS_PROFILE", "agentkeys read --socket=AGENTKEYS_SOCKET",
			"agentkeys init --oidc-issuer=AGENTKEYS_LOGIN_OIDC_ISSUER", "agentkeys init --oidc-client-id=AGENTKEYS_LOGIN_OIDC_CLIENT_ID",
		},
		"agentkeys-daemon": {
			"agentkeys-daemon --backend=AGENTKEYS_BACKEND_URL", "agentkeys-daemon --session-id=AGENTKEYS_SESSION_ID",
			"agentkeys-daemon --pairing-key-id=AGENTKEYS_PAIRING_KEY_ID", "agentkeys-daemon --broker-url=AGENTKEYS_BROKER_URL",
			"agentkeys-daemon --region=AWS_REGION",
			"agentkeys-daemon aws credential-process --session-id=AGENTKEYS_SESSION_ID",
			"agentkeys-daemon aws credential-process --broker-url=AGENTKEYS_BROKER_URL",
		},
		"agentkeys-backend": {
			"agentkeys-backend --listen=AGENTKEYS_BACKEND_LISTEN", "agentkeys-backend --data-dir=AGENTKEYS_DATA_DIR",
			"agentkeys-backend --database-url=AGENTKEYS_DATABASE_URL", "agentkeys-backend --seal-key-file=AGENTKEYS_SEAL_KEY_FILE",
			"agentkeys-backend --session-ttl=AGENTKEYS_SESSION_TTL", "agentkeys-backend --login-rate=AGENTKEYS_LOGIN_RATE",
			"agentkeys-backend --tls-cert=AGENTKEYS_TLS_CERT", "agentkeys-backend --tls-key=AGENTKEYS_TLS_KEY",
			"agentkeys-backend --mock-inbox=AGENTKEYS_MOCK_INBOX", "agentkeys-backend --login=AGENTKEYS_LOGIN",
			"agentkeys-backend --login-oidc-issuer=AGENTKEYS_LOGIN_OIDC_ISSUER", "agentkeys-backend --login-oidc-client-id=AGENTKEYS_LOGIN_OIDC_CLIENT_ID",
			"agentkeys-backend --trusted-proxies=AGENTKEYS_TRUSTED_PROXIES", "agentkeys-backend --public-url=AGENTKEYS_PUBLIC_URL",
			"agentkeys-backend --wallet-rate=AGENTKEYS_WALLET_RATE", "agentkeys-backend --max-agent-depth=AGENTKEYS_MAX_AGENT_DEPTH",
			"agentkeys-backend --max-agents-per-master=AGENTKEYS_MAX_AGENTS_PER_MASTER",
			"agentkeys-backend --max-credentials-per-master=AGENTKEYS_MAX_CREDENTIALS_PER_MASTER",
			"agentkeys-backend --max-pending-requests-per-master=AGENTKEYS_MAX_PENDING_REQUESTS_PER_MASTER",
			"agentkeys-backend --log-level=AGENTKEYS_LOG_LEVEL",
		},
		"agentkeys-broker": {
			"agentkeys-broker --bind=BROKER_BIND", "agentkeys-broker --port=BROKER_PORT",
			"agentkeys-broker --tls-cert=BROKER_TLS_CERT", "agentkeys-broker --tls-key=BROKER_TLS_KEY",
			"agentkeys-broker --trusted-proxies=BROKER_TRUSTED_PROXIES", "agentkeys-broker --log-level=BROKER_LOG_LEVEL",
			"agentkeys-broker serve --port=BROKER_PORT",
		},
	}
	for name, mk := range roots() {
		t.Run(name, func(t *testing.T) {
			got := envFlags(t, mk())
			var have []string
			for k, v := range got {
				have = append(have, k+"="+v)
			}
			for _, w := range want[name] {
				if !slices.Contains(have, w) {
					t.Errorf("%s is not bound (bound: %q)", w, have)
				}
			}
		})
	}
}

func execute(t *testing.T, c *cobra.Command, args ...string) error {
	t.Helper()
	c.SetArgs(args)
	c.SetOut(io.Discard)
	c.SetErr(io.Discard)
	return c.ExecuteContext(context.Background())
}

// A bad variable or flag value is a usage error (exit 2) naming it, for
// each binary, before anything is started or written.
func TestBadValueIsUsageError(t *testing.T) {
	for _, tc := range []struct {
		name, bin string
		env       map[string]string
		args      []string
		mention   string
	}{
		{"backend env duration", "agentkeys-backend", map[string]string{"AGENTKEYS_SESSION_TTL": "forever"}, []string{"--login", "mock"}, `AGENTKEYS_SESSION_TTL="forever"`},
		{"backend env int", "agentkeys-backend", map[string]string{"AGENTKEYS_MAX_AGENT_DEPTH": "deep"}, []string{"--login", "mock"}, `AGENTKEYS_MAX_AGENT_DEPTH="deep"`},
		{"backend env bool", "agentkeys-backend", map[string]string{"AGENTKEYS_MOCK_INBOX": "perhaps"}, []string{"--login", "mock"}, `AGENTKEYS_MOCK_INBOX="perhaps"`},
		{"backend flag", "agentkeys-backend", nil, []string{"--session-ttl", "soon"}, "--session-ttl"},
		{"backend database url", "agentkeys-backend", nil, []string{"--login", "mock", "--database-url", "postgres://%zz"}, "--database-url"},
		{"backend validate", "agentkeys-backend", nil, []string{"--login", "both"}, "--login"},
		{"broker env port", "agentkeys-broker", map[string]string{"BROKER_PORT": "80x"}, nil, `BROKER_PORT="80x"`},
		{"broker env range", "agentkeys-broker", map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "7200"}, nil, "BROKER_OIDC_JWT_TTL_SECONDS=7200"},
		{"broker flag", "agentkeys-broker", nil, []string{"--port", "x"}, "--port"},
		{"daemon flag", "agentkeys-daemon", nil, []string{"--pair-timeout", "soon"}, "--pair-timeout"},
		{"daemon validate", "agentkeys-daemon", nil, []string{"--pair", "--recover", "bot"}, "--pair and --recover"},
		{"daemon zero timeout", "agentkeys-daemon", nil, []string{"--pair-timeout", "0"}, "--pair-timeout"},
		{"daemon landlock", "agentkeys-daemon", nil, []string{"--child-landlock", "maybe"}, "--child-landlock"},
		{"backend int flag", "agentkeys-backend", nil, []string{"--max-agent-depth", "deep"}, "want a whole number"},
		{"cli int flag", "agentkeys", nil, []string{"usage", "--limit", "x"}, "want a whole number"},
		{"cli duration flag", "agentkeys", nil, []string{"recover", "x", "--timeout", "5"}, "want a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("HOME", dir)
			t.Setenv("XDG_RUNTIME_DIR", dir)
			t.Setenv("AGENTKEYS_DATA_DIR", filepath.Join(dir, "data"))
			t.Setenv("BROKER_OIDC_KEYPAIR_PATH", filepath.Join(dir, "keys.json"))
			t.Setenv("BROKER_AUDIT_DB", filepath.Join(dir, "audit.sqlite"))
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := execute(t, roots()[tc.bin](), tc.args...)
			if code := envflag.ExitCode(err); code != 2 && tc.bin != "agentkeys" || err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("exit %d, err %v; want 2 naming %s", code, err, tc.mention)
			}
			// Messages say what is wanted, not which Go parser failed.
			if strings.Contains(err.Error(), "strconv.") || strings.Contains(err.Error(), "time: ") {
				t.Fatalf("Go internals in %q", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("files created before the configuration was validated: %v", ents)
			}
		})
	}
}

// Flag beats variable beats default, in each binary (checked on a
// parsed command).
func TestFlagBeatsVariable(t *testing.T) {
	t.Setenv("AGENTKEYS_BACKEND_LISTEN", "127.0.0.1:1")
	t.Setenv("BROKER_BIND", "127.0.0.2")
	t.Setenv("AGENTKEYS_SESSION_ID", "from-env")
	t.Setenv("AGENTKEYS_PROFILE", "envprofile")
	for _, tc := range []struct {
		bin, flag, env, flagv string
	}{
		{"agentkeys-backend", "listen", "127.0.0.1:1", "127.0.0.1:2"},
		{"agentkeys-broker", "bind", "127.0.0.2", "127.0.0.3"},
		{"agentkeys-daemon", "session-id", "from-env", "from-flag"},
		{"agentkeys", "profile", "envprofile", "flagprofile"},
	} {
		c := roots()[tc.bin]()
		fs := c.Flags()
		if fs.Lookup(tc.flag) == nil {
			fs = c.PersistentFlags()
		}
		if got := fs.Lookup(tc.flag).Value.String(); got != tc.env {
			t.Errorf("%s --%s from the environment = %q, want %q", tc.bin, tc.flag, got, tc.env)
		}
		if err := fs.Parse([]string{"--" + tc.flag, tc.flagv}); err != nil {
			t.Fatal(err)
		}
		if got := fs.Lookup(tc.flag).Value.String(); got != tc.flagv {
			t.Errorf("%s --%s = %q, want the flag's %q", tc.bin, tc.flag, got, tc.flagv)
		}
	}
}

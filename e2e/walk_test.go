package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestWalk walks a new user's path with the real binaries against
// `agentkeys dev --fake-sts`, as scripts/demo.sh does, then the rails that
// keep a user from guessing: each step checks what the user sees and the
// exit status.
func TestWalk(t *testing.T) {
	home := t.TempDir()
	env := append(docEnv(home), startDevForDocs(t, home, "--fake-sts")...)
	dir := t.TempDir()
	in := func(name string) string { return filepath.Join(dir, name) }

	// ak runs the CLI with extra environment and stdin; want checks exit
	// status code and that stderr holds every text in want.
	ak := func(extra []string, stdin string, code int, want []string, args ...string) (string, string) {
		t.Helper()
		out, stderr, got := runBinInput(t, home, append(env, extra...), stdin, "agentkeys", args...)
		if got != code {
			t.Fatalf("agentkeys %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, out, stderr)
		}
		for _, w := range want {
			if !strings.Contains(stderr, w) {
				t.Fatalf("agentkeys %q: stderr lacks %q\n%s", args, w, stderr)
			}
		}
		return out, stderr
	}
	ok := func(args ...string) string {
		t.Helper()
		out, _ := ak(nil, "", 0, nil, args...)
		return out
	}
	mustShow := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("output lacks %q:\n%s", w, out)
			}
		}
	}

	// A master logs in; the identity comes from the environment.
	out, _ := ak([]string{"AGENTKEYS_AUTH_TOKEN=walk@example.com"}, "", 0, nil, "init")
	mustShow(out, "Initialized. Wallet: 0x")

	// An agent with a name, OpenRouter and AWS in its scope.
	out = ok("agent", "create", "bot", "--services", "openrouter,aws", "--session-out", in("bot.session"))
	wallet := strings.TrimSpace(out)
	if !regexp.MustCompile(`^0x[0-9a-f]{40}$`).MatchString(wallet) {
		t.Fatalf("agent create printed %q, want the wallet", out)
	}

	// Store from stdin, read it back.
	key := "sk-or-walk-" + rand.Text()
	out, _ = ak(nil, key, 0, nil, "store", "bot", "openrouter")
	mustShow(out, "Stored credential", "service=openrouter", "name=bot")
	if got := strings.TrimSpace(ok("read", "bot", "openrouter")); got != key {
		t.Fatalf("read printed %q, want the stored key", got)
	}

	// run: the key is in the child's environment, masked in its output,
	// and the child's exit status is the CLI's.
	out, _ = ak(nil, "", 7, nil, "run", "bot", "--no-aws", "--", "sh", "-c", `printf 'key=%s\n' "$OPENROUTER_API_KEY"; exit 7`)
	if strings.Contains(out, key) || !strings.Contains(out, "key=****") {
		t.Fatalf("run did not mask the key: %q", out)
	}
	// AWS from the fake STS through the broker, masked too.
	out = ok("run", "bot", "--session-file", in("bot.session"), "--region", "eu-west-1", "--", "sh", "-c",
		`test -n "$AWS_ACCESS_KEY_ID" && printf '%s %s\n' "$AWS_REGION" "$AWS_SECRET_ACCESS_KEY"`)
	mustShow(out, "eu-west-1 ****")
	// Without a region the CLI says how to set one.
	ak(nil, "", 1, []string{"no AWS region is set", "--region"}, "run", "bot", "--session-file", in("bot.session"), "--", "true")

	// An env file with a reference resolves before the command starts;
	// one outside the scope is refused.
	os.WriteFile(in("app.env"), []byte("# no secret here\nAPP_MODE=walk\nLLM_API_KEY=agentkeys://bot/openrouter\n"), 0o600)
	ok("run", "--env-file", in("app.env"), "--", "sh", "-c", `printf '%s %s' "$APP_MODE" "$LLM_API_KEY" >"$0"`, in("env.out"))
	if b, _ := os.ReadFile(in("env.out")); string(b) != "walk "+key {
		t.Fatalf("run --env-file gave the command %q", b)
	}
	os.WriteFile(in("bad.env"), []byte("X=agentkeys://bot/openai\n"), 0o600)
	ak(nil, "", 1, []string{"openai is outside the scope of agent bot"}, "run", "--env-file", in("bad.env"), "--", "true")

	// inject writes a 0600 file and leaves other {{ }} alone.
	os.WriteFile(in("config.tmpl"), []byte("api_key: {{ agentkeys://bot/openrouter }}\nimage: {{ .Values.image }}\n"), 0o600)
	ok("inject", "-i", in("config.tmpl"), "-o", in("config.yaml"))
	if b, _ := os.ReadFile(in("config.yaml")); string(b) != "api_key: "+key+"\nimage: {{ .Values.image }}\n" {
		t.Fatalf("inject wrote %q", b)
	}
	if st, err := os.Stat(in("config.yaml")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("inject: %v, mode %v", err, st.Mode())
	}

	// A JWT from the broker, verified against its JWKS.
	out, stderr := ak(nil, "", 0, []string{"verified against", "/.well-known/jwks.json"}, "token", "oidc", "--verify")
	if strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("token oidc printed %q, want a JWT\n%s", out, stderr)
	}

	// One audit view: the backend's reads and the broker's mints, by name.
	out = ok("usage", "--all")
	mustShow(out, "bot", "read", "mint_jwt", "mint_aws")

	// The registry: list, rename, alias; names and aliases work as <agent>.
	mustShow(ok("agent", "list"), "bot", wallet, "services: aws, openrouter")
	mustShow(ok("agent", "rename", "bot", "robo"), `from "bot" to "robo"`)
	mustShow(ok("agent", "list"), "robo", wallet)
	mustShow(ok("link", "robo", "--alias", "helper"), "alias=helper", "name=robo")
	mustShow(ok("scope", "get", "helper"), "agent robo ("+wallet+")", "aws, openrouter")

	// Rails. Bare revoke without a terminal names --self and keeps the
	// session.
	ak(nil, "", 2, []string{"--self"}, "revoke")
	ok("whoami")
	// Filters reject unknown values; subcommands suggest at every level.
	ak(nil, "", 2, []string{`did you mean "read"?`}, "usage", "--action", "raed")
	ak(nil, "", 2, []string{`unknown command "lst" for "agentkeys agent"`, "Did you mean this?\n\tlist"}, "agent", "lst")
	for _, name := range binaries {
		if out, stderr, code := runBin(t, home, nil, name, "--version"); code != 0 || !strings.HasPrefix(out, name+" version ") {
			t.Fatalf("%s --version: exit %d, %q %q", name, code, out, stderr)
		}
	}
	// --json errors are one JSON object on stderr.
	out, stderr = ak(nil, "", 1, nil, "--json", "read", "nobody", "openrouter")
	var jerr map[string]any
	if err := json.Unmarshal([]byte(stderr), &jerr); err != nil || jerr["error"] == nil || !strings.Contains(jerr["message"].(string), `unknown agent "nobody"`) || out != "" {
		t.Fatalf("--json error: %v\nstdout %q\nstderr %q", err, out, stderr)
	}
	// A broker that accepts and never answers: the CLI gives up within
	// --request-timeout and names it.
	hang := "http://" + testkit.Listen(t, nil).Addr().String()
	hangEnv := []string{"AGENTKEYS_BROKER_URL=" + hang, "AGENTKEYS_AUTH_TOKEN=walk@example.com"}
	ak(hangEnv, "", 0, nil, "--profile", "hang", "init")
	start := time.Now()
	ak(hangEnv, "", 1, []string{hang, "did not answer in time", "--request-timeout"}, "--profile", "hang", "--request-timeout", "1s", "token", "oidc")
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("token oidc took %s with --request-timeout 1s", took)
	}
	// Revoke by alias; run then refuses the agent; revoke again is fine.
	mustShow(ok("revoke", "helper"), "Revoked agent="+wallet+" (robo)")
	ak(nil, "", 1, []string{"agent robo (" + wallet + ") was revoked", "refusing to run"}, "run", "robo", "--no-aws", "--", "true")
	ok("revoke", "helper")
}

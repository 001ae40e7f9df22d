package cli

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

func TestInit(t *testing.T) {
	t.Parallel()
	w := newWorld(t)

	// No identity and no terminal: refuse, and say where it must come from.
	r := w.ak("init")
	expectStderr(t, r, 1, "init", "AGENTKEYS_AUTH_TOKEN")
	// An identity in argv is not a thing: extra arguments are usage errors.
	expectCode(t, w.ak("init", "alice"), 2, "init alice")
	expectCode(t, w.ak("init", "--mock-token", "alice"), 2, "init --mock-token")

	id, wallet := w.initMaster()
	// Idempotent: the same identity reaches the same wallet and keeps the
	// session it already has.
	before := w.storedSession("default")
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init")
	expectCode(t, r, 0, "init again")
	if !strings.Contains(r.stdout, wallet) || !strings.Contains(r.stdout, "existing session kept") {
		t.Fatalf("second init: %s", r)
	}
	after := w.storedSession("default")
	if after.Token != before.Token || after.Wallet.String() != wallet || after.Backend != w.url {
		t.Fatalf("stored session changed: %v -> %v", before, after)
	}
	// --json says so too.
	var js struct {
		Wallet, Profile, Backend string
		Reused                   bool
	}
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init", "--json")
	expectCode(t, r, 0, "init --json")
	oneJSON(t, r.stdout, &js)
	if js.Wallet != wallet || !js.Reused || js.Profile != "default" || js.Backend != w.url {
		t.Fatalf("init --json: %+v", js)
	}

	// Another identity in the same profile is refused unless --force.
	other := "identity-" + randHex(8)
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+other), "init")
	expectStderr(t, r, 1, "init other", "--profile")
	// … a second profile holds it …
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+other), "--profile", "work", "init")
	expectCode(t, r, 0, "init --profile work")
	if strings.Contains(r.stdout, wallet) {
		t.Fatal("another identity reached the same wallet")
	}
	r = w.must("--profile", "work", "whoami", "--json")
	var who struct{ Wallet, Profile string }
	oneJSON(t, r.stdout, &who)
	if who.Profile != "work" || who.Wallet == wallet {
		t.Fatalf("profile work: %+v", who)
	}
	// … and --force replaces.
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+other), "init", "--force")
	expectCode(t, r, 0, "init --force")
	if w.storedSession("default").Wallet.String() == wallet {
		t.Fatal("--force did not replace the session")
	}

	// The backend refuses an identity: exit 1 with a hint.
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN=invalid"), "--profile", "p3", "init")
	expectStderr(t, r, 1, "init invalid", "hint:")

	// Modes: directories 0700, session file 0600.
	base := filepath.Join(w.cfg, "agentkeys")
	for path, want := range map[string]fs.FileMode{
		base:                           0o700,
		filepath.Join(base, "default"): 0o700,
		filepath.Join(base, "work"):    0o700,
		filepath.Join(base, "default", "session.json"): 0o600,
		filepath.Join(base, "work", "session.json"):    0o600,
	} {
		if m := fileMode(t, path); m != want {
			t.Errorf("%s: mode %04o, want %04o", path, m, want)
		}
	}
	// Bad profile names are usage errors.
	expectCode(t, w.ak("--profile", "../x", "whoami"), 2, "--profile ../x")
}

func TestInitRepairsLooseModes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id, _ := w.initMaster()
	base := filepath.Join(w.cfg, "agentkeys")
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Join(base, "default"), 0o775)
	os.Chmod(filepath.Join(base, "default", "session.json"), 0o644)
	w.must("whoami")
	if m := fileMode(t, filepath.Join(base, "default", "session.json")); m != 0o600 {
		t.Errorf("session file mode %04o after use", m)
	}
	w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init")
	for _, d := range []string{base, filepath.Join(base, "default")} {
		if m := fileMode(t, d); m != 0o700 {
			t.Errorf("%s: mode %04o after use", d, m)
		}
	}
}

func TestWhoami(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	r := w.ak("whoami")
	expectStderr(t, r, 1, "whoami without session", "agentkeys init")
	_, wallet := w.initMaster()
	r = w.must("whoami")
	for _, s := range []string{wallet, "master", "unrestricted", w.url} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("whoami lacks %q:\n%s", s, r.stdout)
		}
	}
	var js struct {
		Wallet, Kind string
		ExpiresAt    string `json:"expires_at"`
		Scope        *agentkeys.Scope
	}
	oneJSON(t, w.must("whoami", "--json").stdout, &js)
	if js.Wallet != wallet || js.Kind != "master" || js.Scope != nil || js.ExpiresAt == "" {
		t.Fatalf("whoami --json: %+v", js)
	}
	// A revoked session: 401 with the init hint.
	s := w.storedSession("default")
	c, _ := backendclient.New(w.url)
	if _, err := c.RevokeSession(context.Background(), s.Token, s.Token); err != nil {
		t.Fatal(err)
	}
	r = w.ak("whoami")
	expectCode(t, r, 1, "whoami revoked")
	if !strings.Contains(r.stderr, "agentkeys init") || strings.Contains(r.stderr, s.Token.Reveal()) {
		t.Fatalf("revoked whoami: %s", r)
	}
}

func TestAgentCreate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, master := w.initMaster()
	a := w.createAgent("bot", "--services", "openrouter,brave-search")

	// --session-out + --json: {"wallet","session_file"}, file 0600, usable.
	out := filepath.Join(t.TempDir(), "agent-session.json")
	r := w.must("agent", "create", "helper", "--services", "openrouter", "--read-only", "--ttl", "2h", "--session-out", out, "--json")
	var js struct {
		Name        string `json:"name"`
		Wallet      string `json:"wallet"`
		SessionFile string `json:"session_file"`
		Scope       agentkeys.Scope
	}
	oneJSON(t, r.stdout, &js)
	if js.Name != "helper" || js.SessionFile != out || !js.Scope.ReadOnly || len(js.Scope.Services) != 1 {
		t.Fatalf("agent create --json: %+v", js)
	}
	if m := fileMode(t, out); m != 0o600 {
		t.Fatalf("session file mode %04o", m)
	}
	sess, err := keychain.ReadSessionFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Wallet.String() != js.Wallet || sess.Backend != w.url || sess.ExpiresAt == 0 {
		t.Fatalf("session file: %v", sess)
	}
	c, _ := backendclient.New(w.url)
	id, err := c.Validate(context.Background(), sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != "agent" || id.Parent.String() != master || id.Scope == nil || !id.Scope.ReadOnly {
		t.Fatalf("agent session identity: %+v", id)
	}

	// agent list knows both names.
	var list struct {
		Agents []struct{ Name, Wallet string }
	}
	oneJSON(t, w.must("agent", "list", "--json").stdout, &list)
	if len(list.Agents) != 2 || list.Agents[0].Name != "bot" || list.Agents[0].Wallet != a || list.Agents[1].Name != "helper" {
		t.Fatalf("agent list: %+v", list)
	}
	if r := w.must("agent", "list"); !strings.Contains(r.stdout, a) {
		t.Fatalf("agent list text: %s", r)
	}

	// Errors.
	expectCode(t, w.ak("agent", "create", "bot", "--services", "x"), 1, "duplicate name")
	for _, args := range [][]string{
		{"agent", "create", "nosvc"},
		{"agent", "create", "x", "--services", "Bad Service"},
		{"agent", "create", "0xabc", "--services", "a"},
		{"agent", "create", "UPPER", "--services", "a"},
		{"agent", "create", "x", "--services", "a", "--ttl", "soon"},
		{"agent", "create", "--services", "a"},
		{"agent", "create", "a", "b", "--services", "a"},
		{"agent", "create", "x", "--services", "a", "--bogus"},
	} {
		expectCode(t, w.ak(args...), 2, args...)
	}
	r = w.ak("agent", "create", "x", "--services", "a", "--session-out", filepath.Join(t.TempDir(), "no", "such", "dir"))
	expectCode(t, r, 1, "session-out in a missing dir")
}

func TestStoreReadList(t *testing.T) {
	t.Parallel()
	w, a := newWorldWithAgent(t, "bot", "--services", "openrouter,github")
	secret := newSecret()

	r := w.mustIn(secret+"\n", "store", "bot", "openrouter")
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Fatalf("store echoes the secret: %s", r)
	}
	if !strings.Contains(r.stdout, "Stored credential for agent="+a+" service=openrouter") {
		t.Fatalf("store output: %s", r)
	}
	// By wallet too, --verbose, --json.
	gh := newSecret()
	r = w.mustIn(gh, "--verbose", "store", a, "github", "--json")
	if strings.Contains(r.stdout+r.stderr, gh) {
		t.Fatalf("store --verbose leaks the secret: %s", r)
	}
	var sj struct {
		Agent, Service string
		Stored         bool
	}
	oneJSON(t, r.stdout, &sj)
	if sj.Agent != a || sj.Service != "github" || !sj.Stored {
		t.Fatalf("store --json: %+v", sj)
	}

	// read: exactly the value (trailing newline stripped on store).
	if r := w.must("read", "bot", "openrouter"); r.stdout != secret+"\n" {
		t.Fatalf("read: %q", r.stdout)
	}
	if r := w.must("read", "bot", "openrouter", "-n"); r.stdout != secret {
		t.Fatalf("read -n: %q", r.stdout)
	}
	var rj struct{ Agent, Service, Credential string }
	oneJSON(t, w.must("read", a, "github", "--json").stdout, &rj)
	if rj.Credential != gh || rj.Agent != a {
		t.Fatalf("read --json: %+v", rj)
	}
	if r := w.must("list", "bot"); r.stdout != "github\nopenrouter\n" {
		t.Fatalf("list: %q", r.stdout)
	}
	var lj struct{ Services []string }
	oneJSON(t, w.must("list", "bot", "--json").stdout, &lj)
	if len(lj.Services) != 2 {
		t.Fatalf("list --json: %+v", lj)
	}

	// A value with inner newlines survives; only one trailing newline goes.
	multi := "line1\nline2\n\n"
	w.mustIn(multi, "store", "bot", "openrouter")
	if r := w.must("read", "bot", "openrouter", "-n"); r.stdout != "line1\nline2\n" {
		t.Fatalf("multi-line read: %q", r.stdout)
	}

	// Errors: empty stdin (and /dev/null), too large, unknown agent,
	// missing credential, outside scope for the backend, bad service name.
	for _, in := range []string{"", "\n"} {
		r := w.akIn(in, "store", "bot", "openrouter")
		expectStderr(t, r, 1, "store empty", "empty")
	}
	expectCode(t, w.ak("store", "bot", "openrouter"), 1, "store </dev/null")
	expectCode(t, w.akIn(strings.Repeat("x", 70000), "store", "bot", "openrouter"), 1, "store huge")
	r = w.akIn("v", "store", "nobody", "openrouter")
	expectStderr(t, r, 1, "store unknown agent", "agent list")
	r = w.ak("read", "bot", "missing")
	expectStderr(t, r, 1, "read missing", "404")
	// A wallet that is not ours: denied, with the scope hint.
	r = w.ak("read", string(agentkeys.NewWallet()), "openrouter")
	expectStderr(t, r, 1, "read foreign", "hint:")
	for _, args := range [][]string{
		{"store", "bot", "Bad/Service"},
		{"store", "bot"},
		{"store", "bot", "openrouter", secret}, // never from argv
		{"read", "bot"},
		{"read", "0x1234", "openrouter"},
		{"list"},
	} {
		r := w.akIn("x", args...)
		expectCode(t, r, 2, args...)
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("usage error echoes the argument: %s", r)
		}
	}
}

func TestRunEnvironment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id, _ := w.initMaster()
	w.createAgent("bot", "--services", "openrouter,brave-search,spare")
	or, bs, gh := newSecret(), newSecret(), newSecret()
	w.mustIn(or, "store", "bot", "openrouter")
	w.mustIn(bs, "store", "bot", "brave-search")
	w.mustIn(gh, "store", "bot", "github") // held, but outside the agent's scope

	env := w.env("AGENTKEYS_AUTH_TOKEN=" + id)
	r := w.exec(nil, env, "run", "bot", "--no-masking", "--", "env", "-0")
	expectCode(t, r, 0, "run env")
	got := parseEnv(r.stdout)
	if got["OPENROUTER_API_KEY"] != or || got["BRAVE_SEARCH_API_KEY"] != bs {
		t.Fatalf("injected env wrong: OPENROUTER_API_KEY=%v BRAVE_SEARCH_API_KEY=%v", got["OPENROUTER_API_KEY"] == or, got["BRAVE_SEARCH_API_KEY"] == bs)
	}
	if _, ok := got["GITHUB_API_KEY"]; ok {
		t.Fatal("a credential outside the agent's scope was injected")
	}
	if _, ok := got["AGENTKEYS_AUTH_TOKEN"]; ok {
		t.Fatal("the identity assertion reached the child")
	}
	if got["HOME"] != w.home {
		t.Fatal("the child did not inherit the environment")
	}

	// --env adds a name and overrides an automatic one.
	r = w.must("run", "bot", "--no-masking", "--env", "MY_KEY=openrouter", "--env", "OPENROUTER_API_KEY=brave-search", "--", "env", "-0")
	got = parseEnv(r.stdout)
	if got["MY_KEY"] != or || got["OPENROUTER_API_KEY"] != bs || got["BRAVE_SEARCH_API_KEY"] != bs {
		t.Fatal("--env did not add/override as documented")
	}
	// A shell test against the generated value, passed through the env.
	r = w.must("run", "bot", "--", "sh", "-c", `test -n "$OPENROUTER_API_KEY" && test "$OPENROUTER_API_KEY" = "$(printf %s "$OPENROUTER_API_KEY")" && printf %s "$OPENROUTER_API_KEY" | wc -c`)
	if strings.TrimSpace(r.stdout) != strconv.Itoa(len(or)) {
		t.Fatalf("sh saw a value of length %q", r.stdout)
	}

	// --env outside the agent's scope, or for a credential not stored: the
	// command does not run at all (all-or-nothing).
	marker := filepath.Join(t.TempDir(), "ran")
	for _, spec := range []string{"X=github", "X=spare"} {
		r = w.ak("run", "bot", "--env", spec, "--", "touch", marker)
		expectCode(t, r, 1, "run --env "+spec)
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("--env %s: the command ran", spec)
		}
	}
	// Stdin reaches the child.
	if r := w.mustIn("hello from stdin", "run", "bot", "--", "cat"); r.stdout != "hello from stdin" {
		t.Fatalf("stdin: %q", r.stdout)
	}
	// An agent with no credentials runs with none.
	w.createAgent("empty", "--services", "openrouter")
	if r := w.must("run", "empty", "--", "env", "-0"); parseEnv(r.stdout)["OPENROUTER_API_KEY"] != "" {
		t.Fatal("empty agent got a credential")
	}

	// Usage errors: exit 2, nothing runs.
	for _, args := range [][]string{
		{"run", "bot", "touch", marker},                // no --
		{"run", "--", "touch", marker},                 // no agent
		{"run", "bot", "extra", "--", "touch", marker}, // two agents
		{"run", "bot", "--"},                           // no command
		{"run", "bot", "--env", "NOEQUALS", "--", "touch", marker},
		{"run", "bot", "--env", "=openrouter", "--", "touch", marker},
		{"run", "bot", "--env", "X=", "--", "touch", marker},
		{"run", "bot", "--env", "1X=openrouter", "--", "touch", marker},
		{"run", "bot", "--env", "X-Y=openrouter", "--", "touch", marker},
		{"run", "bot", "--env", "X=Bad.Service", "--", "touch", marker},
	} {
		expectCode(t, w.ak(args...), 2, args...)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran despite a usage error")
	}
	r = w.ak("run", "bot", "--env", "NOEQUALS", "--", "true")
	if !strings.Contains(r.stderr, "Invalid --env format") {
		t.Fatalf("--env message: %s", r)
	}
}

func TestRunExitStatus(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithBot(t, newSecret())
	for _, tc := range []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"exit 255", 255},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
		{"kill -INT $$", 128 + int(syscall.SIGINT)},
	} {
		r := w.ak("run", "bot", "--", "sh", "-c", tc.script)
		expectCode(t, r, tc.code, "run sh -c", tc.script)
		if tc.code != 0 && r.stderr != "" {
			t.Errorf("%q: the CLI added output to the child's: %q", tc.script, r.stderr)
		}
	}
	r := w.ak("run", "bot", "--", "no-such-command-"+randHex(4))
	expectStderr(t, r, 127, "run missing command", "command not found")
	nonExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(nonExec, []byte("#!/bin/sh\n"), 0o644)
	expectCode(t, w.ak("run", "bot", "--", nonExec), 126, "run non-executable")
}

func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithBot(t, newSecret())
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGTERM, 42}, {syscall.SIGINT, 43}, {syscall.SIGHUP, 44}} {
		script := `sleep 60 >/dev/null 2>&1 & p=$!
trap 'kill $p; exit 42' TERM
trap 'kill $p; exit 43' INT
trap 'kill $p; exit 44' HUP
echo ready
wait $p`
		cmd := exec.Command(binPath, "run", "bot", "--", "sh", "-c", script)
		cmd.Env = w.env()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitLine(t, stdout, "ready")
		if err := cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code {
			t.Errorf("%v to agentkeys: exit %d (%v), want %d from the child's trap", tc.sig, code, err, tc.code)
		}
	}
}

func TestRunSecretNotInArgv(t *testing.T) {
	t.Parallel()
	secret := newSecret()
	w, _ := newWorldWithBot(t, secret)
	// The child prints its own argv, its parent's (the CLI's) argv and its
	// own environment, NUL-separated sections.
	script := `cat /proc/$$/cmdline; printf '\n--SEP--\n'; cat /proc/$PPID/cmdline; printf '\n--SEP--\n'; cat /proc/$$/environ`
	r := w.must("--verbose", "run", "bot", "--no-masking", "--", "sh", "-c", script)
	parts := strings.Split(r.stdout, "\n--SEP--\n")
	if len(parts) != 3 {
		t.Fatalf("unexpected output: %q", r.stdout)
	}
	if !strings.Contains(parts[1], "agentkeys") || !strings.Contains(parts[1], "run") {
		t.Fatalf("parent cmdline is not the CLI's: %q", parts[1])
	}
	if strings.Contains(parts[0], secret) || strings.Contains(parts[1], secret) {
		t.Fatal("the secret is in a process argument list")
	}
	if !strings.Contains(parts[2], "OPENROUTER_API_KEY="+secret) {
		t.Fatal("the child's environment lacks the secret (the test would prove nothing)")
	}
	if strings.Contains(r.stderr, secret) {
		t.Fatalf("--verbose leaks the secret: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "OPENROUTER_API_KEY") || !strings.Contains(r.stderr, "POST /credential/read-batch") {
		t.Fatalf("--verbose should name the variables and requests: %s", r.stderr)
	}
}

func TestNoSecretsInVerboseOrFiles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id := "identity-" + randHex(8)
	env := w.env("AGENTKEYS_AUTH_TOKEN=" + id)
	var stderr strings.Builder
	run := func(stdin string, args ...string) result {
		t.Helper()
		var r result
		if stdin == "" {
			r = w.exec(nil, env, append([]string{"--verbose"}, args...)...)
		} else {
			r = w.exec(strings.NewReader(stdin), env, append([]string{"--verbose"}, args...)...)
		}
		stderr.WriteString(r.stderr)
		return r
	}
	if r := run("", "init"); r.code != 0 {
		t.Fatal(r)
	}
	agentFile := filepath.Join(w.home, "agent-session.json")
	run("", "agent", "create", "bot", "--services", "openrouter", "--session-out", agentFile)
	secret := newSecret()
	run(secret, "store", "bot", "openrouter")
	run("", "read", "bot", "openrouter")
	run("", "list", "bot")
	run("", "run", "bot", "--", "true")
	run("", "usage")
	run("", "scope", "get", "bot")
	run("", "whoami")
	run("", "read", "bot", "nothing-here") // an error path too

	master := w.storedSession("default")
	agentSess, err := keychain.ReadSessionFile(agentFile)
	if err != nil {
		t.Fatal(err)
	}
	all := stderr.String()
	for name, s := range map[string]string{"credential": secret, "master token": master.Token.Reveal(), "agent token": agentSess.Token.Reveal(), "identity": id} {
		if strings.Contains(all, s) {
			t.Errorf("--verbose output contains the %s", name)
		}
	}
	if !strings.Contains(all, "POST /credential/store") {
		t.Fatalf("--verbose prints no requests:\n%s", all)
	}

	// Files under HOME: the credential nowhere; each token only in its own
	// session file.
	sessionFile := filepath.Join(w.cfg, "agentkeys", "default", "session.json")
	filepath.WalkDir(w.home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		if strings.Contains(s, secret) {
			t.Errorf("%s contains the credential", path)
		}
		if strings.Contains(s, id) {
			t.Errorf("%s contains the identity assertion", path)
		}
		if path != sessionFile && strings.Contains(s, master.Token.Reveal()) {
			t.Errorf("%s contains the master token", path)
		}
		if path != agentFile && strings.Contains(s, agentSess.Token.Reveal()) {
			t.Errorf("%s contains the agent token", path)
		}
		return nil
	})
	data, _ := os.ReadFile(sessionFile)
	if !strings.Contains(string(data), master.Token.Reveal()) {
		t.Fatal("the session store does not hold the token (the scan proves nothing)")
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	out := filepath.Join(t.TempDir(), "a.json")
	a := w.createAgent("bot", "--services", "openrouter", "--session-out", out)
	agentSess, _ := keychain.ReadSessionFile(out)
	c, _ := backendclient.New(w.url)
	ctx := context.Background()

	r := w.must("revoke", "bot")
	if !strings.Contains(r.stdout, "Revoked agent="+a) {
		t.Fatalf("revoke bot: %s", r)
	}
	if _, err := c.Validate(ctx, agentSess.Token); err == nil {
		t.Fatal("the agent's session survived revoke")
	}
	// Nothing left to revoke: revoking again succeeds and says so.
	if r := w.must("revoke", "bot"); !strings.Contains(r.stdout, "already revoked") {
		t.Fatalf("revoke bot again: %s", r)
	}
	expectCode(t, w.ak("revoke", "a", "b"), 2, "revoke two")

	// Revoke self: the master's session and its agents' die, local wiped.
	out2 := filepath.Join(t.TempDir(), "b.json")
	w.createAgent("bot2", "--services", "openrouter", "--session-out", out2)
	agent2, _ := keychain.ReadSessionFile(out2)
	sessionFile := filepath.Join(w.cfg, "agentkeys", "default", "session.json")
	saved, _ := os.ReadFile(sessionFile)
	master := w.storedSession("default")
	var rj struct {
		Revoked    string `json:"revoked"`
		LocalWiped bool   `json:"local_session_wiped"`
	}
	oneJSON(t, w.must("revoke", "--self", "--json").stdout, &rj)
	if rj.Revoked != master.Wallet.String() || !rj.LocalWiped {
		t.Fatalf("revoke --json: %+v", rj)
	}
	if _, err := os.Stat(sessionFile); !os.IsNotExist(err) {
		t.Fatalf("local session not wiped: %v", err)
	}
	for _, tok := range []agentkeys.Token{master.Token, agent2.Token} {
		if _, err := c.Validate(ctx, tok); err == nil {
			t.Fatal("a session survived revoking the master")
		}
	}
	r = w.ak("whoami")
	expectStderr(t, r, 1, "whoami after revoke", "agentkeys init")
	// A stale local copy of an already revoked session: wiped, exit 0.
	os.WriteFile(sessionFile, saved, 0o600)
	r = w.must("revoke", "--self")
	if !strings.Contains(r.stdout, "already invalid") {
		t.Fatalf("revoke of a dead session: %s", r)
	}
	if _, err := os.Stat(sessionFile); !os.IsNotExist(err) {
		t.Fatal("stale session not wiped")
	}
}

func TestTeardown(t *testing.T) {
	t.Parallel()
	w, a := newWorldWithBot(t, newSecret())

	// Not a terminal and no --yes: refused, nothing deleted.
	r := w.ak("teardown", "bot")
	expectStderr(t, r, 2, "teardown without --yes", "--yes")
	w.must("read", "bot", "openrouter")

	var tj struct {
		Agent              string `json:"agent"`
		CredentialsRemoved int    `json:"credentials_removed"`
	}
	oneJSON(t, w.must("teardown", "bot", "--yes", "--json").stdout, &tj)
	if tj.Agent != a || tj.CredentialsRemoved != 1 {
		t.Fatalf("teardown --json: %+v", tj)
	}
	// The name is forgotten; the wallet reads nothing.
	expectCode(t, w.ak("read", "bot", "openrouter"), 1, "read by forgotten name")
	expectCode(t, w.ak("read", a, "openrouter"), 1, "read torn down")
	if strings.Contains(w.must("agent", "list").stdout, "bot") {
		t.Fatal("teardown left the name")
	}
	expectCode(t, w.ak("teardown", a, "--yes"), 1, "teardown twice")
	expectCode(t, w.ak("teardown"), 2, "teardown no arg")
	// The name can be reused.
	w.createAgent("bot", "--services", "openrouter")
}

// TestTeardownOwnMaster: a master may tear down its own wallet (the
// original allowed it). Without a terminal it needs --yes (exit 2 naming
// it, nothing deleted); with it every agent and credential goes, the local
// session is wiped, and the same identity logs in again to an empty wallet.
func TestTeardownOwnMaster(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id, wallet := w.initMaster()
	w.createAgent("bot", "--services", "openrouter")
	w.mustIn(newSecret(), "store", "bot", "openrouter")
	w.mustIn(newSecret(), "store", wallet, "openai")

	for _, args := range [][]string{{"teardown", "--self"}, {"teardown", wallet}} {
		r := w.ak(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--yes") {
			t.Fatalf("agentkeys %s without a tty: want exit 2 naming --yes, got %s", strings.Join(args, " "), r)
		}
	}
	expectCode(t, w.ak("teardown", "--self", "bot", "--yes"), 2, "teardown --self bot")
	w.must("read", "bot", "openrouter")

	var tj struct {
		Agent      string `json:"agent"`
		Removed    int    `json:"credentials_removed"`
		Wallets    int    `json:"wallets_removed"`
		LocalWiped bool   `json:"local_session_wiped"`
	}
	oneJSON(t, w.must("teardown", "--self", "--yes", "--json").stdout, &tj)
	if tj.Agent != wallet || tj.Removed != 2 || tj.Wallets != 2 || !tj.LocalWiped {
		t.Fatalf("teardown --self --json: %+v", tj)
	}
	expectCode(t, w.ak("whoami"), 1, "whoami after tearing down the master")

	r := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init")
	if r.code != 0 || !strings.Contains(r.stdout, wallet) {
		t.Fatalf("init again after teardown: want the same wallet %s, got %s", wallet, r)
	}
	expectCode(t, w.ak("read", wallet, "openai"), 1, "read of a credential the teardown removed")
	w.mustIn(newSecret(), "store", wallet, "openai") // the wallet works again
}

func TestScope(t *testing.T) {
	t.Parallel()
	w, a := newWorldWithAgent(t, "bot", "--services", "openrouter,github")

	r := w.must("scope", "get", "bot")
	if !strings.Contains(r.stdout, "github, openrouter") || !strings.Contains(r.stdout, "read_only: false") {
		t.Fatalf("scope get: %s", r)
	}
	type view struct {
		Agent    string   `json:"agent"`
		Services []string `json:"services"`
		ReadOnly bool     `json:"read_only"`
	}
	var v view
	oneJSON(t, w.must("scope", "set", "bot", "--services", "brave-search,openrouter", "--read-only", "--json").stdout, &v)
	if v.Agent != a || strings.Join(v.Services, ",") != "brave-search,openrouter" || !v.ReadOnly {
		t.Fatalf("scope set: %+v", v)
	}
	oneJSON(t, w.must("scope", "set", "bot", "--add", "github", "--remove", "brave-search", "--json").stdout, &v)
	if strings.Join(v.Services, ",") != "github,openrouter" || !v.ReadOnly {
		t.Fatalf("scope add/remove (read_only kept): %+v", v)
	}
	oneJSON(t, w.must("scope", "set", "bot", "--read-only=false", "--json").stdout, &v)
	if v.ReadOnly || len(v.Services) != 2 {
		t.Fatalf("scope --read-only=false: %+v", v)
	}
	oneJSON(t, w.must("scope", "get", a, "--json").stdout, &v)
	if strings.Join(v.Services, ",") != "github,openrouter" {
		t.Fatalf("scope get --json: %+v", v)
	}
	// Run follows the new scope.
	gh := newSecret()
	w.mustIn(gh, "store", "bot", "github")
	w.must("scope", "set", "bot", "--remove", "github")
	if parseEnv(w.must("run", "bot", "--", "env", "-0").stdout)["GITHUB_API_KEY"] != "" {
		t.Fatal("run injected a service removed from the scope")
	}
	for _, args := range [][]string{
		{"scope", "set", "bot"},
		{"scope", "set", "bot", "--services", "a", "--add", "b"},
		{"scope", "set", "bot", "--add", "a", "--remove", "a"},
		{"scope", "set", "bot", "--services", "BAD"},
		{"scope", "get"},
		{"scope", "get", "a", "b"},
	} {
		expectCode(t, w.ak(args...), 2, args...)
	}
	expectCode(t, w.ak("scope", "get", string(agentkeys.NewWallet())), 1, "scope get foreign")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, master := w.initMaster()
	a := w.createAgent("bot", "--services", "openrouter")
	b := w.createAgent("other", "--services", "github")
	w.mustIn(newSecret(), "store", "bot", "openrouter")
	w.must("read", "bot", "openrouter")
	w.must("read", "bot", "openrouter")
	w.ak("read", "bot", "nothing")
	w.mustIn(newSecret(), "store", "other", "github")

	r := w.must("usage")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "OWNER") || !strings.Contains(lines[0], "RESULT") {
		t.Fatalf("usage header: %q", lines[0])
	}
	// Aligned: every row starts its AGENT column at the header's offset,
	// and agents show by name, the master (no name) by wallet.
	col := strings.Index(lines[0], "AGENT")
	agentCol := map[string]int{}
	for _, l := range lines[1:] {
		if len(l) < col+2 || l[col-1] != ' ' || l[col] == ' ' {
			t.Fatalf("misaligned row %q (AGENT at %d)", l, col)
		}
		agentCol[strings.Fields(l[col:])[0]]++
	}
	if agentCol["bot"] == 0 || agentCol["other"] == 0 || agentCol[master] == 0 || agentCol[a] != 0 {
		t.Fatalf("AGENT column values %v: want the names bot and other, and the master's wallet", agentCol)
	}
	if !strings.Contains(r.stdout, master) || !strings.Contains(r.stdout, "NOT_FOUND") {
		t.Fatalf("usage text:\n%s", r.stdout)
	}

	type page struct {
		Events []struct {
			ID                                          int64
			Time, Owner, Agent, Service, Action, Result string
		}
		NextCursor string `json:"next_cursor"`
	}
	var p page
	oneJSON(t, w.must("usage", "bot", "--json", "--action", "read", "--result", "ok").stdout, &p)
	if len(p.Events) != 2 {
		t.Fatalf("filtered usage: %+v", p)
	}
	for _, e := range p.Events {
		if e.Agent != a || e.Action != "read" || e.Result != "ok" || e.Service != "openrouter" || !strings.HasSuffix(e.Time, "Z") {
			t.Fatalf("event: %+v", e)
		}
	}
	oneJSON(t, w.must("usage", "--json", "--service", "github").stdout, &p)
	if len(p.Events) != 1 || p.Events[0].Agent != b {
		t.Fatalf("--service github: %+v", p)
	}
	oneJSON(t, w.must("usage", "--json", "--since", "1h").stdout, &p)
	total := len(p.Events)
	if total < 8 {
		t.Fatalf("--since 1h: %d events", total)
	}
	if r := w.must("usage", "--since", "2099-01-01T00:00:00Z"); !strings.Contains(r.stdout, "No audit events found.") {
		t.Fatalf("future --since: %s", r)
	}
	// --limit and cursors.
	r = w.must("usage", "--json", "--limit", "3")
	oneJSON(t, r.stdout, &p)
	if len(p.Events) != 3 || p.NextCursor == "" {
		t.Fatalf("--limit 3: %d events, cursor %q", len(p.Events), p.NextCursor)
	}
	first, cursor := p.Events, p.NextCursor
	p = page{}
	oneJSON(t, w.must("usage", "--json", "--limit", "3", "--cursor", cursor).stdout, &p)
	if len(p.Events) != 3 || p.Events[0].ID >= first[2].ID {
		t.Fatalf("--cursor did not continue: %+v", p)
	}
	if r := w.must("usage", "--limit", "3"); !strings.Contains(r.stderr, "--all") {
		t.Fatalf("no hint about more events: %s", r)
	}
	oneJSON(t, w.must("usage", "--json", "--all").stdout, &p)
	if len(p.Events) < total || p.NextCursor != "" {
		t.Fatalf("--all: %d events (want ≥ %d), cursor %q", len(p.Events), total, p.NextCursor)
	}
	for _, args := range [][]string{
		{"usage", "--since", "yesterday"},
		{"usage", "--since", "-5h"},
		{"usage", "--limit", "0"},
		{"usage", "--service", "Bad"},
		{"usage", "a", "b"},
	} {
		expectCode(t, w.ak(args...), 2, args...)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, args := range [][]string{
		{"bogus"},
		{"--bogus"},
		{"whoami", "extra"},
		{"read", "--nope", "a", "b"},
		{"agent"},
		{"agent", "bogus"},
		{"scope"},
		{"scope", "bogus", "x"},
		{"inbox"},
		{"inbox", "list", "a", "b"},
		{"link", "a"},
		{"link", "a", "--alias", "x", "--email", "y@z"},
		{"link", "a", "--email", "not-an-email"},
		{"provision"},
		{"provision", "myspace"},
		{"provision", "openrouter", "--email-backend", "pigeon"},
		{"provision", "openrouter", "--timeout", "soon"},
		{},
	} {
		r := w.ak(args...)
		expectCode(t, r, 2, args...)
		if !strings.HasPrefix(r.stderr, "agentkeys: ") && len(args) > 0 {
			t.Errorf("%v: stderr does not start with 'agentkeys: ': %q", args, r.stderr)
		}
	}
	// Help and version exit 0.
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"--version"}, {"completion", "bash"}} {
		expectCode(t, w.ak(args...), 0, args...)
	}
}

func TestJSONOutputsAreOneDocument(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id := "identity-" + randHex(8)
	r := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "--json", "init")
	var v any
	oneJSON(t, r.stdout, &v)
	w.must("agent", "create", "bot", "--services", "openrouter")
	w.mustIn("v", "store", "bot", "openrouter")
	for _, args := range [][]string{
		{"whoami"}, {"agent", "list"}, {"list", "bot"}, {"read", "bot", "openrouter"},
		{"scope", "get", "bot"}, {"usage"}, {"usage", "bot", "--all"},
		{"agent", "create", "two", "--services", "x"},
		{"revoke", "two"},
	} {
		r := w.must(append([]string{"--json"}, args...)...)
		oneJSON(t, r.stdout, &v)
	}
	// --json after the subcommand works too (persistent flags).
	oneJSON(t, w.must("whoami", "--json").stdout, &v)
}

func TestBackendMismatchNeverSendsToken(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	f := newFakeBackend(t)
	env := w.env("AGENTKEYS_BACKEND_URL=" + f.srv.URL)
	r := w.exec(nil, env, "whoami")
	expectStderr(t, r, 1, "whoami against another backend", "refusing to send the token")
	if r := w.exec(nil, w.env(), "--backend", f.srv.URL, "list", "0x"+strings.Repeat("a", 40)); r.code != 1 {
		t.Fatalf("--backend mismatch: %s", r)
	}
	if n := f.requests.Load(); n != 0 {
		t.Fatalf("the other backend received %d request(s)", n)
	}
	// The stored backend is used when none is given.
	noEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.home, "XDG_CONFIG_HOME=" + w.cfg, "AGENTKEYS_SESSION_STORE=file"}
	if r := w.exec(nil, noEnv, "whoami"); r.code != 0 || !strings.Contains(r.stdout, w.url) {
		t.Fatalf("whoami with the stored backend: %s", r)
	}
	// Unreachable backend: exit 1 with a hint, no token in the message.
	tok := w.storedSession("default").Token.Reveal()
	r = w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN=x", "AGENTKEYS_BACKEND_URL=http://127.0.0.1:1"), "--profile", "dead", "init")
	expectCode(t, r, 1, "init unreachable")
	if !strings.Contains(r.stderr, "hint:") || strings.Contains(r.stderr, tok) {
		t.Fatalf("unreachable: %s", r)
	}
}

func TestAutoStoreFallsBackToFileWithoutKeychain(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/run/user/" + strconv.Itoa(os.Getuid()) + "/bus"); err == nil {
		t.Skip("this machine has a D-Bus session bus")
	}
	w := newWorld(t)
	// No AGENTKEYS_SESSION_STORE, no DBUS_SESSION_BUS_ADDRESS.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.home, "XDG_CONFIG_HOME=" + w.cfg, "AGENTKEYS_BACKEND_URL=" + w.url, "XDG_RUNTIME_DIR=" + t.TempDir()}
	r := w.exec(nil, append(env, "AGENTKEYS_AUTH_TOKEN=id-"+randHex(4)), "--verbose", "init")
	expectCode(t, r, 0, "init in auto mode")
	if n := strings.Count(r.stderr, "OS keychain unavailable"); n != 1 {
		t.Fatalf("fallback noted %d times: %s", n, r)
	}
	if m := fileMode(t, filepath.Join(w.cfg, "agentkeys", "default", "session.json")); m != 0o600 {
		t.Fatalf("session file mode %04o", m)
	}
	r = w.exec(nil, env, "whoami")
	expectCode(t, r, 0, "whoami in auto mode")
	if strings.Contains(r.stderr, "keychain") {
		t.Fatalf("the fallback is only reported with --verbose: %s", r)
	}
	// Forcing the keychain where none exists fails clearly.
	r = w.exec(nil, append(env, "AGENTKEYS_SESSION_STORE=keychain"), "whoami")
	expectStderr(t, r, 1, "forced keychain", "D-Bus")
	expectCode(t, w.exec(nil, append(env, "AGENTKEYS_SESSION_STORE=vault"), "whoami"), 1, "bad store")
}

// TestRunOneRoundTrip: `run <name>` resolves the agent and reads its
// credentials in one request to the backend; an unknown name still gets
// the usual message and hint.
func TestRunOneRoundTrip(t *testing.T) {
	t.Parallel()
	secret := newSecret()
	w, _ := newWorldWithBot(t, secret)
	r := w.must("--verbose", "run", "bot", "--", "sh", "-c", `test -n "$OPENROUTER_API_KEY"`)
	var requests []string
	for line := range strings.Lines(r.stderr) {
		if strings.HasPrefix(line, "agentkeys: ") && strings.Contains(line, " -> ") {
			requests = append(requests, strings.TrimSpace(line))
		}
	}
	if len(requests) != 1 || !strings.HasPrefix(requests[0], "agentkeys: POST /credential/read-batch -> 200") {
		t.Fatalf("run bot made %d backend requests, want one read-batch: %q", len(requests), requests)
	}
	r = w.exec(nil, w.env(), "run", "nobody", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, `unknown agent "nobody"`) || !strings.Contains(r.stderr, "agentkeys agent list") {
		t.Fatalf("run of an unknown agent: %+v", r)
	}
}

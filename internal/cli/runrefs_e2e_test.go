package cli

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentkeys/agentkeys/internal/secretref"
)

// readRows counts the audited successful reads of agent's service.
func (w *world) readRows(t *testing.T, agent, service string) int {
	t.Helper()
	var page struct {
		Events []json.RawMessage `json:"events"`
	}
	oneJSON(t, w.must("usage", agent, "--action", "read", "--result", "ok", "--service", service, "--json").stdout, &page)
	return len(page.Events)
}

// start starts the binary with pipes on its stdout and stderr; it is
// killed when the test ends.
func (w *world) start(t *testing.T, args ...string) (*exec.Cmd, io.Reader, io.Reader) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = w.env()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdout, stderr
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// TestRunEnvFileReferences: run --env-file (no <agent>) gives the command
// the file's literals and the referenced credentials of two agents (by
// name and by wallet), masked unless --no-masking, each read audited;
// a reference to an unknown agent, to a service outside the agent's scope
// or to a missing credential stops run before the command, naming it.
func TestRunEnvFileReferences(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter,openai,anthropic")
	ci := w.createAgent("ci", "--services", "github")
	orKey, ghKey := newSecret(), newSecret()
	w.mustIn(orKey, "store", "bot", "openrouter")
	w.mustIn(newSecret(), "store", "bot", "openai")
	w.mustIn(newSecret(), "store", "bot", "github") // stored, but outside bot's scope
	w.mustIn(ghKey, "store", "ci", "github")

	envFile := filepath.Join(w.home, "app.env")
	writeFile(t, envFile, "# the app's settings\n"+
		"export OPENROUTER=agentkeys://bot/openrouter\n"+
		"GH=\"agentkeys://"+ci+"/github\"  # by wallet\n"+
		"PLAIN='hello # not a comment'\n"+
		"LITERAL='agentkeys://bot/openrouter'\n", 0o600)
	script := `printf '%s\n' "or=$OPENROUTER" "gh=$GH" "plain=$PLAIN" "literal=$LITERAL" "auto=${OPENAI_API_KEY:-unset}"`

	r := w.must("run", "--no-masking", "--env-file", envFile, "--", "sh", "-c", script)
	want := "or=" + orKey + "\ngh=" + ghKey + "\nplain=hello # not a comment\nliteral=agentkeys://bot/openrouter\nauto=unset\n"
	if r.stdout != want {
		t.Fatalf("child saw:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = w.must("run", "--env-file", envFile, "--", "sh", "-c", script)
	if strings.Contains(r.stdout, orKey) || strings.Contains(r.stdout, ghKey) || !strings.Contains(r.stdout, "or=****\ngh=****\n") {
		t.Fatalf("references not masked: %s", r)
	}
	if n := w.readRows(t, "ci", "github"); n != 2 {
		t.Fatalf("audited reads of ci/github = %d, want 2 (one per run)", n)
	}

	// With an <agent> too: its variables, then the file's (which win).
	r = w.must("run", "bot", "--no-masking", "--env-file", envFile, "--", "sh", "-c", `test -n "$OPENAI_API_KEY" && echo "gh=$GH"`)
	if r.stdout != "gh="+ghKey+"\n" {
		t.Fatalf("agent plus env file: %s", r)
	}

	marker := filepath.Join(w.home, "ran")
	for _, tc := range []struct{ line, want string }{
		{"K=agentkeys://nobody/openrouter", "reference agentkeys://nobody/openrouter: unknown agent"},
		{"K=agentkeys://bot/github", "reference agentkeys://bot/github: service github is outside the scope of agent bot"},
		{"K=agentkeys://bot/anthropic", "reference agentkeys://bot/anthropic: read credential"},
		{"K=agentkeys://bot/Bad", "line 2: K: bad reference"},
	} {
		bad := filepath.Join(w.home, "bad.env")
		writeFile(t, bad, "OK=1\n"+tc.line+"\n", 0o600)
		r := w.ak("run", "--env-file", bad, "--", "touch", marker)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("%s: want a failure naming %q, got %s", tc.line, tc.want, r)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a refused run started its command")
	}
	// Without an agent and without env files there is nothing to run with.
	expectCode(t, w.ak("run", "--", "true"), 2, "run -- true")
	expectCode(t, w.ak("run", "--env-file", envFile, "--env", "X=openai", "--", "true"), 2, "--env without agent")
	expectCode(t, w.ak("run", "--env-file", envFile, "--aws-server", "--", "true"), 2, "--aws-server without agent")
}

// TestRunOnly: --only injects just the named services; a named service
// outside the scope or not stored fails before the command.
func TestRunOnly(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter,openai,anthropic")
	w.mustIn(newSecret(), "store", "bot", "openrouter")
	w.mustIn(newSecret(), "store", "bot", "openai")
	r := w.must("run", "bot", "--only", "openai", "--", "sh", "-c", `test -n "$OPENAI_API_KEY" && echo "or=${OPENROUTER_API_KEY:-unset}"`)
	if r.stdout != "or=unset\n" {
		t.Fatalf("--only openai: %s", r)
	}
	for _, tc := range []struct{ only, want string }{
		{"github", "--only github: service github is outside the agent's scope"},
		{"anthropic", "--only anthropic: the agent has no stored credential"},
	} {
		r := w.ak("run", "bot", "--only", tc.only, "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("--only %s: %s", tc.only, r)
		}
	}
}

// TestInject: inject renders the template's references (leaving other
// {{ }} alone) into a 0600 file, replacing an existing file atomically,
// refuses a symlink, and writes nothing when a reference fails.
func TestInject(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter,openai")
	orKey := newSecret()
	w.mustIn(orKey, "store", "bot", "openrouter")
	tmpl := filepath.Join(w.home, "config.tmpl")
	writeFile(t, tmpl, "api_key: {{ agentkeys://bot/openrouter }}\nimage: {{ .Values.image }}\nagain: {{agentkeys://bot/openrouter}}\n", 0o644)
	out := filepath.Join(w.home, "config.yaml")
	writeFile(t, out, "old\n", 0o644)

	w.must("inject", "-i", tmpl, "-o", out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "api_key: " + orKey + "\nimage: {{ .Values.image }}\nagain: " + orKey + "\n"; string(got) != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
	if m := fileMode(t, out); m != 0o600 {
		t.Fatalf("output mode %o, want 600", m)
	}
	if n := w.readRows(t, "bot", "openrouter"); n != 1 {
		t.Fatalf("audited reads = %d, want 1", n)
	}
	// stdin to stdout.
	r := w.exec(strings.NewReader("k={{ agentkeys://bot/openrouter }}"), w.env(), "inject")
	if r.code != 0 || r.stdout != "k="+orKey || strings.Contains(r.stderr, "warning") {
		t.Fatalf("inject to stdout: %s", r)
	}

	// A symlink at -o is refused; its target is untouched.
	target := filepath.Join(w.home, "target")
	writeFile(t, target, "keep\n", 0o644)
	link := filepath.Join(w.home, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r = w.ak("inject", "-i", tmpl, "-o", link)
	if r.code != 1 || !strings.Contains(r.stderr, "symlink") {
		t.Fatalf("inject over a symlink: %s", r)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Fatal("the symlink's target was written")
	}
	// A failing reference writes nothing.
	writeFile(t, tmpl, "a: {{ agentkeys://bot/openrouter }}\nb: {{ agentkeys://bot/openai }}\n", 0o644)
	r = w.ak("inject", "-i", tmpl, "-o", out)
	if r.code != 1 || !strings.Contains(r.stderr, "reference agentkeys://bot/openai") {
		t.Fatalf("inject with a missing credential: %s", r)
	}
	if b, _ := os.ReadFile(out); !strings.HasPrefix(string(b), "api_key: ") {
		t.Fatalf("a failed inject changed the output: %q", b)
	}
}

// TestExport: the three formats carry every value back unchanged (dotenv
// through run --env-file's parser, shell through sh, JSON); a terminal
// gets a warning, a pipe does not.
func TestExport(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter,openai")
	tricky := "it's $(touch pwned) \"q\" `id` " + randHex(8)
	orKey := newSecret()
	w.mustIn(tricky, "store", "bot", "openai")
	w.mustIn(orKey, "store", "bot", "openrouter")

	r := w.must("export", "bot")
	if strings.Contains(r.stderr, "warning") {
		t.Fatalf("warning on a pipe: %s", r)
	}
	es, err := secretref.ParseDotenv([]byte(r.stdout))
	if err != nil || len(es) != 2 || es[0].Key != "OPENAI_API_KEY" || es[0].Value != tricky || es[1].Value != orKey {
		t.Fatalf("dotenv export %q parsed as %+v, %v", r.stdout, es, err)
	}

	r = w.must("export", "bot", "--format", "shell", "--only", "openai")
	sh := exec.Command("sh", "-c", `eval "$(cat)"; printf %s "$OPENAI_API_KEY"; test -z "$OPENROUTER_API_KEY"`)
	sh.Dir = w.home
	sh.Stdin = strings.NewReader(r.stdout)
	got, err := sh.Output()
	if err != nil || string(got) != tricky {
		t.Fatalf("shell export read back as %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(w.home, "pwned")); err == nil {
		t.Fatal("the shell export ran a command substitution")
	}

	var obj map[string]string
	oneJSON(t, w.must("export", "bot", "--format", "json").stdout, &obj)
	if obj["OPENAI_API_KEY"] != tricky || obj["OPENROUTER_API_KEY"] != orKey || len(obj) != 2 {
		t.Fatalf("json export = %v", obj)
	}
	if n := w.readRows(t, "bot", "openai"); n != 3 {
		t.Fatalf("audited reads = %d, want 3", n)
	}

	// On a terminal (script(1) gives the binary a pty), a warning.
	cmd := exec.Command("script", "-qec", binPath+" export bot --only openrouter", "/dev/null")
	cmd.Env = w.env()
	cmd.Dir = w.home
	tty, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(tty), "warning: printing credentials to a terminal") {
		t.Fatalf("export on a terminal: %v\n%s", err, tty)
	}
	expectCode(t, w.ak("export", "bot", "--format", "yaml"), 2, "export --format yaml")
}

// TestRunWatch: run --watch restarts the command with the new value when a
// credential is stored again, polling without audit rows; with
// --watch-signal HUP it signals the command instead of restarting it.
func TestRunWatch(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	w.mustIn("v1-"+newSecret(), "store", "bot", "openrouter")

	// Restart: each generation prints the version prefix of its key (the
	// whole key is masked).
	cmd, stdout, stderr := w.start(t, "--verbose", "run", "bot", "--watch", "--watch-interval", "100ms", "--",
		"sh", "-c", `echo "gen ${OPENROUTER_API_KEY%%-*}"; exec sleep 60`)
	waitLine(t, stdout, "gen v1")
	for range 3 {
		waitLine(t, stderr, "agentkeys: watch: checked")
	}
	reads := w.readRows(t, "bot", "openrouter")
	w.mustIn("v2-"+newSecret(), "store", "bot", "openrouter")
	waitLine(t, stdout, "gen v2")
	for range 3 {
		waitLine(t, stderr, "agentkeys: watch: checked")
	}
	if n := w.readRows(t, "bot", "openrouter"); n != reads+1 {
		t.Fatalf("audited reads went %d -> %d: polling must not read, the restart reads once", reads, n)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("run --watch after SIGTERM: %v", err)
	}

	// Signal mode: the same process gets HUP.
	cmd, stdout, _ = w.start(t, "run", "bot", "--watch", "--watch-interval", "100ms", "--watch-signal", "HUP", "--",
		"sh", "-c", `trap 'echo hup' HUP; echo ready; while :; do sleep 0.05; done`)
	waitLine(t, stdout, "ready")
	w.mustIn("v3-"+newSecret(), "store", "bot", "openrouter")
	waitLine(t, stdout, "hup")
	// SIGTERM, not SIGKILL: run passes it on, so the command ends with run
	// instead of living on as an orphan after the test.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("run --watch-signal HUP after SIGTERM: %v", err)
	}

	// The agent torn down: run stops the command (SIGTERM) and fails.
	cmd, stdout, stderr = w.start(t, "run", "bot", "--watch", "--watch-interval", "100ms", "--",
		"sh", "-c", `trap 'echo stopped; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	waitLine(t, stdout, "ready")
	w.must("teardown", "bot", "--yes")
	waitLine(t, stdout, "stopped")
	errOut, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(errOut), "torn down") {
		t.Fatalf("run --watch after teardown: %v\n%s", err, errOut)
	}

	expectCode(t, w.ak("run", "bot", "--watch-signal", "HUP", "--", "true"), 2, "--watch-signal without --watch")
}

package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// binPath is the agentkeys binary built once for the whole test run.
var binPath string

func TestMain(m *testing.M) {
	testkit.RunWithBinaries(m, func(p map[string]string) { binPath = p["agentkeys"] }, "agentkeys")
}

// world is one backend on loopback and one master's home directory.
type world struct {
	t    testing.TB
	url  string
	home string
	cfg  string // XDG_CONFIG_HOME
}

func newWorld(t testing.TB) *world {
	t.Helper()
	return worldOn(t, backendtest.StartMock(t).URL())
}

// newWorldWithAgent is newWorld with a master logged in who has created
// the agent name (`agent create name flags…`); it returns the agent's
// wallet too.
func newWorldWithAgent(t testing.TB, name string, flags ...string) (*world, string) {
	t.Helper()
	w := newWorld(t)
	w.initMaster()
	return w, w.createAgent(name, flags...)
}

// newWorldWithBot is newWorldWithAgent with an agent "bot" scoped to
// openrouter and secret stored for it.
func newWorldWithBot(t testing.TB, secret string) (*world, string) {
	t.Helper()
	w, agent := newWorldWithAgent(t, "bot", "--services", "openrouter")
	w.mustIn(secret, "store", "bot", "openrouter")
	return w, agent
}

// worldOn is a fresh master's home on the backend at url.
func worldOn(t testing.TB, url string) *world {
	home := t.TempDir()
	return &world{t: t, url: url, home: home, cfg: filepath.Join(home, ".config")}
}

// newDevWorld is a world on `agentkeys dev` (StartDev) whose broker mints
// from a fake STS. It sets the process environment, so its tests cannot
// run in parallel.
func newDevWorld(t *testing.T) (*world, *DevStack, *ststest.Fake) {
	t.Helper()
	fake := ststest.New()
	t.Cleanup(fake.Close)
	// The dev broker's own (long-lived) AWS identity, for the fake STS.
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIADEVBROKER0000000")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "dev-broker-secret-"+randHex(8))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dev, err := StartDev(context.Background(), DevOptions{STSEndpoint: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Stop(context.Background()) })
	return worldOn(t, dev.Backend.URL()), dev, fake
}

// env is the binary's whole environment: nothing leaks in from the test
// process (no D-Bus, no real HOME).
func (w *world) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.home,
		"XDG_CONFIG_HOME=" + w.cfg,
		"AGENTKEYS_SESSION_STORE=file",
		"AGENTKEYS_BACKEND_URL=" + w.url,
	}, extra...)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// exec runs the binary; stdin nil means /dev/null (not a terminal).
func (w *world) exec(stdin io.Reader, env []string, args ...string) result {
	w.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Dir = w.home
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	code, ok := testkit.ExitCode(err)
	switch {
	case !ok:
		w.t.Fatalf("agentkeys %v: %v", args, err)
	case code < 0:
		w.t.Fatalf("agentkeys %v died of a signal: %v", args, err)
	}
	r.code = code
	return r
}

func (w *world) ak(args ...string) result { w.t.Helper(); return w.exec(nil, w.env(), args...) }

func (w *world) akIn(stdin string, args ...string) result {
	w.t.Helper()
	return w.exec(strings.NewReader(stdin), w.env(), args...)
}

// must runs the binary and fails the test unless it exits 0.
func (w *world) must(args ...string) result {
	w.t.Helper()
	r := w.ak(args...)
	if r.code != 0 {
		w.t.Fatalf("agentkeys %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func (w *world) mustIn(stdin string, args ...string) result {
	w.t.Helper()
	r := w.akIn(stdin, args...)
	if r.code != 0 {
		w.t.Fatalf("agentkeys %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// mustSay runs the binary with stdin ("" for none) and fails the test
// unless it exits 0 and prints the line want.
func (w *world) mustSay(stdin, want string, args ...string) {
	w.t.Helper()
	var r result
	if stdin == "" {
		r = w.must(args...)
	} else {
		r = w.mustIn(stdin, args...)
	}
	if strings.TrimSpace(r.stdout) != want {
		w.t.Fatalf("agentkeys %s: want %q, got %s", strings.Join(args, " "), want, r)
	}
}

func expectCode(t *testing.T, r result, code int, args ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("agentkeys %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
}

// expectStderr fails t unless r (of agentkeys what) exited with code and
// its stderr holds each of want.
func expectStderr(t *testing.T, r result, code int, what string, want ...string) {
	t.Helper()
	expectCode(t, r, code, what)
	for _, s := range want {
		if !strings.Contains(r.stderr, s) {
			t.Fatalf("agentkeys %s: stderr lacks %q: %s", what, s, r)
		}
	}
}

// initMaster logs a fresh identity in and returns (identity, wallet).
func (w *world) initMaster() (string, string) {
	w.t.Helper()
	id := "identity-" + randHex(8)
	r := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init")
	if r.code != 0 {
		w.t.Fatalf("init: %s", r)
	}
	wallet := strings.TrimPrefix(strings.TrimSpace(r.stdout), "Initialized. Wallet: ")
	if !strings.HasPrefix(wallet, "0x") || len(wallet) != 42 {
		w.t.Fatalf("init printed %q", r.stdout)
	}
	return id, wallet
}

// createAgent creates an agent and returns its wallet.
func (w *world) createAgent(name string, flags ...string) string {
	w.t.Helper()
	r := w.must(append([]string{"agent", "create", name}, flags...)...)
	wallet := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(wallet, "0x") || len(wallet) != 42 {
		w.t.Fatalf("agent create printed %q", r.stdout)
	}
	return wallet
}

// storedSession reads the profile's session file.
func (w *world) storedSession(profile string) keychain.Session {
	w.t.Helper()
	s, err := keychain.ReadSessionFile(filepath.Join(w.cfg, "agentkeys", profile, "session.json"))
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newSecret is a credential value unique to one test.
func newSecret() string { return "sk-test-" + randHex(16) }

// oneJSON decodes s as exactly one JSON document.
func oneJSON(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("more than one JSON document on stdout:\n%s", s)
	}
}

// parseEnv parses `env -0` output.
func parseEnv(out string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(out, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// waitLine reads from r until a line equal to want arrives.
func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var line []byte
		b := make([]byte, 1)
		for {
			if _, err := r.Read(b); err != nil {
				done <- err
				return
			}
			if b[0] == '\n' {
				if string(line) == want {
					done <- nil
					return
				}
				line = line[:0]
				continue
			}
			line = append(line, b[0])
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %q", want)
	}
}

package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevStackAndBrokerTokens runs `agentkeys dev` as a process, uses it
// through the CLI (init, agent, token oidc --verify, token aws without STS)
// and stops it with SIGINT.
func TestDevStackAndBrokerTokens(t *testing.T) {
	t.Parallel()
	w, dev, info := startDev(t)
	env := w.env("AGENTKEYS_BROKER_URL=" + info.BrokerURL)
	if r := w.exec(nil, append(env, "AGENTKEYS_AUTH_TOKEN=dev-user"), "init"); r.code != 0 {
		t.Fatalf("init against dev: %s", r)
	}
	r := w.exec(nil, env, "token", "oidc", "--verify")
	if r.code != 0 || strings.Count(strings.TrimSpace(r.stdout), ".") != 2 || !strings.Contains(r.stderr, "verified") {
		t.Fatalf("token oidc --verify: %s", r)
	}
	// An agent's own session (from --session-out) mints too when its scope
	// lists aws, and is refused when it does not.
	sf := t.TempDir() + "/agent.json"
	w.exec(nil, env, "agent", "create", "cloud", "--services", "aws", "--session-out", sf)
	r = w.exec(nil, env, "token", "oidc", "--session-file", sf, "--json")
	var tj struct {
		JWT       string `json:"jwt"`
		ExpiresAt string `json:"expires_at"`
	}
	oneJSON(t, r.stdout, &tj)
	if exp, err := time.Parse(time.RFC3339, tj.ExpiresAt); r.code != 0 || tj.JWT == "" || err != nil || exp.Location() != time.UTC || strings.Contains(r.stdout, `"expiration"`) {
		t.Fatalf("agent token (want jwt and expires_at in RFC 3339 UTC): %s", r)
	}
	sf2 := t.TempDir() + "/narrow.json"
	w.exec(nil, env, "agent", "create", "narrow", "--services", "openrouter", "--session-out", sf2)
	expectCode(t, w.exec(nil, env, "token", "oidc", "--session-file", sf2), 1, "agent without aws scope")
	// No STS in dev without --sts-endpoint: AWS minting is refused clearly.
	r = w.exec(nil, env, "token", "aws")
	if r.code != 1 || !strings.Contains(r.stderr, "agentkeys dev --sts-endpoint") {
		t.Fatalf("token aws without STS: %s", r)
	}
	// init bound the profile to the broker: no variable needed any more, and
	// the agent's session file names it too.
	if r := w.exec(nil, w.env(), "token", "oidc"); r.code != 0 {
		t.Fatalf("token with the profile's broker: %s", r)
	}
	if r := w.exec(nil, w.env(), "token", "oidc", "--session-file", sf); r.code != 0 {
		t.Fatalf("token with the session file's broker: %s", r)
	}
	// No broker configured: a hint.
	w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN=dev-user-2", "AGENTKEYS_PROFILE=bare"), "init")
	if r := w.exec(nil, w.env("AGENTKEYS_PROFILE=bare"), "token", "oidc"); r.code != 1 || !strings.Contains(r.stderr, "AGENTKEYS_BROKER_URL") {
		t.Fatalf("token without broker: %s", r)
	}

	interrupt(t, dev.Cmd, "dev", dev.stderr)
	if _, err := os.Stat(info.DataDir); !os.IsNotExist(err) {
		t.Fatalf("temporary data dir %s left behind (%v)", info.DataDir, err)
	}
}

// devInfo is what `agentkeys dev --json` prints.
type devInfo struct {
	BackendURL string `json:"backend_url"`
	BrokerURL  string `json:"broker_url"`
	Issuer     string `json:"issuer"`
	DataDir    string `json:"data_dir"`
	FakeSTS    string `json:"fake_sts"`
}

// devProcess is a running `agentkeys dev`.
type devProcess struct {
	*exec.Cmd
	stderr *strings.Builder
}

// startDev runs `agentkeys dev` (backend and broker on loopback) as a
// process and returns a world using its backend; the process is killed at
// the end of the test unless the test stops it.
func startDev(t *testing.T, args ...string) (*world, devProcess, devInfo) {
	t.Helper()
	home := t.TempDir()
	w := &world{t: t, home: home, cfg: home + "/.config"}
	dev := exec.Command(binPath, append([]string{"dev", "--backend-port", "0", "--broker-port", "0", "--json"}, args...)...)
	dev.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + t.TempDir()}
	stdout, _ := dev.StdoutPipe()
	stderr := &strings.Builder{}
	dev.Stderr = stderr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Process.Kill() })
	var info devInfo
	got := make(chan error, 1)
	go func() { got <- json.NewDecoder(bufio.NewReader(stdout)).Decode(&info) }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("dev --json: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("dev printed nothing\n%s", stderr.String())
	}
	w.url = info.BackendURL
	return w, devProcess{Cmd: dev, stderr: stderr}, info
}

// interrupt sends SIGINT to a process the test started and fails unless it
// exits 0 within 15 seconds (stderr is shown on failure).
func interrupt(t *testing.T, cmd *exec.Cmd, what string, stderr fmt.Stringer) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s exit after SIGINT: %v\n%s", what, err, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop on SIGINT", what)
	}
}

// initBound logs identity in with the profile bound to the dev broker.
func initBound(t *testing.T, w *world, info devInfo, identity string) {
	t.Helper()
	if r := w.exec(nil, w.env("AGENTKEYS_BROKER_URL="+info.BrokerURL, "AGENTKEYS_AUTH_TOKEN="+identity), "init"); r.code != 0 {
		t.Fatalf("init: %s", r)
	}
}

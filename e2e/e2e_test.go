// Package e2e runs the built binaries against each other on loopback, the
// way an operator would: no in-process shortcuts.
package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// bin holds the paths of the binaries built for this run.
var bin = map[string]string{}

var binaries = []string{"agentkeys", "agentkeys-backend", "agentkeys-broker", "agentkeys-daemon"}

func TestMain(m *testing.M) {
	// A test re-run inside namespaces (setup_real_test.go) reuses the
	// parent's build.
	if dir := os.Getenv("AGENTKEYS_E2E_BIN_DIR"); dir != "" {
		for _, name := range binaries {
			bin[name] = filepath.Join(dir, name)
		}
		os.Exit(m.Run())
	}
	testkit.RunWithBinaries(m, func(paths map[string]string) { bin = paths }, binaries...)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// readFile returns the contents of the file at path, failing t if it
// cannot be read.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// proc is a started binary whose stderr is kept for the test to inspect.
type proc struct {
	cmd    *exec.Cmd
	stderr *testkit.SyncBuffer
	done   chan error
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin[name], args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p := &proc{cmd: cmd, stderr: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("process did not stop within 15 s of SIGTERM")
		return nil
	}
}

// waitHTTP polls url until it answers 200, or fails after 15 s.
func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited early: %v\n%s", filepath.Base(p.cmd.Path), err, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not answer in time\n%s", url, p.stderr)
}

// startBackend runs agentkeys-backend with the mock login on a free
// loopback port, its data under dir/backend, env and extra flags, waits
// until /health answers and returns its URL.
func startBackend(t *testing.T, dir string, env []string, extra ...string) (string, *proc) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := append([]string{"--login", "mock", "--listen", addr, "--data-dir", filepath.Join(dir, "backend")}, extra...)
	p := start(t, env, "agentkeys-backend", args...)
	waitHTTP(t, p, "http://"+addr+"/health")
	return "http://" + addr, p
}

// startBroker runs agentkeys-broker on a free loopback port against
// backendURL, its OIDC key pair and audit ledger under dir/broker, with env
// added and the startup check skipped, waits until /readyz answers and
// returns its URL.
func startBroker(t *testing.T, backendURL, dir string, env ...string) (string, *proc) {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	p := start(t, append([]string{
		"BROKER_BACKEND_URL=" + backendURL,
		"BROKER_OIDC_KEYPAIR_PATH=" + filepath.Join(dir, "broker", "oidc-keypair.json"),
		"BROKER_AUDIT_DB=" + filepath.Join(dir, "broker", "audit.sqlite"),
	}, env...), "agentkeys-broker", "--port", port, "--skip-startup-check")
	url := "http://127.0.0.1:" + port
	waitHTTP(t, p, url+"/readyz")
	return url, p
}

// loginMaster logs identity in at the backend (mock login) and returns a
// client and the master session.
func loginMaster(t *testing.T, backendURL, identity string) (*backendclient.Client, backendclient.Session) {
	t.Helper()
	c, err := backendclient.New(backendURL)
	if err != nil {
		t.Fatal(err)
	}
	master, err := c.CreateSession(context.Background(), identity)
	if err != nil {
		t.Fatal(err)
	}
	return c, master
}

// newAgent creates an agent under the session parent, scoped to services
// with no lifetime limit, failing t if the backend refuses.
func newAgent(t *testing.T, ctx context.Context, c *backendclient.Client, parent agentkeys.Token, services ...string) backendclient.Session {
	t.Helper()
	a, err := c.CreateChild(ctx, parent, agentkeys.Scope{Services: services}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stack is a backend and a broker started from their binaries.
type stack struct {
	backendURL, brokerURL string
	backend, broker       *proc
	dir                   string
}

func startStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	s := &stack{dir: dir}
	s.backendURL, s.backend = startBackend(t, dir, nil)
	s.brokerURL, s.broker = startBroker(t, s.backendURL, dir, "BROKER_VALIDATE_CACHE_SECONDS=0")
	return s
}

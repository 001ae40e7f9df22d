package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backend/backendtest"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

var daemonBin string

func TestMain(m *testing.M) {
	testkit.RunWithBinaries(m, func(p map[string]string) { daemonBin = p["agentkeys-daemon"] }, "agentkeys-daemon")
}

// daemonBinForOthers copies the daemon binary into a directory every
// user can enter, for a test that runs it as another uid (the build's
// temporary directory is private). The copy is removed when t ends.
func daemonBinForOthers(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "akd-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "agentkeys-daemon")
	data, _ := os.ReadFile(daemonBin)
	os.WriteFile(bin, data, 0o755)
	return bin
}

var (
	pairLine    = regexp.MustCompile(`Pair code: (\S+)\s+OTP: (\d+)`)
	recoverLine = regexp.MustCompile(`Recovery code: (\S+)\s+OTP: (\d+)`)
	httpLine    = regexp.MustCompile(`MCP HTTP: (http://\S+/mcp)`)
)

// testBackend is a real backend on loopback with a master session.
type testBackend struct {
	url    string
	client *backendclient.Client
	master backendclient.Session
}

func startBackend(t testing.TB) *testBackend {
	t.Helper()
	return newTestBackend(t, backendtest.StartMock(t).URL())
}

// startBackendWith serves a backend built from Options (short TTLs).
func startBackendWith(t testing.TB, o backend.Options) *testBackend {
	t.Helper()
	return newTestBackend(t, backendtest.Serve(t, o))
}

func newTestBackend(t testing.TB, url string) *testBackend {
	t.Helper()
	c, err := backendclient.New(url)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.CreateSession(context.Background(), "master-"+agentkeys.NewToken().Reveal()[:12])
	if err != nil {
		t.Fatal(err)
	}
	return &testBackend{url: url, client: c, master: m}
}

// startBackendAgent starts a backend and, in a fresh home directory,
// writes the session file of a new agent scoped to services.
func startBackendAgent(t testing.TB, services ...string) (b *testBackend, home string, ks keychain.Session, sessFile string) {
	t.Helper()
	b = startBackend(t)
	home = t.TempDir()
	ks, sessFile = b.agent(t, home, services...)
	return b, home, ks, sessFile
}

// agent creates an agent under the master directly and writes its
// session file.
func (b *testBackend) agent(t testing.TB, dir string, services ...string) (keychain.Session, string) {
	t.Helper()
	s, err := b.client.CreateChild(context.Background(), b.master.Token, agentkeys.Scope{Services: services}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ks := keychain.Session{Token: s.Token, Wallet: s.Wallet, Backend: b.url}
	path := filepath.Join(dir, "agent-session.json")
	if err := keychain.WriteSessionFile(path, ks); err != nil {
		t.Fatal(err)
	}
	return ks, path
}

func (b *testBackend) store(t testing.TB, agent agentkeys.Wallet, service, value string) {
	t.Helper()
	if err := b.client.StoreCredential(context.Background(), b.master.Token, agent, service, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// daemonProc is a running agentkeys-daemon binary.
type daemonProc struct {
	*testkit.Proc
	t testing.TB
}

// daemonEnv isolates the daemon's config, runtime dir and keychain.
func daemonEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "XDG_CONFIG_HOME", k == "XDG_RUNTIME_DIR", k == "DBUS_SESSION_BUS_ADDRESS", strings.HasPrefix(k, "AGENTKEYS_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		"AGENTKEYS_SESSION_STORE=file")
}

func startDaemon(t testing.TB, home string, extraEnv []string, args ...string) *daemonProc {
	t.Helper()
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	cmd := exec.Command(daemonBin, args...)
	cmd.Env = append(daemonEnv(home), extraEnv...)
	return &daemonProc{Proc: testkit.StartProc(t, cmd), t: t}
}

func (d *daemonProc) stderr() string { return d.Stderr() }

// waitFor returns the submatches of the next stderr line matching re.
func (d *daemonProc) waitFor(re *regexp.Regexp, timeout time.Duration) []string {
	d.t.Helper()
	return d.WaitFor(d.t, re, timeout)
}

var readyLine = regexp.MustCompile(`"msg":"daemon ready"`)

func (d *daemonProc) waitReady() { d.t.Helper(); d.waitFor(readyLine, 30*time.Second) }

// wait waits for exit and returns the exit code.
func (d *daemonProc) wait(timeout time.Duration) int { d.t.Helper(); return d.Wait(d.t, timeout) }

func (d *daemonProc) stop() { d.Stop() }

func dial(t testing.TB, path string) *SocketClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialSocket(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rpcCode(err error) string {
	if e, ok := err.(*RPCError); ok {
		return e.Code
	}
	return ""
}

func commandWithEnv(home string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = daemonEnv(home)
	return cmd
}

// assertUselessAtBackend replays every bearer a fake broker captured
// against the real backend: none may read a credential, create a child,
// revoke, or pass /session/validate as a session (only as a broker token).
func assertUselessAtBackend(t testing.TB, b *testBackend, agent keychain.Session, bearers []string) {
	t.Helper()
	if len(bearers) == 0 {
		t.Fatal("the fake broker captured no bearer")
	}
	ctx := context.Background()
	for _, raw := range bearers {
		if raw == agent.Token.Reveal() || raw == b.master.Token.Reveal() {
			t.Fatal("the broker received a session token")
		}
		tok, err := agentkeys.ParseToken(raw)
		if err != nil {
			continue // not even token-shaped: useless anywhere
		}
		if _, err := b.client.ReadCredential(ctx, tok, agent.Wallet, "openrouter"); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /credential/read: %v, want 401", err)
		}
		if _, err := b.client.CreateChild(ctx, tok, agentkeys.Scope{Services: []string{}}, 0); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /session/child: %v, want 401", err)
		}
		if _, err := b.client.ListCredentials(ctx, tok, agent.Wallet); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /credential/list: %v, want 401", err)
		}
		if _, err := b.client.RevokeWallet(ctx, tok, agent.Wallet); !errors.Is(err, backendclient.ErrUnauthorized) {
			t.Errorf("captured bearer at /session/revoke: %v, want 401", err)
		}
		if id, err := b.client.Validate(ctx, tok); err == nil && id.Audience != "broker" {
			t.Errorf("captured bearer validates as a session: %+v", id)
		}
	}
}

// mcpHTTPSession connects to a daemon's MCP HTTP endpoint with the bearer
// in tokenFile; the session closes with the test.
func mcpHTTPSession(t testing.TB, endpoint, tokenFile string) *mcp.ClientSession {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agentkeys-test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearerTransport{token: strings.TrimSpace(string(tok)), base: http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

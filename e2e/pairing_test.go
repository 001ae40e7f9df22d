package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// cli runs the agentkeys binary for one master's home.
type cli struct {
	t    *testing.T
	env  []string
	home string
	exe  string // instead of the built agentkeys (a wrapper), when set
}

func newCLI(t *testing.T, backendURL string) *cli {
	home := t.TempDir()
	return &cli{t: t, home: home, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"AGENTKEYS_SESSION_STORE=file", "AGENTKEYS_BACKEND_URL=" + backendURL,
	}}
}

// newMaster is newCLI with a master logged in (mock login) as identity.
func newMaster(t *testing.T, backendURL, identity string) *cli {
	t.Helper()
	c := newCLI(t, backendURL)
	if _, errs, code := c.run("", []string{"AGENTKEYS_AUTH_TOKEN=" + identity}, "init"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	return c
}

func (c *cli) run(stdin string, extraEnv []string, args ...string) (string, string, int) {
	c.t.Helper()
	exe := bin["agentkeys"]
	if c.exe != "" {
		exe = c.exe
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append([]string{}, c.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (c *cli) must(stdin string, args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(stdin, nil, args...)
	if code != 0 {
		c.t.Fatalf("agentkeys %s → exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// daemonProc is a running agentkeys-daemon whose stderr is scanned for
// the pairing line.
type daemonProc struct {
	*testkit.Proc
}

func startDaemon(t *testing.T, backendURL string, args ...string) *daemonProc {
	t.Helper()
	return startDaemonExe(t, bin["agentkeys-daemon"], nil, backendURL, args...)
}

// pairSandbox starts a daemon (exe with extraEnv) on backendURL for
// openrouter, has master approve it as sandbox-bot, stores secret for that
// agent and checks that a CLI with no backend of its own reads it through
// the daemon's socket.
func pairSandbox(t *testing.T, master *cli, exe string, extraEnv []string, backendURL, secret string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ak.sock")
	d := startDaemonExe(t, exe, extraEnv, backendURL, "--services", "openrouter",
		"--session-file", filepath.Join(t.TempDir(), "agent.json"), "--socket", sock)
	d.pairAs(t, master, "sandbox-bot")
	master.must(secret, "store", "sandbox-bot", "openrouter")
	sandbox := newCLI(t, "http://127.0.0.1:1")
	if out := sandbox.must("", "read", "--socket", sock, "openrouter"); strings.TrimSpace(out) != secret {
		t.Fatalf("daemon read = %q", out)
	}
}

// startDaemonExe runs exe (agentkeys-daemon or a wrapper of it) with extra
// environment.
func startDaemonExe(t *testing.T, exe string, extraEnv []string, backendURL string, args ...string) *daemonProc {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(exe, append([]string{"--backend", backendURL}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "AGENTKEYS_SESSION_STORE=file", "XDG_RUNTIME_DIR=" + t.TempDir()}, extraEnv...)
	return &daemonProc{testkit.StartProc(t, cmd)}
}

// pairAs waits for the daemon's pair line, has master approve it as an
// agent called name, and waits until the daemon has checked the
// approval's signature and is ready.
func (d *daemonProc) pairAs(t *testing.T, master *cli, name string) {
	t.Helper()
	m := d.expect(t, pairLine)
	master.must("", "approve", m[1], "--otp", m[2], "--yes", "--name", name)
	d.expect(t, verifiedLine) // the approval's signature checked out before the session was kept
	d.expect(t, readyLine)
}

// expect waits for a stderr line matching re and returns its submatches.
func (d *daemonProc) expect(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	return d.WaitFor(t, re, 20*time.Second)
}

var (
	pairLine     = regexp.MustCompile(`Pair code: (\S+)\s+OTP: (\d+)`)
	recoveryLine = regexp.MustCompile(`Recovery code: (\S+)\s+OTP: (\d+)`)
	readyLine    = regexp.MustCompile(`"msg":"daemon ready"`)
	verifiedLine = regexp.MustCompile(`"msg":"approval signature verified"`)
)

// TestPairApproveRecover is issue 5's two-process check with the real
// binaries: the daemon asks to be paired, the master approves with
// `agentkeys approve`, the daemon reads a credential in scope through its
// socket and is denied one out of scope; then, after losing its session,
// it recovers through an alias with the master's approval.
func TestPairApproveRecover(t *testing.T) {
	s := startStack(t)
	master := newMaster(t, s.backendURL, "e2e-pair-master")

	dir := t.TempDir()
	sessionFile, socket := filepath.Join(dir, "agent.json"), filepath.Join(dir, "ak.sock")
	d := startDaemon(t, s.backendURL, "--services", "openrouter", "--session-file", sessionFile, "--socket", socket)
	d.pairAs(t, master, "sandbox-bot")

	secret := "sk-or-e2e-" + strings.Repeat("x", 8) + time.Now().Format("150405.000000")
	master.must(secret, "store", "sandbox-bot", "openrouter")
	master.must("x", "store", "sandbox-bot", "openai")

	// Inside the sandbox: the CLI reads through the daemon's socket.
	sandbox := newCLI(t, "http://127.0.0.1:1") // no backend access needed
	if out := sandbox.must("", "read", "--socket", socket, "openrouter"); strings.TrimSpace(out) != secret {
		t.Fatalf("read via socket = %q", out)
	}
	_, errs, code := sandbox.run("", nil, "read", "--socket", socket, "openai")
	if code != 1 || !strings.Contains(errs, "DENIED") {
		t.Fatalf("out-of-scope read via socket → exit %d: %s", code, errs)
	}

	// The daemon loses its session; the master links an alias and
	// approves a recovery.
	d.Stop()
	os.Remove(sessionFile)
	master.must("", "link", "sandbox-bot", "--alias", "sandbox-bot")
	socket2 := filepath.Join(dir, "ak2.sock")
	d2 := startDaemon(t, s.backendURL, "--recover", "sandbox-bot", "--session-file", filepath.Join(dir, "agent2.json"), "--socket", socket2)
	r := d2.expect(t, recoveryLine)
	// A stranger cannot approve it.
	stranger := newCLI(t, s.backendURL)
	stranger.run("", []string{"AGENTKEYS_AUTH_TOKEN=e2e-stranger"}, "init")
	if _, _, code := stranger.run("", nil, "approve", r[1], "--otp", r[2], "--yes"); code == 0 {
		t.Fatal("a stranger approved another master's recovery")
	}
	master.must("", "approve", r[1], "--otp", r[2], "--yes")
	d2.expect(t, verifiedLine)
	d2.expect(t, readyLine)
	if out := sandbox.must("", "read", "--socket", socket2, "openrouter"); strings.TrimSpace(out) != secret {
		t.Fatalf("read after recovery = %q", out)
	}
}

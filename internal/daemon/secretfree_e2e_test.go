package daemon

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/confine"
)

// runTool calls run_with_credential and decodes its structured result.
func runTool(t *testing.T, cs *mcp.ClientSession, service string, argv ...string) RunResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": service, "command": argv}})
	if err != nil || res.IsError {
		t.Fatalf("run_with_credential %q: %v %s", argv, err, textOf(res))
	}
	var rr RunResult
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &rr); err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestSecretFreeSocket: with --no-get-credential the socket's read
// refuses stored values (DISABLED, pointing at run_with_credential) while
// the broker's short-lived credentials are still served.
func TestSecretFreeSocket(t *testing.T) {
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	secret := "sk-or-v1-" + agentkeys.NewToken().Reveal()[:24]
	b.store(t, ks.Wallet, "openrouter", secret)
	fb := newFakeBrokerFor(t, b, time.Hour)
	sock := filepath.Join(home, "sf.sock")
	d := startDaemon(t, home, nil, "--session-file", sf, "--socket", sock, "--broker-url", fb.URL, "--no-get-credential", "--child-landlock", "off")
	d.waitReady()
	ctx := context.Background()
	c := dial(t, sock)
	v, err := c.Read(ctx, "openrouter")
	if err == nil || rpcCode(err) != CodeDisabled || len(v) != 0 {
		t.Fatalf("read in secret-free mode: %q %v", v, err)
	}
	if !strings.Contains(err.Error(), "--no-get-credential") || !strings.Contains(err.Error(), ToolRunWithCredential) {
		t.Fatalf("the refusal does not say why and what to use: %v", err)
	}
	if re, ok := err.(*RPCError); !ok || re.RPCCode != rpcDenied {
		t.Fatalf("JSON-RPC code: %#v", err)
	}
	// Raw exchange: nothing in the answer resembles the value.
	out := rawExchange(t, sock, `{"jsonrpc":"2.0","id":1,"method":"read","params":{"service":"openrouter"}}`)
	if len(out) != 1 || strings.Contains(out[0], secret) || !strings.Contains(out[0], `"code":"DISABLED"`) {
		t.Fatalf("raw read: %v", out)
	}
	if l, err := c.List(ctx); err != nil || len(l) != 1 {
		t.Fatalf("list: %v %v", l, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.GetEnabled {
		t.Fatalf("status: %+v %v", st, err)
	}
	a, err := c.AWSCredentials(ctx)
	if err != nil || !strings.HasPrefix(a.AccessKeyID, "ASIAFAKE") {
		t.Fatalf("aws_credentials in secret-free mode: %+v %v", a, err)
	}
	o, err := c.OIDCToken(ctx)
	if err != nil || !strings.HasPrefix(o.JWT, "eyJ") {
		t.Fatalf("oidc_token in secret-free mode: %+v %v", o, err)
	}
	cmd := commandWithEnv(home, daemonBin, "aws", "credential-process", "--socket", sock)
	if cp, err := cmd.Output(); err != nil || !strings.Contains(string(cp), `"Version":1`) {
		t.Fatalf("credential-process in secret-free mode: %s %v", cp, err)
	}

	// The same agent's daemon without the flag hands the value out (so
	// the refusal above is the flag's doing).
	d.stop()
	startDaemon(t, home, nil, "--session-file", sf, "--socket", sock).waitReady()
	if v, err := dial(t, sock).Read(ctx, "openrouter"); err != nil || string(v) != secret {
		t.Fatalf("read without --no-get-credential: %v", err)
	}
}

// visibleFile is a file any uid can read (in a 0755 directory directly
// under the temporary directory).
func visibleFile(t *testing.T) string {
	dir, err := os.MkdirTemp("", "akd-visible-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777|os.ModeSticky)
	p := filepath.Join(dir, "visible")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// probeScript tries to read the daemon's session file and environment
// and reports what it managed; it also proves it received the credential.
func probeScript(sessFile, visible string) []string {
	return []string{"sh", "-c", `
cat ` + sessFile + ` >/dev/null 2>&1 && echo READ-SESSION
tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -q '^PATH=' && echo READ-ENVIRON
tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -q '^AGENTKEYS_SESSION_STORE=file' && echo ENV-SECRET
(exec 3</proc/$PPID/mem) 2>/dev/null && echo OPEN-MEM
cat ` + visible + ` >/dev/null 2>&1 && echo READ-VISIBLE
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
echo "len=${#OPENROUTER_API_KEY}"
`}
}

// TestRunWithCredentialChildUser: --child-user runs the command as
// another uid, which cannot read the daemon's session file nor
// /proc/<daemon>/environ; the same command as the daemon's own uid (root)
// can, which is what the option is for.
func TestRunWithCredentialChildUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the daemon must be able to start children as uid 65534")
	}
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	visible := visibleFile(t)
	probe := probeScript(sf, visible)

	// Control: the daemon's own uid reads both.
	cs, _ := connectStdio(t, home, nil, "--session-file", sf, "--no-socket", "--no-get-credential", "--child-landlock", "off")
	rr := runTool(t, cs, "openrouter", probe...)
	for _, want := range []string{"READ-SESSION", "READ-ENVIRON", "OPEN-MEM", "READ-VISIBLE", "uid=0 ", "len=34"} {
		if !strings.Contains(rr.Stdout, want) {
			t.Fatalf("as the daemon's uid the probe should find %s:\n%s%s", want, rr.Stdout, rr.Stderr)
		}
	}
	// Even a root command reads no AGENTKEYS_* value there: the daemon
	// cleared them from its environment block.
	if strings.Contains(rr.Stdout, "ENV-SECRET") {
		t.Fatalf("/proc/<daemon>/environ still shows AGENTKEYS_* values:\n%s", rr.Stdout)
	}
	cs.Close()

	cs, stderr := connectStdio(t, home, nil, "--session-file", sf, "--no-socket", "--no-get-credential", "--child-user", "nobody", "--child-landlock", "off")
	rr = runTool(t, cs, "openrouter", probe...)
	for _, bad := range []string{"READ-SESSION", "READ-ENVIRON", "ENV-SECRET", "OPEN-MEM"} {
		if strings.Contains(rr.Stdout, bad) {
			t.Fatalf("the child as nobody could %s:\n%s", bad, rr.Stdout)
		}
	}
	for _, want := range []string{"READ-VISIBLE", "uid=65534 gid=65534 groups=65534", "len=34"} {
		if !strings.Contains(rr.Stdout, want) {
			t.Fatalf("child as nobody: want %s:\n%s%s", want, rr.Stdout, rr.Stderr)
		}
	}
	cs.Close() // waits for the daemon to exit: its stderr is complete
	if !strings.Contains(stderr.String(), `"child_uid":65534`) {
		t.Fatalf("the daemon does not log the child user:\n%s", stderr)
	}
}

// TestChildUserRefusedWithoutPrivilege: a daemon that cannot switch uids
// refuses to start rather than run children as itself.
func TestChildUserRefusedWithoutPrivilege(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0o755)
	cmd := exec.Command(daemonBin, "--session-file", filepath.Join(home, "none.json"), "--no-socket", "--child-user", "65533:65533")
	cmd.Env = daemonEnv(home)
	if os.Getuid() == 0 {
		// Run the daemon itself as nobody (a copy it can execute).
		bin := daemonBinForOthers(t)
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_SETUID") || strings.Contains(string(out), "Pair code") {
		t.Fatalf("an unprivileged daemon with --child-user: %v\n%s", err, out)
	}
}

// TestRunWithCredentialLandlock: in secret-free mode children are
// confined by Landlock (when the kernel has it): the session file and the
// session store cannot be read nor the daemon's memory, while the rest of
// the filesystem still works; combined with --child-user as well.
func TestRunWithCredentialLandlock(t *testing.T) {
	abi := confine.ABI()
	if abi < 1 {
		t.Skip("the kernel offers no Landlock (landlock_create_ruleset version call failed)")
	}
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	visible := visibleFile(t)
	storeFile := filepath.Join(home, "config", "agentkeys", "other", "session.json")
	os.MkdirAll(filepath.Dir(storeFile), 0o700)
	os.WriteFile(storeFile, []byte(`{"session":"x"}`), 0o600)
	probe := probeScript(sf, visible)
	probe[2] += `cat ` + storeFile + ` >/dev/null 2>&1 && echo READ-STORE
kill -0 $PPID 2>/dev/null && echo SIGNAL-DAEMON
t=$(mktemp -p ` + filepath.Dir(visible) + `) && echo hi > "$t" && cat "$t" >/dev/null && echo WRITE-ELSEWHERE
`
	cs, stderr := connectStdio(t, home, nil, "--session-file", sf, "--no-socket", "--no-get-credential")
	rr := runTool(t, cs, "openrouter", probe...)
	for _, bad := range []string{"READ-SESSION", "OPEN-MEM", "READ-STORE", "ENV-SECRET"} {
		if strings.Contains(rr.Stdout, bad) {
			t.Fatalf("a Landlock-confined child could %s:\n%s", bad, rr.Stdout)
		}
	}
	if abi >= 6 && strings.Contains(rr.Stdout, "SIGNAL-DAEMON") {
		t.Fatalf("a Landlock-confined child (ABI %d) could signal the daemon:\n%s", abi, rr.Stdout)
	}
	for _, want := range []string{"READ-VISIBLE", "WRITE-ELSEWHERE", "uid=0 ", "len=34"} {
		if !strings.Contains(rr.Stdout, want) {
			t.Fatalf("confined child: want %s:\n%s%s", want, rr.Stdout, rr.Stderr)
		}
	}
	// A missing program is reported as without confinement.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"/nonexistent/prog"}}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeExecFailed) {
		t.Fatalf("confined run of a missing program: %v %s", err, textOf(res))
	}
	cs.Close() // waits for the daemon to exit: its stderr is complete
	if !strings.Contains(stderr.String(), `"landlock":true`) {
		t.Fatalf("the daemon does not log the confinement:\n%s", stderr)
	}

	// Control: without Landlock the same probe reads the store.
	cs, _ = connectStdio(t, home, nil, "--session-file", sf, "--no-socket", "--no-get-credential", "--child-landlock", "off")
	if rr = runTool(t, cs, "openrouter", probe...); !strings.Contains(rr.Stdout, "READ-STORE") || !strings.Contains(rr.Stdout, "READ-SESSION") || !strings.Contains(rr.Stdout, "OPEN-MEM") {
		t.Fatalf("without Landlock the probe should read the store:\n%s%s", rr.Stdout, rr.Stderr)
	}
	cs.Close()

	if os.Getuid() == 0 {
		cs, _ = connectStdio(t, home, nil, "--session-file", sf, "--no-socket", "--no-get-credential", "--child-user", "nobody", "--child-landlock", "on")
		rr = runTool(t, cs, "openrouter", probe...)
		for _, want := range []string{"READ-VISIBLE", "WRITE-ELSEWHERE", "uid=65534 gid=65534 groups=65534", "len=34"} {
			if !strings.Contains(rr.Stdout, want) {
				t.Fatalf("Landlock + child user: want %s:\n%s%s", want, rr.Stdout, rr.Stderr)
			}
		}
		for _, bad := range []string{"READ-SESSION", "READ-ENVIRON", "ENV-SECRET", "OPEN-MEM", "READ-STORE"} {
			if strings.Contains(rr.Stdout, bad) {
				t.Fatalf("Landlock + child user could %s:\n%s", bad, rr.Stdout)
			}
		}
	}
}

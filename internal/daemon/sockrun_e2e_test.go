package daemon

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/broker"
)

// sockRunWorld is a secret-free daemon (binary) holding an agent scoped
// to openrouter, anthropic and aws, with a real broker on a fake STS.
type sockRunWorld struct {
	b          *testBackend
	home, sock string
	agent      agentkeys.Wallet
	or, an     string
	d          *daemonProc
}

func newSockRunWorld(t *testing.T, daemonArgs ...string) *sockRunWorld {
	t.Helper()
	w := &sockRunWorld{b: startBackend(t), home: t.TempDir()}
	ks, sf := w.b.agent(t, w.home, "openrouter", "anthropic", broker.DefaultScopeService)
	w.agent = ks.Wallet
	w.or, w.an = "sk-or-v1-"+agentkeys.NewToken().Reveal()[:24], "sk-ant-"+agentkeys.NewToken().Reveal()[:24]
	w.b.store(t, ks.Wallet, "openrouter", w.or)
	w.b.store(t, ks.Wallet, "anthropic", w.an)
	brk, _ := startRealBroker(t, w.b.url)
	w.sock = filepath.Join(w.home, "run", "agentkeys", "agentkeys.sock")
	args := append([]string{"--session-file", sf, "--broker-url", brk.URL(), "--region", "eu-west-3", "--no-get-credential", "--child-landlock", "off"}, daemonArgs...)
	w.d = startDaemon(t, w.home, nil, args...)
	w.d.waitReady()
	return w
}

// run starts `agentkeys-daemon run` (the client) with args.
func (w *sockRunWorld) client(stdin io.Reader, args ...string) *exec.Cmd {
	cmd := commandWithEnv(w.home, daemonBin, append([]string{"run", "--socket", w.sock}, args...)...)
	cmd.Env = append(cmd.Env, "AGENTKEYS_MCP_TOKEN=client-side-setting-0123456789", "CALLER_VAR=from-the-caller")
	cmd.Stdin = stdin
	cmd.Dir = w.home
	return cmd
}

func (w *sockRunWorld) output(t *testing.T, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := w.client(stdin, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("agentkeys-daemon run %v did not end within 20 s\nstdout: %s\nstderr: %s\ndaemon: %s", args, o.String(), e.String(), w.d.stderr())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestDaemonRunOverSocket: `agentkeys-daemon run -- CMD` in secret-free
// mode runs CMD with every credential the agent holds and AWS
// credentials, in the caller's environment and directory (without
// AGENTKEYS_* settings), streams its output back masked, passes stdin
// through and keeps the exit status; --only narrows the set, an unknown
// service fails before anything runs; every read is in the audit log.
func TestDaemonRunOverSocket(t *testing.T) {
	w := newSockRunWorld(t)
	script := `echo "or=$OPENROUTER_API_KEY an=$ANTHROPIC_API_KEY"; echo "b64=$(printf %s "$OPENROUTER_API_KEY" | base64 -w0)" >&2
echo "aws=$AWS_ACCESS_KEY_ID/$AWS_REGION secret=$AWS_SECRET_ACCESS_KEY"; echo "caller=$CALLER_VAR pwd=$(pwd)"; env | grep -c '^AGENTKEYS_' ; read line; echo "stdin=$line"; exit 7`
	out, errOut, code := w.output(t, strings.NewReader("hello from stdin\n"), "--", "sh", "-c", script)
	if code != 7 {
		t.Fatalf("exit %d, want 7\nstdout:%s\nstderr:%s", code, out, errOut)
	}
	for _, want := range []string{"or=**** an=****", "aws=ASIA", "/eu-west-3 secret=****", "caller=from-the-caller pwd=" + w.home, "\n0\n", "stdin=hello from stdin"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "b64=****") {
		t.Fatalf("stderr: %s", errOut)
	}
	all := out + errOut + w.d.stderr()
	for _, secret := range []string{w.or, w.an} {
		if strings.Contains(all, secret) {
			t.Fatal("a credential reached the client or the daemon's log")
		}
	}

	out, _, code = w.output(t, nil, "--only", "anthropic", "--", "sh", "-c", `echo "or=[$OPENROUTER_API_KEY] an=$ANTHROPIC_API_KEY aws=[$AWS_SESSION_TOKEN]"`)
	if code != 0 || !strings.Contains(out, "or=[] an=**** aws=[]") {
		t.Fatalf("--only anthropic: %d %s", code, out)
	}

	marker := filepath.Join(w.home, "ran")
	_, errOut, code = w.output(t, nil, "--only", "nosuch", "--", "touch", marker)
	if code != 1 || !strings.Contains(errOut, "nosuch") {
		t.Fatalf("--only nosuch: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran although a service was unknown")
	}
	_, errOut, code = w.output(t, nil, "--gateway", "--", "true")
	if code != 1 || !strings.Contains(errOut, CodeNoGateway) {
		t.Fatalf("--gateway without a gateway: %d %s", code, errOut)
	}
	_, errOut, code = w.output(t, nil, "--", "/nonexistent/program")
	if code != 1 || !strings.Contains(errOut, CodeExecFailed) {
		t.Fatalf("missing program: %d %s", code, errOut)
	}
	if _, _, code := w.output(t, nil, "true"); code != 2 {
		t.Fatalf("command without --: exit %d, want 2", code)
	}

	// Every read is audited: 3 runs with openrouter... the master sees them.
	page, err := w.b.client.QueryAudit(context.Background(), w.b.master.Token, backendclient.AuditFilter{Agent: w.agent, Action: agentkeys.ActionRead})
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]int{}
	for _, e := range page.Events {
		if e.Result == agentkeys.ResultOK {
			reads[e.Service]++
		}
	}
	if reads["openrouter"] < 1 || reads["anthropic"] < 2 {
		t.Fatalf("audited reads %v", reads)
	}
}

// TestDaemonRunSignalsAndDisconnect: signals sent to the client reach the
// command (a trapped TERM runs the trap; an untrapped INT kills it: exit
// 130), and a client that dies takes the command with it.
func TestDaemonRunSignalsAndDisconnect(t *testing.T) {
	w := newSockRunWorld(t)
	start := func(script string) (*exec.Cmd, *bufio.Reader, string) {
		cmd := w.client(nil, "--", "sh", "-c", script)
		pr, pw := io.Pipe()
		var errb strings.Builder
		cmd.Stdout, cmd.Stderr = pw, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { cmd.Wait(); pw.Close() }()
		r := bufio.NewReader(pr)
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			t.Fatalf("first line %q %v; stderr %s", line, err, errb.String())
		}
		return cmd, r, line
	}
	cmd, r, _ := start(`trap 'echo got-term; exit 5' TERM; echo ready; while :; do sleep 0.05; done`)
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(r)
	if !strings.Contains(string(rest), "got-term") || cmd.ProcessState.ExitCode() != 5 {
		t.Fatalf("TERM: %q exit %d", rest, cmd.ProcessState.ExitCode())
	}
	cmd, r, _ = start(`echo ready; exec sleep 30`)
	cmd.Process.Signal(syscall.SIGINT)
	io.ReadAll(r)
	if cmd.ProcessState.ExitCode() != 130 {
		t.Fatalf("INT: exit %d, want 130", cmd.ProcessState.ExitCode())
	}

	cmd, r, line := start(`echo "ready $$"; exec sleep 30`)
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready")))
	if err != nil {
		t.Fatal(line)
	}
	cmd.Process.Kill()
	io.ReadAll(r)
	// The command (the daemon's child, pid printed above) dies with the
	// connection: poll, as nothing here can wait on another's child.
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) outlived its client by 10 s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package daemon

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/mask/masktest"
	"github.com/agentkeys/agentkeys/internal/provision"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startHTTPDaemonWithSettings runs the real daemon serving MCP over
// loopback HTTP, with its bearer and an IMAP password in its environment
// (the daemon's own secrets), and returns a connected client plus those
// values.
func startHTTPDaemonWithSettings(t *testing.T, secret string) (cs *mcp.ClientSession, daemonSecrets []string, marker string) {
	t.Helper()
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", secret)
	token := "mcp-" + agentkeys.NewToken().Reveal()
	imapPassword := "imap-" + agentkeys.NewToken().Reveal()[:20]
	marker = "marker-" + agentkeys.NewToken().Reveal()[:12]
	env := []string{
		EnvMCPToken + "=" + token,
		provision.EnvIMAPPassword + "=" + imapPassword,
		"AGENTKEYS_TEST_CHILD_MARKER=" + marker,
		"UNRELATED_CHILD_MARKER=" + marker, // an ordinary variable the child keeps
	}
	d := startDaemon(t, home, env, "--session-file", sf, "--no-socket", "--http", "127.0.0.1:0", "--child-landlock", "off")
	endpoint := d.waitFor(httpLine, 30*time.Second)[1]
	d.waitReady()
	client := mcp.NewClient(&mcp.Implementation{Name: "agentkeys-test", Version: "1"}, nil)
	hc := &http.Client{Transport: bearerTransport{token: token, base: http.DefaultTransport}}
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, d.stderr())
	}
	t.Cleanup(func() { cs.Close() })
	return cs, []string{token, imapPassword}, marker
}

// TestRunWithCredentialMasksStderr: a command that writes the secret only
// to stderr (raw, base64, hex) gets it back masked there.
func TestRunWithCredentialMasksStderr(t *testing.T) {
	secret := "sk-or-v1-" + agentkeys.NewToken().Reveal()
	cs, _, _ := startHTTPDaemonWithSettings(t, secret)
	k := `printf %s "$OPENROUTER_API_KEY"`
	for _, c := range []string{
		k + ` >&2`,
		k + ` | base64 >&2`,
		k + ` | od -An -v -tx1 | tr -d ' \n' >&2`,
	} {
		rr := runTool(t, cs, "openrouter", "sh", "-c", "set -e; "+c)
		if rr.ExitCode != 0 {
			t.Fatalf("%s: exit %d", c, rr.ExitCode)
		}
		if rr.Stdout != "" {
			t.Fatalf("%s: stdout %q, want nothing", c, rr.Stdout)
		}
		if !strings.Contains(rr.Stderr, Mask) {
			t.Fatalf("%s: nothing masked on stderr (%d bytes)", c, len(rr.Stderr))
		}
		for _, e := range masktest.Encodings {
			if e.Leaked(rr.Stderr, nil, []byte(secret), nil) {
				t.Fatalf("%s: the %s form of the secret survives on stderr", c, e.Name)
			}
		}
	}
}

// TestRunWithCredentialChildGetsNoDaemonSettings: the command sees the
// credential and the daemon's ordinary environment, but none of the
// daemon's own AGENTKEYS_* settings (the MCP bearer, the IMAP password).
func TestRunWithCredentialChildGetsNoDaemonSettings(t *testing.T) {
	secret := "sk-or-v1-" + agentkeys.NewToken().Reveal()
	cs, daemonSecrets, marker := startHTTPDaemonWithSettings(t, secret)
	rr := runTool(t, cs, "openrouter", "env")
	if rr.ExitCode != 0 {
		t.Fatalf("env: exit %d: %s", rr.ExitCode, rr.Stderr)
	}
	out := rr.Stdout + rr.Stderr
	if !strings.Contains(out, "UNRELATED_CHILD_MARKER="+marker) || !strings.Contains(out, "OPENROUTER_API_KEY="+Mask) {
		t.Fatalf("the child's environment lacks the ordinary variable or the credential:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "AGENTKEYS_") {
			name, _, _ := strings.Cut(line, "=")
			t.Errorf("the child inherits the daemon's %s", name)
		}
	}
	for _, s := range daemonSecrets {
		if strings.Contains(out, s) {
			t.Error("a daemon secret (MCP bearer or IMAP password) reaches the child")
		}
	}
}

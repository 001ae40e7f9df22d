package daemon

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestCompatRemovedDaemonFlags: the original daemon's --session TOKEN (a
// bearer in argv) and --method passkey|email (proof-free recovery) are
// refused as usage errors (exit 2) naming the flag, before any network
// call; a session comes from --session-file or pairing, recovery from
// --recover with the master's approval. The backend variable is
// AGENTKEYS_BACKEND_URL.
func TestCompatRemovedDaemonFlags(t *testing.T) {
	home := t.TempDir()
	for flag, args := range map[string][]string{
		"--session": {"--backend", "http://127.0.0.1:1", "--session", "0123456789abcdef", "--stdio"},
		"--method":  {"--backend", "http://127.0.0.1:1", "--recover", "my-bot", "--method", "passkey"},
	} {
		cmd := exec.Command(daemonBin, args...)
		cmd.Env = daemonEnv(home)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unknown flag: "+flag) {
			t.Errorf("agentkeys-daemon %s: want exit 2 naming %s, got %v\n%s", strings.Join(args, " "), flag, err, out)
		}
	}
	// The original's AGENTKEYS_BACKEND is not read: the daemon says which
	// variable it wants.
	cmd := exec.Command(daemonBin, "--stdio")
	cmd.Env = append(daemonEnv(home), "AGENTKEYS_BACKEND=http://127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "AGENTKEYS_BACKEND_URL") {
		t.Errorf("daemon with only AGENTKEYS_BACKEND: want a refusal naming AGENTKEYS_BACKEND_URL, got %v\n%s", err, out)
	}
}

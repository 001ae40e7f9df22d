package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/mask/masktest"
)

// TestRunWithCredentialMasksToolOutput: what ordinary tools print for a
// long key (base64 wrapped at 76 and at other widths, unwrapped, with
// CRLF, after a prefix; xxd -p and od hex; fold; percent-encoding, also
// folded) comes back from the real daemon masked.
func TestRunWithCredentialMasksToolOutput(t *testing.T) {
	b, home, ks, sf := startBackendAgent(t, "openrouter")
	raw := make([]byte, 123)
	rand.Read(raw)
	secret := base64.StdEncoding.EncodeToString(raw) // 164 characters with '+' and '/'
	b.store(t, ks.Wallet, "openrouter", secret)
	cs, _ := connectStdio(t, home, nil, "--session-file", sf, "--no-socket")

	k := `printf %s "$OPENROUTER_API_KEY"`
	hexOD := `od -An -v -tx1 | tr -d ' \n'`
	cmds := []string{
		k + ` | base64`,
		k + ` | base64 -w 0`,
		k + ` | base64 -w 13`,
		k + ` | base64 | sed 's/$/\r/'`,
		`printf 'user:%s' "$OPENROUTER_API_KEY" | base64`,
		`printf 'x%s' "$OPENROUTER_API_KEY" | base64 -w 50`,
		k + ` | base64 | tr '+/' '-_'`,
		k + ` | fold -w 7`,
		k + ` | ` + hexOD + ` | fold -w 60`,
		k + ` | ` + hexOD + ` | tr a-f A-F | fold -w 33`,
		k + ` | ` + hexOD + ` | sed 's/../%&/g' | fold -w 10`,
		k + ` | sed 's|/|%2F|g; s|+|%2B|g'`,
	}
	if _, err := exec.LookPath("xxd"); err == nil {
		cmds = append(cmds, k+` | xxd -p`, k+` | xxd -p -c 7`)
	} else {
		t.Log("xxd not installed: its output is emulated with od and fold")
	}
	if _, err := exec.LookPath("basenc"); err == nil {
		cmds = append(cmds, k+` | basenc --base64url -w 21`)
	}
	for _, c := range cmds {
		rr := runTool(t, cs, "openrouter", "sh", "-c", "set -e; "+c)
		if rr.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", c, rr.ExitCode, rr.Stderr)
		}
		out := rr.Stdout + rr.Stderr
		s := []byte(secret)
		for _, e := range masktest.Encodings {
			if e.Leaked(out, nil, s, nil) {
				t.Fatalf("%s: %s form of the secret survives:\n%s", c, e.Name, out)
			}
		}
		for _, pre := range []string{"user:", "x"} {
			if p := masktest.PureBase64(base64.StdEncoding, []byte(pre), s, nil); strings.Contains(masktest.DropEOL(out), p) {
				t.Fatalf("%s: base64 after %q survives:\n%s", c, pre, out)
			}
		}
		if !strings.Contains(out, Mask) {
			t.Fatalf("%s: nothing masked:\n%s", c, out)
		}
	}
}

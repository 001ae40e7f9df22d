package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestSandboxRunAndScopeRequest drives the sandbox side with the real
// binaries: a secret-free daemon paired for openrouter runs commands for
// `agentkeys run --socket` (output masked, exit status kept, no value on
// the socket); the agent asks for anthropic with `agentkeys-daemon
// request-scope`; the master sees the request in `agentkeys pending`,
// approves it with the OTP, and the next run gets the new credential.
func TestSandboxRunAndScopeRequest(t *testing.T) {
	s := startStack(t)
	master := newMaster(t, s.backendURL, "e2e-sandbox-master")
	dir := t.TempDir()
	sessionFile, socket := filepath.Join(dir, "agent.json"), filepath.Join(dir, "ak.sock")
	d := startDaemon(t, s.backendURL, "--services", "openrouter", "--session-file", sessionFile, "--socket", socket, "--no-get-credential")
	d.pairAs(t, master, "sandbox-bot")
	stamp := time.Now().Format("150405.000000")
	orKey, anKey := "sk-or-e2e-sandbox-"+stamp, "sk-ant-e2e-sandbox-"+stamp
	master.must(orKey, "store", "sandbox-bot", "openrouter")

	sandbox := newCLI(t, s.backendURL) // the agent's side: no master session
	script := `echo "or=$OPENROUTER_API_KEY an=[$ANTHROPIC_API_KEY]"; printf %s "$OPENROUTER_API_KEY" | base64; exit 3`
	out, errs, code := sandbox.run("", nil, "run", "--socket", socket, "--", "sh", "-c", script)
	if code != 3 || !strings.Contains(out, "or=**** an=[]") || strings.Contains(out+errs, orKey) {
		t.Fatalf("run --socket: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := sandbox.run("", nil, "read", "--socket", socket, "openrouter"); code == 0 || !strings.Contains(errs, "DISABLED") {
		t.Fatalf("secret-free daemon served a value: %d %s", code, errs)
	}
	if _, errs, code := sandbox.run("", nil, "run", "--socket", socket, "sandbox-bot", "--", "true"); code != 2 {
		t.Fatalf("run --socket with an agent: exit %d %s", code, errs)
	}

	// The agent asks for anthropic.
	rsCmd := exec.Command(bin["agentkeys-daemon"], "request-scope", "--socket", socket, "--services", "anthropic", "--wait", "2m")
	rsCmd.Env = []string{"HOME=" + dir}
	rs := testkit.StartProc(t, rsCmd)
	p := rs.WaitFor(t, pairLine, 60*time.Second) // fails if request-scope ends without a pair code
	code2, otp := p[1], p[2]

	// The master sees it, as a scope change of sandbox-bot adding anthropic.
	out = master.must("", "pending")
	if !strings.Contains(out, code2) || !strings.Contains(out, "+ service anthropic") || strings.Contains(out, otp) {
		t.Fatalf("pending:\n%s", out)
	}
	var pend struct {
		Requests []struct {
			PairCode       string `json:"pair_code"`
			RequestType    string `json:"request_type"`
			RequestedScope struct {
				Services []string `json:"services"`
			} `json:"requested_scope"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(master.must("", "--json", "pending")), &pend); err != nil || len(pend.Requests) != 1 ||
		pend.Requests[0].RequestType != "ScopeChange" || strings.Join(pend.Requests[0].RequestedScope.Services, ",") != "anthropic,openrouter" {
		t.Fatalf("pending --json: %+v %v", pend, err)
	}
	master.must("", "approve", code2, "--otp", otp, "--yes")
	if code := rs.Wait(t, 60*time.Second); code != 0 { // fails if request-scope does not see the approval
		t.Fatalf("request-scope after approval: exit %d\n%s", code, rs.Stderr())
	}
	if out := master.must("", "pending"); !strings.Contains(out, "No pending requests") {
		t.Fatalf("pending after approval:\n%s", out)
	}

	// Now the master can store it and the agent's runs get it.
	master.must(anKey, "store", "sandbox-bot", "anthropic")
	out, errs, code = sandbox.run("", nil, "run", "--socket", socket, "--", "sh", "-c", script)
	if code != 3 || !strings.Contains(out, "or=**** an=[****]") || strings.Contains(out+errs, anKey) {
		t.Fatalf("run after the scope change: exit %d\n%s%s", code, out, errs)
	}
}

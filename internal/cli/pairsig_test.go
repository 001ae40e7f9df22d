package cli

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq/relaytest"
)

// startRecover runs `agentkeys recover` in the background and returns the
// recovery code and OTP it prints, and a function that waits for its exit.
func startRecover(t *testing.T, w *world, identity string) ([]string, func() (int, string, string)) {
	t.Helper()
	cmd := exec.Command(binPath, "recover", identity, "--timeout", "30s")
	cmd.Env = w.env()
	stderr, _ := cmd.StderrPipe()
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	codes := make(chan []string, 1)
	var errb strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errb.WriteString(sc.Text() + "\n")
			if m := recoveryLine.FindStringSubmatch(sc.Text()); m != nil {
				codes <- m
			}
		}
	}()
	select {
	case m := <-codes:
		return m, func() (int, string, string) {
			<-done
			cmd.Wait()
			return cmd.ProcessState.ExitCode(), out.String(), errb.String()
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no recovery code line")
		return nil, nil
	}
}

// TestRecoverVerifiesTheApproval: `agentkeys recover` through a relay that
// tampers with the approval refuses the session and saves nothing; through
// an honest relay it receives the session sealed (never in clear) and
// saves it. `approve --json` shows the signature the opener verifies.
// A master recovery is approved only on a terminal with the typed phrase,
// so the approvals run in process (not parallel: inProcess sets the env).
func TestRecoverVerifiesTheApproval(t *testing.T) {
	w := newWorld(t)
	_, wallet := w.initMaster()
	w.must("link", wallet, "--email", "alice@example.com")
	relay := relaytest.Start(t, w.url, relaytest.FlipSignature)
	laptop := &world{t: t, url: relay.URL, home: t.TempDir()}
	laptop.cfg = laptop.home + "/.config"

	phrase := masterRecoveryPhrase(agentkeys.Wallet(wallet)) + "\n"
	m, wait := startRecover(t, laptop, "alice@example.com")
	expectCode(t, w.inProcess(phrase, true, "", "approve", m[1], "--otp", m[2], "--yes"), 0, "approve")
	code, out, errs := wait()
	if code == 0 || !strings.Contains(errs, "approval not verified") || strings.Contains(out, wallet) {
		t.Fatalf("tampered recovery: exit %d\n%s\n%s", code, out, errs)
	}
	if r := laptop.ak("whoami"); r.code == 0 {
		t.Fatalf("a refused session was saved: %s", r)
	}

	relay.SetMutate(nil)
	m, wait = startRecover(t, laptop, "alice@example.com")
	var ap approveResult
	r := w.inProcess(phrase, true, "", "--json", "approve", m[1], "--otp", m[2], "--yes")
	expectCode(t, r, 0, "approve --json")
	oneJSON(t, r.stdout, &ap)
	if len(ap.Signature) != 64 || ap.KeyID == "" {
		t.Fatalf("approve --json: %+v", ap)
	}
	if code, out, errs := wait(); code != 0 || !strings.Contains(out, wallet) {
		t.Fatalf("recovery: exit %d\n%s\n%s", code, out, errs)
	}
	if len(relay.Box()) != 32 || relay.SawClearSession() {
		t.Fatalf("recover sent a %d-byte box key; session in clear: %v", len(relay.Box()), relay.SawClearSession())
	}
	if r := laptop.must("whoami"); !strings.Contains(r.stdout, wallet) {
		t.Fatalf("whoami: %s", r)
	}
}

package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// openPair plays the daemon: it opens a Pair request asking for services.
func openPair(t *testing.T, w *world, services ...string) (*backendclient.Client, backendclient.Opened) {
	t.Helper()
	c, err := backendclient.New(w.url)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, _ := authreq.Encode(authreq.Request{Type: authreq.TypePair, RequestedScope: authreq.Scope{Services: services}})
	o, err := c.OpenAuthRequest(context.Background(), backendclient.OpenRequest{ChildPubkey: pub, RequestType: authreq.TypePair, RequestDetails: details})
	if err != nil {
		t.Fatal(err)
	}
	return c, o
}

func otherOTP(otp string) string {
	if otp == "111111" {
		return "222222"
	}
	return "111111"
}

func TestApprove(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	c, o := openPair(t, w, "openrouter")

	// Without a terminal the OTP and the confirmation must be given.
	expectCode(t, w.ak("approve", o.PairCode, "--yes"), 1, "approve without --otp")
	expectCode(t, w.ak("approve", o.PairCode, "--otp", o.OTP), 1, "approve without --yes")
	expectCode(t, w.ak("approve", "bad!", "--otp", o.OTP, "--yes"), 2, "bad code")
	expectCode(t, w.ak("approve", o.PairCode, "--otp", "12", "--yes"), 2, "bad otp shape")

	r := w.ak("approve", o.PairCode, "--otp", otherOTP(o.OTP), "--yes")
	expectCode(t, r, 1, "wrong otp")
	if !strings.Contains(r.stderr, "attempts left") {
		t.Fatalf("wrong OTP: %s", r)
	}
	r = w.must("approve", strings.ToLower(o.PairCode), "--otp", o.OTP, "--yes", "--name", "paired-bot")
	if !strings.Contains(r.stdout, "paired") || !strings.Contains(r.stderr, "openrouter") {
		t.Fatalf("approve: %s", r)
	}
	d, err := c.AwaitAuthDecision(context.Background(), o)
	if err != nil || d.Session == nil {
		t.Fatalf("daemon's await: %+v %v", d, err)
	}
	// The paired agent is known locally by its name.
	secret := newSecret()
	w.mustIn(secret, "store", "paired-bot", "openrouter")
	got, err := c.ReadCredential(context.Background(), d.Session.Token, d.Session.Wallet, "openrouter")
	if err != nil || string(got) != secret {
		t.Fatalf("paired agent reads %q, %v", got, err)
	}
	// Replay: the code is spent.
	expectCode(t, w.ak("approve", o.PairCode, "--otp", o.OTP, "--yes"), 1, "replayed approve")

	// --deny, with --json.
	_, o2 := openPair(t, w)
	var js approveResult
	oneJSON(t, w.must("approve", o2.PairCode, "--deny", "--json").stdout, &js)
	if js.Status != "denied" {
		t.Fatalf("deny --json: %+v", js)
	}
}

func TestApproveLocksAfterFiveWrongOTPs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	_, o := openPair(t, w)
	for range 4 {
		expectCode(t, w.ak("approve", o.PairCode, "--otp", otherOTP(o.OTP), "--yes"), 1, "wrong otp")
	}
	r := w.ak("approve", o.PairCode, "--otp", otherOTP(o.OTP), "--yes")
	expectCode(t, r, 1, "fifth wrong otp")
	if !strings.Contains(r.stderr, "locked") || !strings.Contains(r.stderr, "hint:") {
		t.Fatalf("lock: %s", r)
	}
	expectCode(t, w.ak("approve", o.PairCode, "--otp", o.OTP, "--yes"), 1, "right otp after lock")
}

var recoveryLine = regexp.MustCompile(`Recovery code: (\S+)\s+OTP: (\d+)`)

func TestRecoverOnANewMachine(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, wallet := w.initMaster()
	w.must("link", wallet, "--email", "alice@example.com")
	laptop := newWorldSharing(t, w)

	cmd := exec.Command(binPath, "recover", "Alice@Example.com", "--timeout", "30s")
	cmd.Env = laptop.env()
	stderr, _ := cmd.StderrPipe()
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	codes := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := recoveryLine.FindStringSubmatch(sc.Text()); m != nil {
				codes <- m
			}
		}
	}()
	var m []string
	select {
	case m = <-codes:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no recovery code line")
	}
	// A stranger cannot approve it.
	stranger := newWorldSharing(t, w)
	stranger.initMaster()
	expectCode(t, stranger.ak("approve", m[1], "--otp", m[2], "--yes"), 1, "stranger approves")
	w.must("approve", m[1], "--otp", m[2], "--yes")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("recover exited with %v: %s", err, out.String())
	}
	if !strings.Contains(out.String(), wallet) {
		t.Fatalf("recover printed %q", out.String())
	}
	if r := laptop.must("whoami"); !strings.Contains(r.stdout, wallet) {
		t.Fatalf("the new machine is not %s: %s", wallet, r)
	}
	expectCode(t, laptop.ak("recover", "no spaces allowed"), 2, "bad identity")
}

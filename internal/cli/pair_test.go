package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
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
	expectStderr(t, r, 1, "wrong otp", "attempts left")
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
	expectStderr(t, r, 1, "fifth wrong otp", "locked", "hint:")
	expectCode(t, w.ak("approve", o.PairCode, "--otp", o.OTP, "--yes"), 1, "right otp after lock")
}

var recoveryLine = regexp.MustCompile(`Recovery code: (\S+)\s+OTP: (\d+)`)

// TestRecoverOnANewMachine recovers a master: --yes refuses, a terminal
// with the typed phrase approves.
func TestRecoverOnANewMachine(t *testing.T) {
	w := newWorld(t)
	_, wallet := w.initMaster()
	w.must("link", wallet, "--email", "alice@example.com")
	helper := w.createAgent("helper", "--services", "openrouter")
	laptop := newWorldSharing(t, w)

	m, wait := startRecover(t, laptop, "Alice@Example.com")
	// A stranger cannot approve it.
	stranger := newWorldSharing(t, w)
	stranger.initMaster()
	expectCode(t, stranger.ak("approve", m[1], "--otp", m[2], "--yes"), 1, "stranger approves")
	r := w.ak("approve", m[1], "--otp", m[2], "--yes")
	expectStderr(t, r, 1, "approve a master recovery with --yes", "MASTER wallet "+wallet, "--yes never approves")
	phrase := masterRecoveryPhrase(agentkeys.Wallet(wallet))
	r = w.inProcess("recover master\n", true, "", "approve", m[1], "--otp", m[2], "--yes")
	expectStderr(t, r, 1, "approve a master recovery with the wrong phrase", "Type \""+phrase+"\"", "not confirmed")
	r = w.inProcess(phrase+"\n", true, "", "approve", m[1], "--otp", m[2])
	expectCode(t, r, 0, "approve a master recovery with the phrase")
	if !strings.Contains(r.stdout, "master wallet "+wallet) {
		t.Fatalf("approved: %s", r)
	}
	code, out, errs := wait()
	if code != 0 {
		t.Fatalf("recover exited %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, wallet) {
		t.Fatalf("recover printed %q", out)
	}
	if r := laptop.must("whoami"); !strings.Contains(r.stdout, wallet) {
		t.Fatalf("the new machine is not %s: %s", wallet, r)
	}
	// The agents' names come with the account, not with the old machine.
	if r := laptop.must("agent", "list"); !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "helper "+helper+" services: openrouter") {
		t.Fatalf("agent list after recover:\n%s", r.stdout)
	}
	if r := laptop.must("scope", "get", "helper"); !strings.Contains(r.stdout, "Scope for agent helper ("+helper+"):") {
		t.Fatalf("scope get helper after recover: %s", r)
	}
	expectCode(t, laptop.ak("recover", "no spaces allowed"), 2, "bad identity")
}

// openRequest plays a daemon opening any request.
func openRequest(t *testing.T, w *world, r authreq.Request, idType, idValue string) backendclient.Opened {
	t.Helper()
	c, err := backendclient.New(w.url)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	details, err := authreq.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.OpenAuthRequest(context.Background(), backendclient.OpenRequest{
		ChildPubkey: pub, RequestType: r.Type, RequestDetails: details, IdentityType: idType, IdentityValue: idValue,
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestApproveNeverRecoversAMasterWithYes: a Recover that names the master
// by its wallet or by an alias does not read as an agent's and is refused
// with --yes (and --json) even with the right OTP; the request stays
// pending, and an agent's recovery still goes through with --yes.
func TestApproveNeverRecoversAMasterWithYes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, wallet := w.initMaster()
	w.must("link", wallet, "--alias", "my-laptop")
	for _, id := range []authreq.Identity{
		{Type: authreq.IdentityWallet, Value: wallet},
		{Type: authreq.IdentityAlias, Value: "my-laptop"},
	} {
		typ := map[string]string{authreq.IdentityWallet: "wallet", authreq.IdentityAlias: "alias"}[id.Type]
		o := openRequest(t, w, authreq.Request{Type: authreq.TypeRecover, AgentIdentity: id, NewDaemonPubkey: []byte{1}}, typ, id.Value)
		for _, args := range [][]string{
			{"approve", o.PairCode, "--otp", o.OTP, "--yes"},
			{"--json", "approve", o.PairCode, "--otp", o.OTP, "--yes"},
		} {
			r := w.ak(args...)
			expectCode(t, r, 1, args...)
			if strings.Contains(r.stderr, "Recover agent") || !strings.Contains(r.stderr, "MASTER wallet "+wallet) ||
				!strings.Contains(r.stderr, "--yes never approves") || strings.Contains(r.stdout, "Approved") {
				t.Fatalf("%s: master recovery approved or mislabelled: %s", id.Type, r)
			}
		}
		// Still pending: the refusal consumed nothing.
		w.must("approve", o.PairCode, "--deny")
	}
	// An agent's recovery is labelled as one and --yes still approves it.
	w.must("agent", "create", "bot", "--services", "openrouter")
	w.must("link", "bot", "--alias", "the-bot")
	o := openRequest(t, w, authreq.Request{Type: authreq.TypeRecover, AgentIdentity: authreq.Identity{Type: authreq.IdentityAlias, Value: "the-bot"}, NewDaemonPubkey: []byte{1}}, "alias", "the-bot")
	r := w.must("approve", o.PairCode, "--otp", o.OTP, "--yes")
	if !strings.Contains(r.stderr, "Recover agent") || strings.Contains(r.stderr, "MASTER") {
		t.Fatalf("agent recovery: %s", r)
	}
}

// TestApproveShowsEveryScopeChange: the prompt for a ScopeChange lists each
// service added and removed and the read_only flip.
func TestApproveShowsEveryScopeChange(t *testing.T) {
	t.Parallel()
	w, agent := newWorldWithAgent(t, "bot", "--services", "alpha,beta", "--read-only")
	o := openRequest(t, w, authreq.Request{Type: authreq.TypeScopeChange, AgentID: agent, NewScope: authreq.Scope{Services: []string{"beta", "gamma", "delta"}}}, "", "")
	r := w.must("approve", o.PairCode, "--otp", o.OTP, "--yes")
	for _, want := range []string{"read_only: true → false", "+ service gamma", "+ service delta", "- service alpha", "read-write"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("scope change prompt lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r.stderr, "service beta\n") {
		t.Fatalf("unchanged service listed as a change: %s", r)
	}
	if got := w.must("scope", "get", "bot", "--json").stdout; !strings.Contains(got, "gamma") || strings.Contains(got, `"read_only": true`) {
		t.Fatalf("scope after approval: %s", got)
	}
}

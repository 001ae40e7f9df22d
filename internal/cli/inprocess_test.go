package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// inProcess runs the CLI in this process with a stdin that claims to be a
// terminal (tty) and a hidden-input reader that returns password: the
// terminal paths that the binary tests cannot reach without a pty.
// It uses t.Setenv, so its tests are not parallel.
func (w *world) inProcess(stdin string, tty bool, password string, args ...string) result {
	t := w.t
	t.Helper()
	for k, v := range map[string]string{
		"HOME": w.home, "XDG_CONFIG_HOME": w.cfg, "AGENTKEYS_SESSION_STORE": "file",
		"AGENTKEYS_BACKEND_URL": w.url, "AGENTKEYS_AUTH_TOKEN": "", "AGENTKEYS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wr.WriteString(stdin)
	wr.Close()
	var out, errb bytes.Buffer
	a := &App{
		In: r, Out: &out, Err: &errb,
		isTerminal:   func(int) bool { return tty },
		readPassword: func(int) ([]byte, error) { return []byte(password), nil },
	}
	code := a.run(context.Background(), args)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func TestTerminalPrompts(t *testing.T) {
	w := newWorld(t)
	id := "identity-" + randHex(8)

	// init on a terminal prompts (hidden) for the identity.
	r := w.inProcess("", true, id, "init")
	expectCode(t, r, 0, "init on a tty")
	if !strings.Contains(r.stderr, "Identity assertion (input hidden)") || strings.Contains(r.stderr+r.stdout, id) {
		t.Fatalf("init prompt: %s", r)
	}
	wallet := strings.TrimPrefix(strings.TrimSpace(r.stdout), "Initialized. Wallet: ")
	// The same identity through the environment reaches the same wallet.
	rr := w.exec(nil, w.env("AGENTKEYS_AUTH_TOKEN="+id), "init")
	if !strings.Contains(rr.stdout, wallet) {
		t.Fatalf("env vs prompt: %s vs %s", rr.stdout, wallet)
	}
	expectCode(t, w.inProcess("", true, "   ", "--profile", "blank", "init"), 1, "init with an empty prompt answer")

	// store on a terminal prompts (hidden) for the credential.
	w.must("agent", "create", "bot", "--services", "openrouter")
	secret := newSecret()
	r = w.inProcess("", true, secret, "store", "bot", "openrouter")
	expectCode(t, r, 0, "store on a tty")
	if !strings.Contains(r.stderr, "Credential for openrouter (input hidden)") || strings.Contains(r.stderr+r.stdout, secret) {
		t.Fatalf("store prompt: %s", r)
	}
	if got := w.must("read", "bot", "openrouter", "-n").stdout; got != secret {
		t.Fatalf("stored %q", got)
	}
	expectCode(t, w.inProcess("", true, "", "store", "bot", "openrouter"), 1, "store with an empty prompt answer")

	// teardown on a terminal asks; anything but y/yes cancels.
	for _, answer := range []string{"n\n", "\n", "yes please\n", ""} {
		r = w.inProcess(answer, true, "", "teardown", "bot")
		expectCode(t, r, 1, "teardown answered "+answer)
		if !strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, "cancelled") {
			t.Fatalf("teardown prompt: %s", r)
		}
	}
	w.must("read", "bot", "openrouter")
	r = w.inProcess("y\n", true, "", "teardown", "bot")
	expectCode(t, r, 0, "teardown confirmed")
	expectCode(t, w.ak("read", "bot", "openrouter"), 1, "read after teardown")

	// Tearing down the master itself asks too, saying what is at stake.
	r = w.inProcess("n\n", true, "", "teardown", "--self")
	expectStderr(t, r, 1, "teardown --self answered n", "your own master wallet", "[y/N]")
	w.must("whoami")
	r = w.inProcess("y\n", true, "", "teardown", "--self")
	expectCode(t, r, 0, "teardown --self confirmed")
	if !strings.Contains(r.stdout, "agentkeys init") {
		t.Fatalf("teardown --self output: %s", r)
	}
	expectCode(t, w.ak("whoami"), 1, "whoami after teardown --self")
}

func TestUsageFollowsCursors(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	w.must("agent", "create", "bot", "--services", "openrouter")
	w.mustIn("v", "store", "bot", "openrouter")
	for range 4 {
		w.must("read", "bot", "openrouter")
	}
	old := maxAuditPage
	maxAuditPage = 2
	defer func() { maxAuditPage = old }()
	r := w.inProcess("", false, "", "--verbose", "--json", "usage", "--all")
	expectCode(t, r, 0, "usage --all")
	var p struct {
		Events     []struct{ ID int64 }
		NextCursor string `json:"next_cursor"`
	}
	oneJSON(t, r.stdout, &p)
	// session_create, child_create, store (with the scope read that checks
	// the service), 4 reads.
	if len(p.Events) != 8 || p.NextCursor != "" {
		t.Fatalf("--all: %d events, cursor %q", len(p.Events), p.NextCursor)
	}
	for i := 1; i < len(p.Events); i++ {
		if p.Events[i].ID >= p.Events[i-1].ID {
			t.Fatalf("events out of order or repeated: %+v", p.Events)
		}
	}
	if n := strings.Count(r.stderr, "GET /audit/query"); n < 4 {
		t.Fatalf("--all made %d requests with pages of 2", n)
	}
	// --limit 5 over pages of 2: exactly 5.
	r = w.inProcess("", false, "", "--json", "usage", "--limit", "5")
	oneJSON(t, r.stdout, &p)
	if len(p.Events) != 5 || p.NextCursor == "" {
		t.Fatalf("--limit 5: %d events, cursor %q", len(p.Events), p.NextCursor)
	}
}

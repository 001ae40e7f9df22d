package cli

import (
	"strings"
	"testing"
)

// TestCompatOriginalCLISyntax runs the original CLI's command lines against
// the binary: each is refused as a usage error (exit 2) before anything is
// sent, so a secret in an old command line never reaches the backend; the
// new spellings work.
func TestCompatOriginalCLISyntax(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, wallet := w.initMaster()
	w.createAgent("bot", "--services", "openrouter")
	secret := newSecret()
	for _, args := range [][]string{
		{"store", "--agent", wallet, "openrouter", secret}, // agent as a flag, key in argv
		{"read", "--agent", wallet, "openrouter"},
		{"init", "--mock-token", "someone"},                          // identity in argv
		{"feedback"},                                                 // removed
		{"scope", "bot", "--add", "openai"},                          // now scope set / scope get
		{"link", wallet, "--alias", "a", "--email", "a@example.com"}, // the alias won silently
	} {
		r := w.ak(args...)
		if r.code != 2 || r.stdout != "" {
			t.Errorf("agentkeys %s: want exit 2 and no output, got %s", strings.Join(args, " "), r)
		}
	}
	if r := w.ak("read", "bot", "openrouter"); r.code == 0 {
		t.Fatalf("the refused store stored something: %s", r)
	}
	w.mustIn(secret, "store", "bot", "openrouter")
	if got := w.must("read", "bot", "openrouter", "-n").stdout; got != secret {
		t.Fatalf("read = %q", got)
	}
	w.must("scope", "set", "bot", "--add", "openai")
	if r := w.must("scope", "get", "bot"); !strings.Contains(r.stdout, "openai") {
		t.Fatalf("scope get: %s", r)
	}
}

// TestCompatErrorLines: a failure is printed as "agentkeys: <message>"
// (and "hint: …"), exit 1, not the original's "Error: DENIED" /
// "Error: NOT_FOUND" block.
func TestCompatErrorLines(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	r := w.ak("read", "bot", "openrouter")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "agentkeys: ") || strings.Contains(r.stderr, "Error: ") {
		t.Fatalf("read of a missing credential: %s", r)
	}
}

// TestCompatUsageShape: `usage --json` prints one object
// {"events":[…],"next_cursor":"…"} whose events carry an RFC 3339 "time"
// and the acting "owner" (the original printed a bare array of
// {timestamp,agent,service,action,result}).
func TestCompatUsageShape(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, wallet := w.initMaster()
	var page struct {
		Events []struct {
			Time  string `json:"time"`
			Owner string `json:"owner"`
		} `json:"events"`
		NextCursor *string `json:"next_cursor"`
	}
	oneJSON(t, w.must("usage", "--json").stdout, &page)
	if len(page.Events) == 0 || page.NextCursor == nil || page.Events[0].Owner != wallet || !strings.HasSuffix(page.Events[0].Time, "Z") {
		t.Fatalf("usage --json: %+v", page)
	}
	table := w.must("usage").stdout
	if !strings.HasPrefix(table, "TIME") || !strings.Contains(table, "OWNER") {
		t.Fatalf("usage table header:\n%s", table)
	}
}

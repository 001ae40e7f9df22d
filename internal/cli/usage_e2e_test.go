package cli

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

type usagePage struct {
	Events     []usageJSON `json:"events"`
	NextCursor string      `json:"next_cursor"`
}

type usageJSON struct {
	Source string `json:"source"`
	ID     int64  `json:"id"`
	Time   string `json:"time"`
	Owner  string `json:"owner"`
	Agent  string `json:"agent"`
	Action string `json:"action"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

func (w *world) usageJSON(t *testing.T, args ...string) usagePage {
	t.Helper()
	var p usagePage
	oneJSON(t, w.must(append([]string{"usage", "--json"}, args...)...).stdout, &p)
	return p
}

// TestUsageShowsBrokerMints runs `agentkeys dev` and the CLI as processes:
// usage merges the broker's mints (with their outcome) into the backend's
// events, filters reject unknown values with a suggestion, cursors walk
// both sources, and a broker that cannot be read fails the command.
func TestUsageShowsBrokerMints(t *testing.T) {
	t.Parallel()
	w, _, info := startDev(t)
	initBound(t, w, info, "usage-user")
	master := w.storedSession("default").Wallet
	cloud, narrow := t.TempDir()+"/cloud.json", t.TempDir()+"/narrow.json"
	cloudWallet := w.createAgent("cloud", "--services", "aws", "--session-out", cloud)
	narrowWallet := w.createAgent("narrow", "--services", "openrouter", "--session-out", narrow)
	w.must("token", "oidc")
	w.must("token", "oidc", "--session-file", cloud)
	expectCode(t, w.ak("token", "oidc", "--session-file", narrow), 1, "token oidc without aws in scope")

	all := w.usageJSON(t, "--all")
	mints := map[string]string{}
	var backendRows int
	for _, e := range all.Events {
		switch e.Source {
		case "broker":
			if e.Action != "mint_jwt" || e.Owner != e.Agent {
				t.Fatalf("broker row: %+v", e)
			}
			mints[e.Agent] = e.Result
		case "backend":
			backendRows++
		default:
			t.Fatalf("row without a source: %+v", e)
		}
	}
	if len(mints) != 3 || mints[string(master)] != "ok" || mints[cloudWallet] != "ok" || mints[narrowWallet] != "scope_denied" {
		t.Fatalf("broker mints in usage = %v", mints)
	}
	if backendRows == 0 {
		t.Fatal("the backend's events are missing")
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].Time > all.Events[i-1].Time {
			t.Fatalf("not newest first at %d: %s after %s", i, all.Events[i].Time, all.Events[i-1].Time)
		}
	}
	table := w.must("usage").stdout
	if !strings.Contains(table, "mint_jwt") || !strings.Contains(table, "scope_denied") || !strings.Contains(table, "child_create") {
		t.Fatalf("usage table:\n%s", table)
	}

	// Filters pick the source that holds what they ask for.
	if p := w.usageJSON(t, "--action", "mint_jwt"); len(p.Events) != 3 {
		t.Fatalf("--action mint_jwt: %+v", p.Events)
	}
	if p := w.usageJSON(t, "--result", "scope_denied"); len(p.Events) != 1 || p.Events[0].Agent != narrowWallet {
		t.Fatalf("--result scope_denied: %+v", p.Events)
	}
	if p := w.usageJSON(t, "narrow"); len(p.Events) < 2 || !hasRow(p, "broker", "scope_denied") || !hasRow(p, "backend", "ok") {
		t.Fatalf("usage narrow: %+v", p.Events)
	}
	for _, e := range w.usageJSON(t, "--source", "backend", "--all").Events {
		if e.Source != "backend" {
			t.Fatalf("--source backend showed %+v", e)
		}
	}
	for _, e := range w.usageJSON(t, "--source", "broker", "--all").Events {
		if e.Source != "broker" {
			t.Fatalf("--source broker showed %+v", e)
		}
	}

	// Unknown values: exit 2, the nearest value named, nothing listed.
	for _, tc := range []struct{ flag, value, want string }{
		{"--action", "raed", `did you mean "read"?`},
		{"--action", "READ", `did you mean "read"?`},
		{"--result", "denied", `did you mean "DENIED"?`},
		{"--result", "scope_denid", `did you mean "scope_denied"?`},
		{"--source", "brokr", `did you mean "broker"?`},
	} {
		r := w.ak("usage", tc.flag, tc.value)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("usage %s %s: want exit 2 and %s, got %s", tc.flag, tc.value, tc.want, r)
		}
	}

	// Cursors walk both sources: page by page equals --all.
	var walked []usageJSON
	args := []string{"--limit", "2"}
	for range 100 {
		p := w.usageJSON(t, args...)
		walked = append(walked, p.Events...)
		if p.NextCursor == "" {
			break
		}
		args = []string{"--limit", "2", "--cursor", p.NextCursor}
	}
	if len(walked) != len(all.Events) {
		t.Fatalf("paged %d events, --all shows %d", len(walked), len(all.Events))
	}
	for i := range walked {
		if walked[i] != all.Events[i] {
			t.Fatalf("event %d: paged %+v, --all %+v", i, walked[i], all.Events[i])
		}
	}

	// A profile bound to a broker that does not answer: usage fails and
	// says how to see the backend's events alone.
	dead := w.env("AGENTKEYS_PROFILE=dead", "AGENTKEYS_BROKER_URL=http://127.0.0.1:1")
	if r := w.exec(nil, append(dead, "AGENTKEYS_AUTH_TOKEN=usage-user"), "init"); r.code != 0 {
		t.Fatalf("init dead: %s", r)
	}
	r := w.exec(nil, dead, "usage")
	if r.code != 1 || !strings.Contains(r.stderr, "broker") || !strings.Contains(r.stderr, "--source backend") {
		t.Fatalf("usage with an unreachable broker: %s", r)
	}
	expectCode(t, w.exec(nil, dead, "usage", "--source", "backend"), 0, "usage --source backend with an unreachable broker")
}

func hasRow(p usagePage, source, result string) bool {
	for _, e := range p.Events {
		if e.Source == source && e.Result == result {
			return true
		}
	}
	return false
}

// TestUsageFollow: `usage --follow --json` prints the newest events, then
// each new one (a backend event and a broker mint) as it is recorded, and
// ends with exit 0 on SIGINT.
func TestUsageFollow(t *testing.T) {
	t.Parallel()
	w, _, info := startDev(t)
	initBound(t, w, info, "follow-user")
	cmd := exec.Command(binPath, "usage", "--follow", "--json", "--limit", "1")
	cmd.Env = w.env()
	cmd.Dir = w.home
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan usageJSON)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e usageJSON
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e.Detail = "not JSON: " + sc.Text()
			}
			lines <- e
		}
		close(lines)
	}()
	next := func(what string) usageJSON {
		t.Helper()
		select {
		case e, ok := <-lines:
			if !ok || strings.HasPrefix(e.Detail, "not JSON") {
				t.Fatalf("follow ended or printed garbage waiting for %s: %+v\n%s", what, e, stderr.String())
			}
			return e
		case <-time.After(15 * time.Second):
			t.Fatalf("follow printed no %s\n%s", what, stderr.String())
		}
		panic("unreachable")
	}
	if e := next("initial event"); e.Action != "session_create" {
		t.Fatalf("initial event: %+v", e)
	}
	w.createAgent("bot", "--services", "openrouter")
	if e := next("agent creation"); e.Source != "backend" || e.Action != "child_create" {
		t.Fatalf("after agent create: %+v", e)
	}
	w.must("token", "oidc")
	if e := next("mint"); e.Source != "broker" || e.Action != "mint_jwt" || e.Result != "ok" {
		t.Fatalf("after token oidc: %+v", e)
	}
	interrupt(t, cmd, "usage --follow", &stderr)
	// --follow with --all, --cursor or --until is refused.
	expectCode(t, w.ak("usage", "--follow", "--all"), 2, "usage --follow --all")
}

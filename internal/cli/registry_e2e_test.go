package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// TestAgentRegistry walks the agent names with the real binary: names are
// the backend's (unique per master, visible from another machine), every
// <agent> accepts a name, an alias or the wallet, resolving only inside
// the caller's own tree, and messages and `usage` show names.
func TestAgentRegistry(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	id, master := w.initMaster()
	helper := w.createAgent("helper", "--services", "openrouter")
	r := w.ak("agent", "create", "helper", "--services", "openrouter")
	expectStderr(t, r, 1, "agent create with a taken name", `the name "helper" is taken`, "agent list")
	expectCode(t, w.ak("agent", "create", "Bad Name", "--services", "x"), 2, "agent create with a bad name")
	bot := w.createAgent("bot", "--services", "openrouter,github")

	// An alias made with link works wherever <agent> does.
	w.mustSay("", "Linked agent="+bot+" alias=my-bot name=bot", "link", "bot", "--alias", "my-bot")
	secret := newSecret()
	w.mustSay(secret, "Stored credential for agent="+bot+" service=openrouter name=bot", "store", "my-bot", "openrouter")
	if got := strings.TrimSuffix(w.must("read", "bot", "openrouter").stdout, "\n"); got != secret {
		t.Fatalf("read by name = %q", got)
	}
	if got := strings.TrimSuffix(w.must("read", "MY-BOT", "openrouter").stdout, "\n"); got != secret {
		t.Fatalf("read by alias in upper case = %q", got)
	}
	if r := w.must("scope", "get", "my-bot"); !strings.Contains(r.stdout, "Scope for agent bot ("+bot+"):") {
		t.Fatalf("scope get through an alias: %s", r)
	}
	if r := w.must("scope", "get", bot); !strings.Contains(r.stdout, "Scope for agent bot ("+bot+"):") {
		t.Fatalf("scope get by wallet does not name the agent: %s", r)
	}

	// One spelling names one agent: an alias may not take another agent's
	// name, nor a name another agent's alias.
	r = w.ak("link", "bot", "--alias", "helper")
	expectStderr(t, r, 1, "alias spelling another agent's name", "already the name of another agent")
	r = w.ak("agent", "rename", "helper", "my-bot")
	expectStderr(t, r, 1, "name spelling another agent's alias", "already an alias of another agent")

	// Rename: the old name stops working at once.
	w.mustSay("", `Renamed agent=`+helper+` from "helper" to "assistant"`, "agent", "rename", "helper", "assistant")
	r = w.ak("scope", "get", "helper")
	expectStderr(t, r, 1, "scope get by the old name", `unknown agent "helper"`, "agentkeys agent list")
	expectCode(t, w.ak("agent", "rename", "assistant", "0xnope"), 2, "rename to a wallet look-alike")
	expectCode(t, w.ak("agent", "rename", "assistant"), 2, "rename without a new name")

	// Another master may call its own agent bot; it cannot reach this
	// master's agents by name, alias or wallet.
	other := newWorldSharing(t, w)
	other.initMaster()
	otherBot := other.createAgent("bot", "--services", "openrouter")
	for _, arg := range []string{"my-bot", "assistant", bot} {
		r := other.ak("scope", "get", arg)
		expectCode(t, r, 1, "another master's agent "+arg)
		if !strings.Contains(r.stderr, "unknown agent") {
			t.Fatalf("another master resolves %s: %s", arg, r)
		}
	}
	otherSecret := newSecret()
	other.mustIn(otherSecret, "store", "bot", "openrouter")
	if got := strings.TrimSuffix(other.must("read", otherBot, "openrouter").stdout, "\n"); got != otherSecret {
		t.Fatalf("other master's bot reads %q", got)
	}
	if got := strings.TrimSuffix(w.must("read", "bot", "openrouter").stdout, "\n"); got != secret {
		t.Fatalf("a same-named agent of another master changed this one: %q", got)
	}

	// agent list comes from the backend: on another machine logged in as
	// the same master, the names, scopes and last use are all there.
	laptop := newWorldSharing(t, w)
	if r := laptop.exec(nil, laptop.env("AGENTKEYS_AUTH_TOKEN="+id), "init"); r.code != 0 || !strings.Contains(r.stdout, master) {
		t.Fatalf("init on the laptop: %s", r)
	}
	r = laptop.must("agent", "list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME WALLET SCOPE EXPIRES LAST USED" {
		t.Fatalf("agent list on the laptop:\n%s", r.stdout)
	}
	row := func(name string) []string {
		for _, l := range lines[1:] {
			if f := strings.Fields(l); f[0] == name {
				return f
			}
		}
		t.Fatalf("no row %q in:\n%s", name, r.stdout)
		return nil
	}
	if f := row("assistant"); f[1] != helper || f[len(f)-1] != "never" {
		t.Fatalf("assistant row %v: want its wallet and never used", f)
	}
	if f := row("bot"); f[1] != bot || f[len(f)-1] == "never" || !strings.HasSuffix(f[len(f)-1], "Z") {
		t.Fatalf("bot row %v: want its wallet and a last use", f)
	}
	if got := strings.TrimSuffix(laptop.must("read", "my-bot", "openrouter").stdout, "\n"); got != secret {
		t.Fatalf("laptop reads through the alias %q", got)
	}
	var list struct {
		Agents []agentListEntry `json:"agents"`
	}
	oneJSON(t, laptop.must("agent", "list", "--json").stdout, &list)
	if len(list.Agents) != 2 || list.Agents[0].Name != "assistant" || list.Agents[1].Name != "bot" ||
		list.Agents[1].Parent != agentkeys.Wallet(master) || list.Agents[1].ExpiresAt == "" || list.Agents[1].LastUsedAt == "" ||
		list.Agents[0].LastUsedAt != "" || len(list.Agents[1].Scope.Services) != 2 {
		t.Fatalf("agent list --json: %+v", list)
	}

	// usage shows names in its AGENT column and takes a name or alias.
	r = w.must("usage", "my-bot", "--action", "store")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || strings.Fields(lines[1])[2] != "bot" {
		t.Fatalf("usage my-bot --action store:\n%s", r.stdout)
	}

	// Revoke keeps the name (the agent still exists); list shows no session.
	r = w.must("revoke", "bot")
	if !strings.Contains(r.stdout, "Revoked agent="+bot+" (bot)") {
		t.Fatalf("revoke: %s", r)
	}
	if l := w.must("agent", "list").stdout; !strings.Contains(strings.Join(strings.Fields(l), " "), "bot "+bot+" services: github, openrouter none ") {
		t.Fatalf("a revoked agent is not shown as revoked:\n%s", l)
	}
	// Teardown frees the name.
	r = w.must("teardown", "assistant", "--yes")
	if !strings.Contains(r.stdout, "Torn down agent="+helper+" (assistant)") {
		t.Fatalf("teardown: %s", r)
	}
	w.createAgent("assistant", "--services", "x")
}

// TestAgentNamesMovedFromProfile: names an earlier version kept in the
// profile's agents.json are moved to the backend on first use.
func TestAgentNamesMovedFromProfile(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, master := w.initMaster()
	_, legacy := unnamedAgent(t, w)
	book, _ := json.Marshal(agentBook{Master: agentkeys.Wallet(master), Backend: w.url, Agents: map[string]agentkeys.Wallet{"legacy": legacy.Wallet}})
	path := filepath.Join(w.cfg, "agentkeys", "default", agentsFileName)
	if err := keychain.WritePrivateFile(path, book); err != nil {
		t.Fatal(err)
	}
	r := w.must("scope", "get", "legacy")
	if !strings.Contains(r.stdout, "Scope for agent legacy ("+string(legacy.Wallet)+"):") || !strings.Contains(r.stderr, "moved 1 agent name(s)") {
		t.Fatalf("first use of a local name: %s", r)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after the move: %v", path, err)
	}
	if r := w.must("agent", "list"); !strings.Contains(r.stdout, "legacy") || !strings.Contains(r.stdout, string(legacy.Wallet)) {
		t.Fatalf("agent list after the move:\n%s", r.stdout)
	}
}

// TestApproveNameTaken: a pairing whose --name another agent has is
// refused as a whole (no unnamed agent is left behind) and can be approved
// again with a free name.
func TestApproveNameTaken(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	c, o := openPair(t, w, "openrouter")
	r := w.ak("approve", o.PairCode, "--otp", o.OTP, "--yes", "--name", "bot")
	expectStderr(t, r, 1, "approve with a taken name", `the name "bot" is taken`)
	if n := strings.Count(strings.TrimSpace(w.must("agent", "list").stdout), "\n"); n != 1 {
		t.Fatalf("a refused approval left an agent behind:\n%s", w.must("agent", "list").stdout)
	}
	r = w.must("approve", o.PairCode, "--otp", o.OTP, "--yes", "--name", "laptop-bot")
	d, err := c.AwaitAuthDecision(context.Background(), o)
	if err != nil || d.Session == nil {
		t.Fatalf("daemon's await: %+v %v", d, err)
	}
	if !strings.Contains(r.stdout, "Agent laptop-bot ("+string(d.Session.Wallet)+") paired") {
		t.Fatalf("approve --name: %s", r)
	}
}

// TestLinkedAliasIsAnAgentCompat is the original CLI's flow: an agent known
// only by its wallet gets an alias with `link`, and the alias then works
// as <agent> (the original resolved it through GET /identity/resolve; this
// CLI asks GET /agent/resolve, inside the caller's tree).
func TestLinkedAliasIsAnAgentCompat(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.initMaster()
	c, child := unnamedAgent(t, w)
	wallet := string(child.Wallet)
	w.mustSay("", "Linked agent="+wallet+" alias=my-bot", "link", wallet, "--alias", "my-bot")
	secret := newSecret()
	w.mustSay(secret, "Stored credential for agent="+wallet+" service=openrouter", "store", "my-bot", "openrouter")
	got, err := c.ReadCredential(context.Background(), child.Token, child.Wallet, "openrouter")
	if err != nil || string(got) != secret {
		t.Fatalf("the agent reads %q, %v", got, err)
	}
	expectStderr(t, w.ak("store", "no-such-bot", "openrouter"), 1, "store for an unknown alias", `unknown agent "no-such-bot"`)
}

// unnamedAgent creates an agent of w's master straight through the API,
// without a name, as the original CLI's agents were.
func unnamedAgent(t *testing.T, w *world) (*backendclient.Client, backendclient.Session) {
	t.Helper()
	c, err := backendclient.New(w.url)
	if err != nil {
		t.Fatal(err)
	}
	sess := w.storedSession("default")
	child, err := c.CreateChild(context.Background(), sess.Token, agentkeys.Scope{Services: []string{"openrouter"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, child
}

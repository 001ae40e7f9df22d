package cli

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// newWorldSharing is a second master's home on w's backend.
func newWorldSharing(t *testing.T, w *world) *world {
	return worldOn(t, w.url)
}

// fakeBackend counts the requests it receives and answers none of them
// usefully: a server that must never be handed a token.
type fakeBackend struct {
	srv      *httptest.Server
	requests atomic.Int64
}

func newFakeBackend(t *testing.T) *fakeBackend {
	f := &fakeBackend{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.requests.Add(1)
		http.Error(w, `{"error":"NOT_FOUND","message":"fake"}`, http.StatusNotFound)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestLink(t *testing.T) {
	t.Parallel()
	w, agent := newWorldWithAgent(t, "bot", "--services", "openrouter")
	w.mustSay("", "Linked agent="+agent+" alias=my-bot name=bot", "link", "bot", "--alias", "my-bot")
	var js map[string]string
	oneJSON(t, w.must("link", agent, "--email", "bot@example.com", "--json").stdout, &js)
	if js["identity_type"] != "email" || js["agent"] != agent {
		t.Fatalf("link --json: %v", js)
	}
	// Another master cannot take the name, nor link to a wallet it does
	// not own.
	other := newWorldSharing(t, w)
	other.initMaster()
	mine := other.createAgent("mine", "--services", "x")
	r := other.ak("link", mine, "--alias", "my-bot")
	expectStderr(t, r, 1, "link taken", "another wallet")
	expectCode(t, other.ak("link", agent, "--alias", "stolen"), 1, "link to a foreign wallet")
	expectCode(t, w.ak("link", agent), 2, "link without identity")
	expectCode(t, w.ak("link", agent, "--alias", "Bad Alias"), 2, "link bad alias")
}

func TestInbox(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, master := w.initMaster()
	agent := w.createAgent("bot", "--services", "x")
	if r := w.must("inbox", "list", "bot"); r.stdout != "" {
		t.Fatalf("empty inbox list printed %q", r.stdout)
	}
	addr := strings.TrimSpace(w.must("inbox", "provision", "bot").stdout)
	if !strings.HasPrefix(addr, "bot-") || !strings.Contains(addr, "@") {
		t.Fatalf("provision: %q", addr)
	}
	if r := w.must("inbox", "list", agent); strings.TrimSpace(r.stdout) != addr {
		t.Fatalf("list: %q", r.stdout)
	}
	var js struct {
		Agent     string
		Addresses []string
	}
	oneJSON(t, w.must("inbox", "list", "bot", "--json").stdout, &js)
	if js.Agent != agent || len(js.Addresses) != 1 {
		t.Fatalf("list --json: %+v", js)
	}
	// Without <agent>: the master's own wallet.
	var pj struct{ Agent, Address string }
	oneJSON(t, w.must("inbox", "provision", "--json").stdout, &pj)
	if pj.Agent != master || pj.Address == "" {
		t.Fatalf("provision --json: %+v", pj)
	}
	// A rejected session: exit 1, init hint.
	st := &keychain.Store{Dir: filepath.Join(w.cfg, "agentkeys"), Mode: keychain.ModeFile}
	st.Save("default", keychain.Session{Token: agentkeys.NewToken(), Wallet: agentkeys.Wallet(master), Backend: w.url})
	r := w.ak("inbox", "list")
	expectStderr(t, r, 1, "inbox list unauthorized", "agentkeys init")
}

package broker

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
)

func (h *harness) auditView(bearer string, q url.Values) (response, api.BrokerAuditPage) {
	h.t.Helper()
	path := api.PathBrokerAudit
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	r := h.do("GET", path, bearer, "")
	var page api.BrokerAuditPage
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &page); err != nil {
			h.t.Fatalf("audit view: %v: %s", err, r.body)
		}
	}
	return r, page
}

// TestAuditViewShowsOwnTree: GET /v1/audit shows a master the mints of its
// own wallet and of its agents (with their outcome), never another
// master's, nor rows of unauthenticated callers; filters and cursors work;
// the route writes nothing to the ledger.
func TestAuditViewShowsOwnTree(t *testing.T) {
	h := newHarness(t)
	master, mw := h.backend.newSession("master", nil)
	agent, aw := h.backend.newChild(mw, &agentkeys.Scope{Services: []string{"aws"}})
	narrow, nw := h.backend.newChild(mw, &agentkeys.Scope{Services: []string{"openrouter"}})
	other, ow := h.backend.newSession("master", nil)

	for _, mint := range []struct {
		tok, path string
		status    int
	}{
		{master, PathMintJWT, 200}, {agent, PathMintJWT, 200}, {agent, PathMintAWS, 200},
		{narrow, PathMintJWT, 403}, {other, PathMintJWT, 200}, {"not-a-token", PathMintJWT, 401},
	} {
		if r := h.do("POST", mint.path, mint.tok, ""); r.status != mint.status {
			t.Fatalf("mint %s: %d %s", mint.path, r.status, r.body)
		}
	}
	rows := h.rows()

	r, page := h.auditView(master, nil)
	if r.status != 200 {
		t.Fatalf("audit view: %d %s", r.status, r.body)
	}
	count := map[agentkeys.Wallet]int{}
	outcomes := map[string]int{}
	for _, e := range page.Events {
		count[e.Wallet]++
		outcomes[e.Kind+"/"+e.Outcome]++
		if e.Time == "" || e.Timestamp == 0 || e.Chain == "" || e.ID == 0 {
			t.Fatalf("event lacks its position or time: %+v", e)
		}
	}
	// The AWS mint writes an sts_attempt row before its outcome row.
	if count[mw] != 1 || count[aw] != 4-1 || count[nw] != 1 || count[ow] != 0 || count[audit.UnknownWallet] != 0 {
		t.Fatalf("rows per wallet = %v (master %s agent %s narrow %s other %s)", count, mw, aw, nw, ow)
	}
	if outcomes["jwt/ok"] != 2 || outcomes["aws/ok"] != 1 || outcomes["aws/sts_attempt"] != 1 || outcomes["jwt/scope_denied"] != 1 {
		t.Fatalf("outcomes = %v", outcomes)
	}
	for _, e := range page.Events {
		if e.Kind == api.MintKindAWS && e.Outcome == audit.OutcomeOK && (e.CredentialID == "" || e.CredentialExpiresAt == 0) {
			t.Fatalf("AWS mint without its credential id and expiry: %+v", e)
		}
	}
	// An agent sees only its own; the other master only its own.
	if _, p := h.auditView(agent, nil); len(p.Events) != 3 {
		t.Fatalf("agent's view: %+v", p.Events)
	}
	if _, p := h.auditView(other, nil); len(p.Events) != 1 || p.Events[0].Wallet != ow {
		t.Fatalf("other master's view: %+v", p.Events)
	}

	// Filters.
	if _, p := h.auditView(master, url.Values{"kind": {"aws"}, "outcome": {"ok"}}); len(p.Events) != 1 || p.Events[0].Wallet != aw {
		t.Fatalf("kind=aws outcome=ok: %+v", p.Events)
	}
	if _, p := h.auditView(master, url.Values{"wallet": {string(nw)}}); len(p.Events) != 1 || p.Events[0].Outcome != audit.OutcomeScopeDenied {
		t.Fatalf("wallet=narrow: %+v", p.Events)
	}
	if _, p := h.auditView(master, url.Values{"wallet": {string(ow)}}); len(p.Events) != 0 {
		t.Fatalf("wallet outside the tree showed %+v", p.Events)
	}
	// Cursors walk every row once, newest first.
	seen := map[string]bool{}
	q := url.Values{"limit": {"2"}}
	var last int64 = 1 << 62
	for pages := 0; ; pages++ {
		_, p := h.auditView(master, q)
		for _, e := range p.Events {
			k := e.Chain + "/" + strconv.FormatInt(e.ID, 10)
			if seen[k] || e.Timestamp > last {
				t.Fatalf("row %s repeated or out of order", k)
			}
			seen[k], last = true, e.Timestamp
		}
		if p.NextCursor == "" {
			break
		}
		if pages > 5 {
			t.Fatal("cursor does not end")
		}
		q.Set("cursor", p.NextCursor)
	}
	if len(seen) != len(page.Events) {
		t.Fatalf("paged %d rows, one page had %d", len(seen), len(page.Events))
	}
	if h.rows() != rows {
		t.Fatal("reading the audit view wrote to the ledger")
	}
}

// TestAuditViewRefusals: bad bearers and bad filters are refused with the
// error envelope; a backend that cannot list the tree is a 502, and mints
// are unaffected by the audit view.
func TestAuditViewRefusals(t *testing.T) {
	h := newHarness(t)
	master, _ := h.backend.newSession("master", nil)
	for _, tc := range []struct {
		bearer string
		q      url.Values
		status int
		kind   string
	}{
		{"", nil, 401, KindUnauthorized},
		{agentkeys.NewToken().Reveal(), nil, 401, KindUnauthorized},
		{master, url.Values{"kind": {"JWT"}}, 400, KindBadRequest},
		{master, url.Values{"outcome": {"OK; drop"}}, 400, KindBadRequest},
		{master, url.Values{"limit": {"0"}}, 400, KindBadRequest},
		{master, url.Values{"cursor": {"12"}}, 400, KindBadRequest},
		{master, url.Values{"since": {"yesterday"}}, 400, KindBadRequest},
		{master, url.Values{"wallet": {"alice"}}, 400, KindBadRequest},
		{master, url.Values{"agent": {"x"}}, 400, KindBadRequest},
	} {
		r, _ := h.auditView(tc.bearer, tc.q)
		if r.status != tc.status || r.errorKind(t) != tc.kind {
			t.Errorf("audit view %v: %d %s, want %d %s", tc.q, r.status, r.body, tc.status, tc.kind)
		}
	}
	h.backend.set(func(b *fakeBackend) { b.treeDown = true })
	if r, _ := h.auditView(master, nil); r.status != http.StatusBadGateway || r.errorKind(t) != KindBackendUnreachable {
		t.Fatalf("tree down: %d %s", r.status, r.body)
	}
	if r := h.mintJWT(master); r.status != 200 {
		t.Fatalf("mint while the tree route fails: %d %s", r.status, r.body)
	}
}

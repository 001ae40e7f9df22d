package backend

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
)

// engineEnvs is one server per engine: SQLite always, PostgreSQL when
// AGENTKEYS_TEST_POSTGRES_URL names a server.
func engineEnvs(t testing.TB, opts ...envOption) []*testEnv {
	envs := []*testEnv{newEnv(t, opts...)}
	if os.Getenv(sqldbtest.EnvPostgresURL) != "" || os.Getenv(sqldbtest.EnvRequirePostgres) == "1" {
		envs = append(envs, newEnvDSN(t, sqldbtest.PostgresDSN(t), opts...))
	}
	return envs
}

// inputCase builds one request carrying an untrusted value v.
type inputCase struct {
	name  string
	build func(v string, master, agent backendclient.Session) (method, target, body string, tok agentkeys.Token)
}

func jsonStr(v string) string { b, _ := json.Marshal(v); return string(b) }

var inputCases = []inputCase{
	{"resolve email", func(v string, _, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "GET", "/identity/resolve?identity_type=email&identity_value=" + url.QueryEscape(v), "", ""
	}},
	{"resolve ens", func(v string, _, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "GET", "/identity/resolve?identity_type=ens&identity_value=" + url.QueryEscape(v), "", ""
	}},
	{"await", func(v string, _, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "GET", "/auth-request/await?request_id=" + url.QueryEscape(v), "", agentkeys.NewToken()
	}},
	{"fetch", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "GET", "/auth-request/fetch?request_id=" + url.QueryEscape(v), "", m.Token
	}},
	{"audit filters", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		q := url.Values{"service": {v}, "action": {v}, "result": {v}}
		return "GET", "/audit/query?" + q.Encode(), "", m.Token
	}},
	{"credential read", func(v string, _, a backendclient.Session) (string, string, string, agentkeys.Token) {
		q := url.Values{"agent_id": {string(a.Wallet)}, "service": {v}}
		return "GET", "/credential/read?" + q.Encode(), "", a.Token
	}},
	{"link email", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/identity/link", `{"identity_type":"email","identity_value":` + jsonStr(v) + `}`, m.Token
	}},
	{"link ens", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/identity/link", `{"identity_type":"ens","identity_value":` + jsonStr(v+".eth") + `}`, m.Token
	}},
	{"audit provision detail", func(v string, m, a backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/audit/provision", `{"agent_id":"` + string(a.Wallet) + `","service":"svc","result":"ok","detail":` + jsonStr(v) + `}`, m.Token
	}},
	{"store service", func(v string, m, a backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/credential/store", `{"agent_id":"` + string(a.Wallet) + `","service":` + jsonStr(v) + `,"ciphertext":"eA=="}`, m.Token
	}},
	{"agent name", func(v string, m, a backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/agent/name", `{"wallet":"` + string(a.Wallet) + `","name":` + jsonStr(v) + `}`, m.Token
	}},
	{"child name", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/session/child", `{"scope":{"services":["x"]},"name":` + jsonStr(v) + `}`, m.Token
	}},
	{"agent resolve", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "GET", "/agent/resolve?agent=" + url.QueryEscape(v), "", m.Token
	}},
	{"child ttl", func(v string, m, _ backendclient.Session) (string, string, string, agentkeys.Token) {
		return "POST", "/session/child", `{"scope":{"services":["x"]},"ttl_seconds":` + v + `}`, m.Token
	}},
}

// send runs one request through e's handler and returns status and kind.
func (e *testEnv) send(method, target, body string, tok agentkeys.Token) (int, string) {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	u, err := url.ParseRequestURI(target)
	if err != nil {
		e.t.Fatalf("bad target %q: %v", target, err)
	}
	req.URL = u
	req.RequestURI = target
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	var env struct{ Error string }
	if rec.Code != http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error == "" {
			e.t.Fatalf("%s %s → %d without the error envelope: %s", method, target, rec.Code, rec.Body)
		}
	}
	return rec.Code, env.Error
}

func engineName(e *testEnv) string {
	if strings.HasPrefix(e.dbPath, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

type engineFixture struct {
	env           *testEnv
	master, agent backendclient.Session
}

func engineFixtures(t testing.TB) []engineFixture {
	var out []engineFixture
	for _, e := range engineEnvs(t) {
		m := e.master("input-master")
		a, err := e.client.CreateChild(ctx, m.Token, agentkeys.Scope{Services: []string{"svc"}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, engineFixture{e, m, a})
	}
	return out
}

// TestHostileInputIsA400OnEveryEngine (issue 17 item 6): NUL bytes, broken
// UTF-8, control and bidi characters in identity values, filters, request
// ids and stored text, and out-of-range ttl_seconds, are 400 on SQLite and
// PostgreSQL alike, public routes included.
func TestHostileInputIsA400OnEveryEngine(t *testing.T) {
	for _, fx := range engineFixtures(t) {
		for _, c := range inputCases {
			values := []string{"a\x00b@example.com", "bad\xff\xfe@example.com", "x\u202e@example.com", "c1\u0085@example.com", "esc\x1b[2J@example.com"}
			if c.name == "child ttl" {
				values = []string{"-1", "9223372036854775807", strconv.FormatInt(int64(MaxChildTTL/time.Second)+1, 10)}
			}
			for _, v := range values {
				method, target, body, tok := c.build(v, fx.master, fx.agent)
				if body != "" && !utf8.ValidString(v) {
					continue // JSON decoding turns broken UTF-8 into U+FFFD: valid text
				}
				if code, kind := fx.env.send(method, target, body, tok); code != 400 {
					t.Errorf("%s: %s (%q) → %d %s, want 400", engineName(fx.env), c.name, v, code, kind)
				}
			}
		}
	}
}

// FuzzUntrustedInputBothEngines throws arbitrary values at the routes that
// take identity values, filters, request ids and stored text, on SQLite and
// (with AGENTKEYS_TEST_POSTGRES_URL) PostgreSQL: never a 5xx, always the
// envelope, and the same status from both engines.
func FuzzUntrustedInputBothEngines(f *testing.F) {
	fixtures := engineFixtures(f)
	for i := range inputCases {
		for _, s := range []string{"x@example.com", "a\x00b", "\xff\xfe", "\u202e", "0", "-7350773441", "1e400", "9223372036854775807", "bot.eth", ""} {
			f.Add(i, s)
		}
	}
	f.Fuzz(func(t *testing.T, i int, v string) {
		if i < 0 {
			i = -i
		}
		c := inputCases[i%len(inputCases)]
		var codes []int
		for _, fx := range fixtures {
			fx.env.t = t
			method, target, body, tok := c.build(v, fx.master, fx.agent)
			code, _ := fx.env.send(method, target, body, tok)
			if code >= 500 {
				t.Fatalf("%s %q → %d", c.name, v, code)
			}
			codes = append(codes, code)
		}
		for _, code := range codes[1:] {
			if code != codes[0] && c.name != "child ttl" && c.name != "store service" && !strings.HasPrefix(c.name, "link") {
				t.Fatalf("%s %q: engines disagree: %v", c.name, v, codes)
			}
		}
	})
}

package backend

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// FuzzRequestDecoding throws arbitrary bodies at every JSON route. Whatever
// the input, the server must answer with the JSON envelope or success, never
// a 5xx and never a panic. It runs on SQLite and, when
// AGENTKEYS_TEST_POSTGRES_URL is set, on PostgreSQL too.
func FuzzRequestDecoding(f *testing.F) {
	type target struct {
		h http.Handler
		m backendclient.Session
	}
	var targets []target
	for _, e := range engineEnvs(f) {
		m, err := e.client.CreateSession(ctx, "fuzzer")
		if err != nil {
			f.Fatal(err)
		}
		targets = append(targets, target{e.srv.Handler(), m})
	}
	routes := []struct{ method, path string }{
		{"POST", "/session/create"}, {"POST", "/session/child"}, {"POST", "/session/revoke"},
		{"PUT", "/session/scope"}, {"POST", "/credential/store"}, {"DELETE", "/credential/teardown"},
		{"POST", "/auth-request/open"}, {"POST", "/auth-request/approve"}, {"POST", "/auth-request/deny"},
		{"POST", "/identity/link"}, {"POST", "/rendezvous/register"}, {"POST", "/rendezvous/deliver"},
		{"POST", "/session/recover"}, {"POST", "/session/broker-token"}, {"POST", "/agent/name"},
		{"POST", "/credential/read-batch"}, {"POST", "/audit/gateway"},
	}
	for _, seed := range []string{
		`{"auth_token":"x"}`, `{"scope":{"services":["a"],"read_only":true}}`, `{"target_wallet":"0x0000000000000000000000000000000000000000"}`,
		`{"agent_id":"` + string(targets[0].m.Wallet) + `","service":"x","ciphertext":"eA=="}`, `{"scope":{"services":null}}`,
		`{"agent_id":"` + string(targets[0].m.Wallet) + `","services":["x","y"]}`,
		`{"child_pubkey":"AQID","request_type":"Pair","request_details":"oA=="}`, `{"pair_code":"ABCD-EFGH","otp":"123456"}`,
		`{"child_pubkey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","request_type":"Pair","request_details":"omR0eXBlZFBhaXJvcmVxdWVzdGVkX3Njb3BlomhzZXJ2aWNlc4BpcmVhZF9vbmx59A==","box_pubkey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"identity_type":"alias","identity_value":"bot"}`, `{"daemon_pubkey":"AQ==","pair_code":"x"}`,
		`[]`, `null`, `{"a":`, `{"scope":{"services":[1,2]}}`, "\x00", `{"ttl_seconds":1e400}`,
		`{"wallet":"` + string(targets[0].m.Wallet) + `","name":"bot"}`, `{"scope":{"services":[]},"name":"Bot"}`,
		`{"audience":"broker","ttl_seconds":60}`, `{"audience":"backend"}`, `{"ttl_seconds":-1}`,
		`{"calls":[{"service":"openai","method":"POST","path":"/v1/x","status":200,"bytes_in":1,"bytes_out":2,"duration_ms":3}]}`,
		`{"calls":[{"service":"*","method":"GET","path":"/","status":421,"refused":"misdirected_request"}]}`,
	} {
		for i := range routes {
			f.Add(i, seed)
		}
	}
	f.Fuzz(func(t *testing.T, route int, body string) {
		if route < 0 {
			route = -route
		}
		r := routes[route%len(routes)]
		for _, tg := range targets {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tg.m.Token.Reveal())
			rec := httptest.NewRecorder()
			tg.h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s %q → %d %s", r.method, r.path, body, rec.Code, rec.Body)
			}
			if rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("%d without the error envelope: %s", rec.Code, rec.Body)
			}
		}
	})
}

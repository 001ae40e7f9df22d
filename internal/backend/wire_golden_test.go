package backend

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
)

// shape replaces every value of a decoded JSON document by its type, so a
// golden string pins field names, omitted fields and null against [] but
// not the values.
func shape(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return `"s"`
	case float64:
		return "0"
	case bool:
		return "b"
	case []any:
		if len(v) == 0 {
			return "[]"
		}
		return "[" + shape(v[0]) + "]"
	case map[string]any:
		var b strings.Builder
		b.WriteString("{")
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%s:%s", k, shape(v[k]))
		}
		b.WriteString("}")
		return b.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWireGolden pins the JSON each route answers with: field names and
// omitempty are a contract outside clients rely on, so a change of the
// shared wire types in internal/api that alters them fails here.
func TestWireGolden(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 50 * time.Millisecond })
	m := e.master("alice")
	a := e.agent(m, []string{"openrouter"}, false)
	b := e.agent(m, []string{"openrouter"}, true)
	// A master with exactly one agent, named, for the /agent/list row.
	solo := e.master("solo")
	if _, err := e.client.NameAgent(ctx, solo.Token, e.agent(solo, []string{"openrouter"}, false).Wallet, "solo-bot"); err != nil {
		t.Fatal(err)
	}
	bt, _ := e.brokerToken(a.Token)
	e.storeCredential(m.Token, a.Wallet, "openrouter", secret())
	w, mw := string(a.Wallet), string(m.Wallet)
	cases := []struct {
		name, method, path string
		tok                agentkeys.Token
		body               string
		want               string
	}{
		{"create session", "POST", "/session/create", "", `{"auth_token":"bob"}`,
			`{expires_at:0,session:"s",wallet:"s"}`},
		{"validate session", "GET", "/session/validate", a.Token, "",
			`{epoch:0,expires_at:0,kind:"s",parent:"s",scope:{read_only:b,services:["s"]},wallet:"s"}`},
		{"validate master", "GET", "/session/validate", m.Token, "",
			`{epoch:0,expires_at:0,kind:"s",scope:null,wallet:"s"}`},
		{"validate broker token", "GET", "/session/validate", bt, "",
			`{audience:"s",epoch:0,expires_at:0,kind:"s",parent:"s",scope:{read_only:b,services:["s"]},token_expires_at:0,wallet:"s"}`},
		{"broker token", "POST", "/session/broker-token", a.Token, `{"audience":"broker"}`,
			`{audience:"s",expires_at:0,token:"s"}`},
		{"child", "POST", "/session/child", m.Token, `{"scope":{"services":[],"read_only":false}}`,
			`{expires_at:0,session:"s",wallet:"s"}`},
		{"get scope", "GET", "/session/scope?wallet=" + w, m.Token, "",
			`{read_only:b,services:["s"],wallet:"s"}`},
		{"get own unrestricted scope", "GET", "/session/scope", m.Token, "",
			`{read_only:b,services:null,wallet:"s"}`},
		{"set scope", "PUT", "/session/scope", m.Token, `{"target_wallet":"` + string(b.Wallet) + `","scope":{"services":["openrouter"],"read_only":true}}`,
			`{ok:b,scope:{read_only:b,services:["s"]},wallet:"s"}`},
		{"epoch", "GET", "/session/epoch", "", "", `{epoch:0}`},
		{"watch", "GET", "/session/watch", a.Token, "", `{epoch:0,valid:b}`},
		{"store", "POST", "/credential/store", m.Token, `{"agent_id":"` + w + `","service":"openrouter","ciphertext":"eA=="}`,
			`{ok:b}`},
		{"read", "GET", "/credential/read?service=openrouter&agent_id=" + w, a.Token, "", `{ciphertext:"s"}`},
		{"list", "GET", "/credential/list?agent_id=" + w, m.Token, "", `{services:["s"]}`},
		{"read batch", "POST", "/credential/read-batch", m.Token, `{"agent_id":"` + w + `"}`,
			`{credentials:[{ciphertext:"s",service:"s"}],scope:{read_only:b,services:["s"],wallet:"s"}}`},
		{"audit provision", "POST", "/audit/provision", m.Token, `{"agent_id":"` + w + `","service":"openrouter","result":"ok","detail":"x"}`,
			`{ok:b}`},
		{"audit cached read", "POST", "/audit/cached-read", a.Token, `{"services":["openrouter"]}`, `{ok:b}`},
		{"audit query", "GET", "/audit/query?limit=1&action=provision", m.Token, "",
			`{events:[{action:"s",agent:"s",client_ip:"s",detail:"s",id:0,owner:"s",result:"s",service:"s",time:"s",timestamp:0}],next_cursor:"s"}`},
		{"audit query empty", "GET", "/audit/query?action=nothing", m.Token, "", `{events:[],next_cursor:"s"}`},
		{"link", "POST", "/identity/link", m.Token, `{"identity_type":"alias","identity_value":"bot","wallet_address":"` + w + `"}`,
			`{identity_type:"s",identity_value:"s",ok:b,verified:b,wallet_address:"s"}`},
		{"resolve", "GET", "/identity/resolve?identity_type=alias&identity_value=bot", "", "",
			`{identity_type:"s",verified:b,wallet_address:"s"}`},
		{"agent name", "POST", "/agent/name", m.Token, `{"wallet":"` + w + `","name":"bot"}`, `{name:"s",ok:b,wallet:"s"}`},
		{"agent rename", "POST", "/agent/name", m.Token, `{"wallet":"` + string(b.Wallet) + `","name":"x"}`, `{name:"s",ok:b,wallet:"s"}`},
		{"agent rename again", "POST", "/agent/name", m.Token, `{"wallet":"` + string(b.Wallet) + `","name":"bot-b"}`,
			`{name:"s",ok:b,previous:"s",wallet:"s"}`},
		{"agent resolve", "GET", "/agent/resolve?agent=bot", m.Token, "", `{name:"s",via:"s",wallet:"s"}`},
		{"read batch by agent", "POST", "/credential/read-batch", m.Token, `{"agent":"bot"}`,
			`{agent:{name:"s",via:"s",wallet:"s"},credentials:[{ciphertext:"s",service:"s"}],scope:{read_only:b,services:["s"],wallet:"s"}}`},
		{"agent list", "GET", "/agent/list", solo.Token, "",
			`{agents:[{created_at:0,expires_at:0,last_used_at:0,name:"s",parent:"s",scope:{read_only:b,services:["s"]},wallet:"s"}]}`},
		{"agent list empty", "GET", "/agent/list", a.Token, "", `{agents:[]}`},
		{"revoke session", "POST", "/session/revoke", m.Token, `{"target_session":"` + b.Token.Reveal() + `"}`,
			`{ok:b,sessions_revoked:0}`},
		{"teardown", "DELETE", "/credential/teardown", m.Token, `{"agent_id":"` + w + `"}`,
			`{credentials_removed:0,ok:b,sessions_revoked:0,wallets_removed:0}`},
		{"bad request", "POST", "/session/revoke", m.Token, `{}`, `{error:"s",message:"s"}`},
	}
	_ = mw
	for _, c := range cases {
		status, body, _ := e.raw(c.method, c.path, c.tok, c.body)
		got := shape(body)
		if c.name != "bad request" && status != 200 {
			t.Errorf("%s: %d %v", c.name, status, body)
			continue
		}
		if got != c.want {
			t.Errorf("%s: shape\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// TestWireGoldenRendezvous pins the rendezvous relay's answers.
func TestWireGoldenRendezvous(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 50 * time.Millisecond })
	alice := e.master("alice")
	o := e.open(pairReq(), "")
	check := func(name string, status int, body map[string]any, want string) {
		t.Helper()
		if status != 200 {
			t.Fatalf("%s: %d %v", name, status, body)
		}
		if got := shape(body); got != want {
			t.Errorf("%s: shape\n got %s\nwant %s", name, got, want)
		}
	}
	status, b, _ := e.raw("POST", "/rendezvous/register", agentkeys.Token(o.AwaitToken), fmt.Sprintf(`{"daemon_pubkey":"AQID","pair_code":%q}`, o.PairCode))
	check("register", status, b, `{expires_at:0,registration_token:"s"}`)
	regTok := agentkeys.Token(b["registration_token"].(string))
	status, b, _ = e.raw("GET", "/rendezvous/poll", regTok, "")
	check("poll timeout", status, b, `{payload:null,status:"s"}`)
	if status, _ := e.approve(alice.Token, o.PairCode, o.OTP); status != 200 {
		t.Fatal("approve failed")
	}
	status, b, _ = e.raw("POST", "/rendezvous/deliver", alice.Token, fmt.Sprintf(`{"pair_code":%q,"payload":"AAEC/w=="}`, o.PairCode))
	check("deliver", status, b, `{ok:b}`)
	status, b, _ = e.raw("GET", "/rendezvous/poll", regTok, "")
	check("poll delivered", status, b, `{payload:"s",status:"s"}`)
}

// TestWireGoldenInbox pins the mock inbox's answers.
func TestWireGoldenInbox(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MockInbox = true })
	m := e.master("alice")
	a := e.agent(m, []string{}, false)
	status, b, _ := e.raw("POST", "/mock/inbox/provision", m.Token, `{"agent_id":"`+string(a.Wallet)+`"}`)
	if got := shape(b); status != 200 || got != `{address:"s",agent_wallet:"s"}` {
		t.Fatalf("provision: %d %s", status, got)
	}
	addr := b["address"].(string)
	status, b, _ = e.raw("POST", "/mock/inbox/deliver", "", fmt.Sprintf(`{"address":%q,"from":"x@y","subject":"s","body":"a\r\nb"}`, addr))
	if got := shape(b); status != 200 || got != `{msg_id:"s"}` {
		t.Fatalf("deliver: %d %s", status, got)
	}
	for path, want := range map[string]string{
		"/mock/inbox/list?agent_id=" + string(a.Wallet): `["s"]`,
		"/mock/inbox/messages?address=" + addr:          `[{body:"s",from:"s",msg_id:"s",received_at:0,subject:"s"}]`,
	} {
		req, _ := http.NewRequest("GET", e.http.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+m.Token.Reveal())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if got := shape(v); err != nil || resp.StatusCode != 200 || got != want {
			t.Errorf("%s: %d %s %v, want %s", path, resp.StatusCode, got, err, want)
		}
	}
}

// TestWireGoldenAuthRequest pins the pairing routes' answers, including
// the three forms of an approved await (session in clear, sealed, none).
func TestWireGoldenAuthRequest(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AwaitWindow = 50 * time.Millisecond })
	alice := e.master("alice")
	a := e.agent(alice, []string{"x"}, false)
	check := func(name string, status int, body map[string]any, want string) {
		t.Helper()
		if got := shape(body); status != 200 || got != want {
			t.Errorf("%s: %d shape\n got %s\nwant %s", name, status, got, want)
		}
	}
	_, b := e.openRaw(pairReq("x"), "")
	check("open", 200, b, `{await_token:"s",expires_at:0,id:"s",nonce_hash:"s",otp:"s",pair_code:"s",ttl_seconds:0}`)

	o := e.open(pairReq("x"), "")
	status, b := e.await(o)
	check("await timeout", status, b, `{decision:null,request_id:"s",status:"s"}`)
	status, b, _ = e.raw("GET", "/auth-request/fetch?pair_code="+o.PairCode, alice.Token, "")
	check("fetch pair", status, b, `{child_pubkey:"s",created_at:0,description:"s",expires_at:0,id:"s",otp_attempts_left:0,pair_code:"s",request_details:"s",request_type:"s",requested_scope:{read_only:b,services:["s"]},status:"s"}`)
	status, b = e.approve(alice.Token, o.PairCode, o.OTP)
	check("approve", status, b, `{approver_wallet:"s",created_at:0,key_id:"s",ok:b,request_id:"s",signature:"s",status:"s",wallet:"s"}`)
	status, b = e.await(o)
	check("await approved pair", status, b, `{approved:b,approver_wallet:"s",created_at:0,key_id:"s",request_id:"s",session:{expires_at:0,token:"s",wallet:"s"},signature:"s",status:"s",wallet:"s"}`)

	so := e.openSigned(pairReq("x"), true)
	e.approve(alice.Token, so.PairCode, so.OTP)
	status, b = e.await(so.opened)
	check("await approved sealed", status, b, `{approved:b,approver_wallet:"s",created_at:0,key_id:"s",request_id:"s",sealed_session:"s",signature:"s",status:"s",wallet:"s"}`)

	sc := e.open(authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(a.Wallet), NewScope: authreq.Scope{Services: []string{"x"}}}, "")
	status, b, _ = e.raw("GET", "/auth-request/fetch?pair_code="+sc.PairCode, alice.Token, "")
	check("fetch scope change", status, b, `{agent_id:"s",child_pubkey:"s",created_at:0,current_scope:{read_only:b,services:["s"]},description:"s",expires_at:0,id:"s",otp_attempts_left:0,pair_code:"s",request_details:"s",request_type:"s",requested_scope:{read_only:b,services:["s"]},status:"s"}`)
	e.approve(alice.Token, sc.PairCode, sc.OTP)
	status, b = e.await(sc)
	check("await approved scope change", status, b, `{approved:b,approver_wallet:"s",created_at:0,key_id:"s",request_id:"s",session:null,signature:"s",status:"s",wallet:"s"}`)

	d := e.open(pairReq("x"), "")
	status, b, _ = e.raw("POST", "/auth-request/deny", alice.Token, fmt.Sprintf(`{"pair_code":%q}`, d.PairCode))
	check("deny", status, b, `{ok:b,request_id:"s",status:"s"}`)
	status, b = e.await(d)
	check("await denied", status, b, `{approved:b,request_id:"s",status:"s"}`)
}

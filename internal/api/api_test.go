package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

const wallet = "0x00112233445566778899aabbccddeeff00112233"

// TestValidate pins the messages the backend answers 400 with.
func TestValidate(t *testing.T) {
	tok := "x"
	cases := []struct {
		req  Validator
		want string // "" means valid
	}{
		{CreateSessionRequest{}, "auth_token required"},
		{CreateSessionRequest{AuthToken: &tok}, ""},
		{CreateChildRequest{}, "scope required (an agent is always scoped"},
		{CreateChildRequest{Scope: &agentkeys.Scope{Services: []string{"a b"}}}, "scope: "},
		{CreateChildRequest{Scope: &agentkeys.Scope{Services: []string{}}}, ""},
		{RevokeRequest{}, "give exactly one of target_session or target_wallet"},
		{RevokeRequest{TargetSession: "s", TargetWallet: wallet}, "give exactly one"},
		{RevokeRequest{TargetWallet: wallet}, ""},
		{SetScopeRequest{Scope: &agentkeys.Scope{}}, "target_wallet required"},
		{SetScopeRequest{TargetWallet: "0x1"}, "target_wallet: invalid wallet address"},
		{SetScopeRequest{TargetWallet: wallet}, "scope required"},
		{StoreCredentialRequest{Service: "s", Ciphertext: "eA=="}, "agent_id required"},
		{StoreCredentialRequest{AgentID: wallet, Ciphertext: "eA=="}, "service required"},
		{StoreCredentialRequest{AgentID: wallet, Service: "s"}, "ciphertext required"},
		{StoreCredentialRequest{AgentID: wallet, Service: "s", Ciphertext: "eA=="}, ""},
		{TeardownRequest{}, "agent_id required"},
		{ReadCredentialsRequest{}, "give exactly one of agent_id or agent"},
		{ReadCredentialsRequest{AgentID: wallet, Agent: "bot"}, "give exactly one of agent_id or agent"},
		{ReadCredentialsRequest{AgentID: "0x1"}, "agent_id: invalid wallet address"},
		{ReadCredentialsRequest{Agent: "a b"}, "agent: "},
		{ReadCredentialsRequest{Agent: "bot"}, ""},
		{ReadCredentialsRequest{Agent: wallet, Services: []string{"s"}}, ""},
		{AuditProvisionRequest{AgentID: wallet, Service: "s", Result: "Bad"}, `result must be "ok" or an error code`},
		{AuditProvisionRequest{AgentID: wallet, Service: "s", Result: "ok", Detail: "a\x1bb"}, "detail must be at most 200 printable characters"},
		{AuditProvisionRequest{AgentID: wallet, Service: "s", Result: "login_failed", Detail: "step 2"}, ""},
		{AuditCachedReadRequest{}, "services must list 1 to 64 services"},
		{AuditCachedReadRequest{AgentID: "nope", Services: []string{"s"}}, "agent_id: invalid wallet address"},
		{AuditCachedReadRequest{Services: []string{""}}, "service required"},
		{AuditCachedReadRequest{Services: []string{"s"}}, ""},
		{AuditGatewayRequest{}, "calls must list 1 to 500 calls"},
		{AuditGatewayRequest{Calls: []GatewayCall{{Service: "s", Method: "GET", Path: "/v1?key=a b", Status: 200}}}, "calls[0]: path must start with / and be at most 200 printable characters"},
		{AuditGatewayRequest{Calls: []GatewayCall{{Service: "*", Method: "GET", Path: "/", Status: 421, Refused: "misdirected_request"}}}, ""},
		{LinkIdentityRequest{IdentityType: "wallet", IdentityValue: wallet}, `unknown identity_type "wallet": use alias, email or ens`},
		{LinkIdentityRequest{IdentityType: "alias", IdentityValue: "0xabc"}, "alias must not start with 0x"},
		{LinkIdentityRequest{IdentityType: "alias", IdentityValue: "bot", WalletAddress: "x"}, "wallet_address: invalid wallet address"},
		{LinkIdentityRequest{IdentityType: "alias", IdentityValue: "Bot"}, ""},
	}
	for _, c := range cases {
		err := c.req.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%T%+v: %v", c.req, c.req, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%T%+v: %v, want %q", c.req, c.req, err, c.want)
		}
	}
}

// TestRequestEncoding: what a client sends leaves optional fields out, as
// the clients did before the types were shared.
func TestRequestEncoding(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{BrokerTokenRequest{Audience: AudienceBroker}, `{"audience":"broker"}`},
		{BrokerTokenRequest{Audience: AudienceBroker, TTLSeconds: 60}, `{"audience":"broker","ttl_seconds":60}`},
		{CreateChildRequest{Scope: &agentkeys.Scope{Services: []string{}}}, `{"scope":{"services":[],"read_only":false}}`},
		{RevokeRequest{TargetWallet: wallet}, `{"target_wallet":"` + wallet + `"}`},
		{RevokeRequest{TargetSession: "t"}, `{"target_session":"t"}`},
		{LinkIdentityRequest{IdentityType: "alias", IdentityValue: "bot"}, `{"identity_type":"alias","identity_value":"bot"}`},
		{AuditCachedReadRequest{Services: []string{"s"}}, `{"agent_id":"","services":["s"]}`},
		{AuditGatewayRequest{Calls: []GatewayCall{{Service: "s", Method: "GET", Path: "/p", Status: 200, BytesIn: 1, BytesOut: 2, DurationMS: 3}}},
			`{"calls":[{"service":"s","method":"GET","path":"/p","status":200,"bytes_in":1,"bytes_out":2,"duration_ms":3}]}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%T: %s, %v; want %s", c.v, b, err, c.want)
		}
	}
}

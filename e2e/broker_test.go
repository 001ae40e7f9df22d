package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
)

func mint(t *testing.T, url string, tok agentkeys.Token) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("broker answered non-JSON %q", raw)
	}
	return resp.StatusCode, m
}

// TestBrokerMintsVerifiableJWTs is issue 3's end-to-end check: real
// agentkeys-backend and agentkeys-broker binaries on loopback; a session
// from the backend; a JWT from the broker; verified with go-oidc against
// the broker's own discovery document and JWKS.
func TestBrokerMintsVerifiableJWTs(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	c, master := loginMaster(t, s.backendURL, "e2e-master")
	agent := newAgent(t, ctx, c, master.Token, "aws")
	status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", agent.Token)
	if status != 200 || body["wallet"] != string(agent.Wallet) {
		t.Fatalf("mint → %d %v", status, body)
	}
	provider, err := oidc.NewProvider(ctx, s.brokerURL)
	if err != nil {
		t.Fatalf("discovery against the broker: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com"}).Verify(ctx, body["jwt"].(string))
	if err != nil {
		t.Fatalf("go-oidc refused the broker's JWT: %v", err)
	}
	var claims oidctest.Claims
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "agentkeys:agent:"+string(agent.Wallet) || claims.Wallet != string(agent.Wallet) || claims.Jti == "" ||
		len(claims.Tags.PrincipalTags["agentkeys_user_wallet"]) != 1 {
		t.Fatalf("claims: sub=%s %+v", idt.Subject, claims)
	}

	// An agent without "aws" in scope may not mint; a revoked one is
	// refused at once (the validation cache is off here).
	narrow := newAgent(t, ctx, c, master.Token, "openrouter")
	if status, _ := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", narrow.Token); status != 403 {
		t.Fatalf("agent without aws scope → %d, want 403", status)
	}
	if _, err := c.RevokeSession(ctx, master.Token, agent.Token); err != nil {
		t.Fatal(err)
	}
	if status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", agent.Token); status != 401 || body["error"] != "unauthorized" {
		t.Fatalf("revoked session → %d %v", status, body)
	}
	// No STS configured: AWS minting is off, and says so.
	if status, _ := mint(t, s.brokerURL+"/v1/mint-aws-creds", master.Token); status != 404 {
		t.Fatalf("mint-aws-creds without a role → %d", status)
	}

	// SIGTERM drains and exits 0; the audit chain verifies afterwards, and
	// no bearer token reached the broker's log.
	if err := s.broker.stop(t); err != nil {
		t.Fatalf("broker exit after SIGTERM: %v\n%s", err, s.broker.stderr)
	}
	logs := s.broker.stderr.String()
	for _, tok := range []agentkeys.Token{master.Token, agent.Token, narrow.Token} {
		if strings.Contains(logs, tok.Reveal()) {
			t.Fatal("a bearer token appears in the broker's log")
		}
	}
	if strings.Contains(logs, body["jwt"].(string)) {
		t.Fatal("a minted JWT appears in the broker's log")
	}
	cmd := exec.Command(bin["agentkeys-broker"], "audit", "verify", "--db", s.dir+"/broker/audit.sqlite")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out.String())
	}
	if err := s.backend.stop(t); err != nil {
		t.Fatalf("backend exit after SIGTERM: %v", err)
	}
}

// TestBrokerAcceptsBrokerTokens: real backend and broker binaries. A broker
// token derived from an agent's session mints as that agent, within its
// scope; it stops working the moment the session is revoked; and the
// broker still accepts a plain session bearer (clients that predate broker
// tokens send one).
func TestBrokerAcceptsBrokerTokens(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	c, master := loginMaster(t, s.backendURL, "e2e-broker-token-master")
	agent := newAgent(t, ctx, c, master.Token, "aws")
	bt, _, err := c.BrokerToken(ctx, agent.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", bt); status != 200 || body["wallet"] != string(agent.Wallet) {
		t.Fatalf("mint with a broker token → %d %v", status, body)
	}
	// Compatibility: a session bearer still mints.
	if status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", agent.Token); status != 200 || body["wallet"] != string(agent.Wallet) {
		t.Fatalf("mint with a session bearer → %d %v", status, body)
	}
	// The scope travels with the token.
	narrow := newAgent(t, ctx, c, master.Token, "openrouter")
	nbt, _, err := c.BrokerToken(ctx, narrow.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", nbt); status != 403 {
		t.Fatalf("broker token of an agent without aws → %d, want 403", status)
	}
	// Revoking the session (here through its parent) ends its tokens.
	if _, err := c.RevokeSession(ctx, master.Token, master.Token); err != nil {
		t.Fatal(err)
	}
	if status, body := mint(t, s.brokerURL+"/v1/mint-oidc-jwt", bt); status != 401 || body["error"] != "unauthorized" {
		t.Fatalf("broker token after revocation → %d %v", status, body)
	}
	if err := s.broker.stop(t); err != nil {
		t.Fatalf("broker exit after SIGTERM: %v", err)
	}
	logs := s.broker.stderr.String()
	if strings.Contains(logs, bt.Reveal()) || strings.Contains(logs, agent.Token.Reveal()) {
		t.Fatal("a bearer appears in the broker's log")
	}
}

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

// TestBrokerCredentialsEndWithTheSession drives the real backend and broker
// binaries (the broker minting AWS credentials against an in-process fake
// STS): agent sessions whose lifetime the backend set short get credentials
// that end with them, or none, and a read-only agent's credentials say
// agentkeys_access=read to both AWS and OIDC consumers.
func TestBrokerCredentialsEndWithTheSession(t *testing.T) {
	fake := ststest.New()
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	backendURL, _ := startBackend(t, dir, nil)
	brokerURL, _ := startBroker(t, backendURL, dir,
		"BROKER_VALIDATE_CACHE_SECONDS=0",
		"BROKER_DATA_ROLE_ARN=arn:aws:iam::000000000000:role/agentkeys-data-role",
		"BROKER_STS_ENDPOINT="+fake.URL,
		"DAEMON_ACCESS_KEY_ID=AKIAE2ELIFETIME00001",
		"DAEMON_SECRET_ACCESS_KEY="+agentkeys.NewToken().Reveal()[:40],
		"AWS_EC2_METADATA_DISABLED=true")

	ctx := context.Background()
	c, master := loginMaster(t, backendURL, "lifetime-master")
	aws := agentkeys.Scope{Services: []string{"aws"}}
	readOnly := agentkeys.Scope{Services: []string{"aws"}, ReadOnly: true}

	// A read-only agent whose session the backend ends in 20 minutes: AWS
	// credentials for what is left of it (not the configured hour), tagged
	// read; a JWT that says read.
	ro, err := c.CreateChild(ctx, master.Token, readOnly, 20*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	status, body := mint(t, brokerURL+"/v1/mint-aws-creds", ro.Token)
	if status != 200 {
		t.Fatalf("mint-aws-creds for a 20-minute session → %d %v", status, body)
	}
	calls := fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls", len(calls))
	}
	call := calls[0]
	if left := ro.ExpiresAt.Unix() - before.Unix(); int64(call.DurationSeconds) > left || call.DurationSeconds < 1100 {
		t.Fatalf("DurationSeconds = %d for a session that ends in %d s", call.DurationSeconds, left)
	}
	if call.Tags["agentkeys_access"] != "read" || !slices.Contains(call.TransitiveTagKeys, "agentkeys_access") || call.Tags["agentkeys_user_wallet"] != string(ro.Wallet) {
		t.Fatalf("session tags %v, transitive %v", call.Tags, call.TransitiveTagKeys)
	}
	if exp := int64(body["expiration"].(float64)); exp != fake.Issued()[0].Expiration.Unix() {
		t.Fatalf("response expiration %d is not what STS issued", exp)
	}
	status, body = mint(t, brokerURL+"/v1/mint-oidc-jwt", ro.Token)
	if status != 200 {
		t.Fatalf("mint-oidc-jwt → %d %v", status, body)
	}
	if cl := payloadClaims(t, body["jwt"].(string)); cl["agentkeys_access"] != "read" {
		t.Fatalf("read-only agent's JWT: agentkeys_access = %v", cl["agentkeys_access"])
	}

	// An agent whose session ends in 2 minutes: a JWT that expires with the
	// session, and no AWS credentials (STS cannot issue fewer than 900 s).
	short, err := c.CreateChild(ctx, master.Token, aws, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body = mint(t, brokerURL+"/v1/mint-oidc-jwt", short.Token)
	if status != 200 {
		t.Fatalf("mint-oidc-jwt for a 2-minute session → %d %v", status, body)
	}
	cl := payloadClaims(t, body["jwt"].(string))
	if exp := int64(cl["exp"].(float64)); exp != short.ExpiresAt.Unix() || int64(body["expiration"].(float64)) != exp {
		t.Fatalf("JWT exp %d, response expiration %v; the session ends at %d", exp, body["expiration"], short.ExpiresAt.Unix())
	}
	if cl["agentkeys_access"] != "write" {
		t.Fatalf("read-write agent's JWT: agentkeys_access = %v", cl["agentkeys_access"])
	}
	status, body = mint(t, brokerURL+"/v1/mint-aws-creds", short.Token)
	if msg, _ := body["message"].(string); status != 401 || body["error"] != "unauthorized" || !strings.Contains(msg, "session expires in") {
		t.Fatalf("mint-aws-creds for a 2-minute session → %d %v", status, body)
	}
	if n := len(fake.Calls()); n != 1 {
		t.Fatalf("STS was called for a session too short for any AWS credential (%d calls)", n)
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatalf("fake STS rejected requests: %v", p)
	}
}

// payloadClaims decodes a JWT's claims without verifying it (the go-oidc
// end-to-end test verifies the broker's tokens).
func payloadClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

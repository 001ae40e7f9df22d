package e2e

// Independent verification: the npm `jose` library, knowing only
// the issuer URL, fetches the broker's discovery document and JWKS and
// verifies its tokens. e2e/jose/node_modules comes from scripts/ci/npm-e2e.sh
// (npm ci); without it the test skips, unless AGENTKEYS_REQUIRE_E2E=1.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

type joseResult struct {
	OK      bool           `json:"ok"`
	KID     string         `json:"kid"`
	Alg     string         `json:"alg"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Claims  map[string]any `json:"claims"`
}

// joseVerify runs `node e2e/jose/verify.mjs ISSUER` with the JWT on stdin
// (never in argv) and returns its verdict and exit code.
func joseVerify(t *testing.T, node, issuer, token string) (joseResult, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("jose", "verify.mjs"), issuer)
	cmd.Stdin = strings.NewReader(token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code, ok := testkit.ExitCode(err)
	if !ok {
		t.Fatalf("node verify.mjs: %v\n%s", err, errb.String())
	}
	var r joseResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("verify.mjs printed no JSON (exit %d): %q %s", code, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), token) {
		t.Fatal("verify.mjs echoed the token")
	}
	return r, code
}

func TestJoseVerifiesBrokerJWT(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		e2eRequire(t, "node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join("jose", "node_modules", "jose", "package.json")); err != nil {
		e2eRequire(t, "e2e/jose/node_modules is missing; run scripts/ci/npm-e2e.sh")
	}
	s := startFedStack(t)
	ag := s.agents(t, context.Background(), "a")
	wallet := string(ag[0].Wallet)
	token := s.mintJWT(t, ag[0].Token)

	r, code := joseVerify(t, node, s.brokerURL, token)
	if code != 0 || !r.OK {
		t.Fatalf("jose refused the broker's JWT (exit %d): %s %s", code, r.Code, r.Message)
	}
	c := r.Claims
	tags, _ := c["https://aws.amazon.com/tags"].(map[string]any)
	principal, _ := tags["principal_tags"].(map[string]any)
	walletTag, _ := principal["agentkeys_user_wallet"].([]any)
	if r.Alg != "ES256" || r.KID != tokenKID(t, token) ||
		c["iss"] != s.brokerURL || c["aud"] != "sts.amazonaws.com" || c["sub"] != "agentkeys:agent:"+wallet ||
		c["agentkeys_user_wallet"] != wallet || c["jti"] == nil || c["nbf"] == nil || c["iat"] == nil ||
		len(walletTag) != 1 || walletTag[0] != wallet {
		t.Fatalf("verified claims: %+v", r)
	}
	exp, _ := c["exp"].(float64)
	iat, _ := c["iat"].(float64)
	if exp-iat != 300 {
		t.Fatalf("token lifetime %v s, want the default 300", exp-iat)
	}

	// Refusals: a tampered payload, a foreign key with the broker's kid, the
	// broker's key with another audience, an expired token.
	curKey, curKID := brokerKey(t, s.keyFile, "current")
	foreign, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	for name, tok := range map[string]string{
		"tampered":       tamper(t, token, "0x"+strings.Repeat("ab", 20)),
		"foreign key":    forgeJWT(t, foreign, curKID, forgeOpts{issuer: s.brokerURL, wallet: wallet, audience: fedAudience, iat: now, exp: now.Add(5 * time.Minute)}),
		"wrong audience": forgeJWT(t, curKey, curKID, forgeOpts{issuer: s.brokerURL, wallet: wallet, audience: "https://attacker.example", iat: now, exp: now.Add(5 * time.Minute)}),
		"expired":        forgeJWT(t, curKey, curKID, forgeOpts{issuer: s.brokerURL, wallet: wallet, audience: fedAudience, iat: now.Add(-10 * time.Minute), exp: now.Add(-5 * time.Minute)}),
	} {
		r, code := joseVerify(t, node, s.brokerURL, tok)
		want := map[string]string{"tampered": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", "foreign key": "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
			"wrong audience": "ERR_JWT_CLAIM_VALIDATION_FAILED", "expired": "ERR_JWT_EXPIRED"}[name]
		if code != 1 || r.OK || r.Code != want {
			t.Errorf("%s token: exit %d code %s, want exit 1 code %s", name, code, r.Code, want)
			continue
		}
		t.Logf("%s refused: %s %s", name, r.Code, r.Message)
	}
	// The same check against a forged issuer never reaches verification.
	if _, code := joseVerify(t, node, s.brokerURL+"/other", token); code != 2 {
		t.Errorf("verify.mjs with a wrong issuer URL exited %d, want 2", code)
	}
}

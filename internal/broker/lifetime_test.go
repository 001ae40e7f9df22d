package broker

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/oidc/oidctest"
)

// A credential never outlives the session it was minted for: the JWT's exp
// and the STS DurationSeconds are capped to what is left of the session, and
// a session with less left than the shortest credential (60 s for a JWT,
// STS's 900 s) is refused, audited, with a message that says why.
func TestMintNeverOutlivesTheSession(t *testing.T) {
	h := newHarness(t)
	ttl := int64(h.cfg.JWTTTL / time.Second)                 // 300
	configured := int64(h.cfg.SessionDuration / time.Second) // 3600
	for _, tc := range []struct {
		name         string
		left         time.Duration
		jwtRefused   bool
		jwtCapped    bool // exp is the session's end rather than iat+TTL
		awsRefused   bool
		awsCapped    bool // DurationSeconds is what is left rather than the configured hour
		wantMsgParts []string
	}{
		{name: "2 s left", left: 2 * time.Second, jwtRefused: true, awsRefused: true},
		{name: "2 min left", left: 2 * time.Minute, jwtCapped: true, awsRefused: true},
		{name: "10 min left", left: 10 * time.Minute, awsRefused: true},
		{name: "20 min left", left: 20 * time.Minute, awsCapped: true},
		{name: "30 days left", left: 30 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := time.Now().Add(tc.left).Truncate(time.Second)
			tok, wallet := h.backend.newSessionUntil("agent", &agentkeys.Scope{Services: []string{"aws"}}, end)

			// OIDC JWT.
			before := time.Now()
			rows := h.rows()
			r := h.mintJWT(tok)
			if h.rows() != rows+1 {
				t.Fatal("the mint attempt wrote no audit row")
			}
			row := h.lastRow()
			if tc.jwtRefused {
				r.wantErrorf(t, http.StatusUnauthorized, KindUnauthorized, "JWT mint for a session ending in %v", tc.left)
				msg := r.json(t)["message"].(string)
				if !strings.Contains(msg, "session expires in ") || !strings.Contains(msg, "at least 60 s") || !strings.Contains(msg, "log in again") {
					t.Errorf("refusal does not say why: %q", msg)
				}
				if row.Outcome != audit.OutcomeSessionExpiring || row.RequesterWallet != string(wallet) || !strings.Contains(row.Detail, "session expires in") || row.CredentialID != "" {
					t.Fatalf("audit row = %+v", row)
				}
			} else {
				if r.status != http.StatusOK {
					t.Fatalf("JWT mint: %d %s", r.status, r.body)
				}
				var got api.MintJWTResponse
				json.Unmarshal(r.body, &got)
				c := oidctest.DecodeClaims(t, got.JWT)
				want := min(c.Iat+ttl, end.Unix())
				if c.Exp != want || got.Expiration != c.Exp || c.Exp > end.Unix() {
					t.Fatalf("exp = %d, response expiration %d; want %d (iat %d, session end %d)", c.Exp, got.Expiration, want, c.Iat, end.Unix())
				}
				if capped := c.Exp == end.Unix() && c.Exp < c.Iat+ttl; capped != tc.jwtCapped {
					t.Errorf("JWT capped to the session end = %v, want %v", capped, tc.jwtCapped)
				}
				if c.Iat < before.Unix() || c.Iat > time.Now().Unix() {
					t.Errorf("iat %d outside the request", c.Iat)
				}
				if row.Outcome != audit.OutcomeOK || row.CredentialExpiresAt != c.Exp || row.CredentialID != c.Jti || row.DurationSeconds > c.Exp-before.Unix() {
					t.Fatalf("audit row = %+v (exp %d)", row, c.Exp)
				}
			}

			// AWS credentials.
			calls := len(h.sts.Calls())
			before = time.Now()
			r = h.mintAWS(tok)
			after := time.Now()
			row = h.lastRow()
			if tc.awsRefused {
				r.wantErrorf(t, http.StatusUnauthorized, KindUnauthorized, "AWS mint for a session ending in %v", tc.left)
				msg := r.json(t)["message"].(string)
				if !strings.Contains(msg, "session expires in ") || !strings.Contains(msg, "at least 900 s") || !strings.Contains(msg, "log in again") {
					t.Errorf("refusal does not say why: %q", msg)
				}
				if n := len(h.sts.Calls()); n != calls {
					t.Fatal("STS was called for a session that ends too soon")
				}
				if row.Outcome != audit.OutcomeSessionExpiring || row.RequesterWallet != string(wallet) || row.RequestedRole != testRoleARN || row.CredentialID != "" {
					t.Fatalf("audit row = %+v", row)
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("AWS mint: %d %s", r.status, r.body)
			}
			cs := h.sts.Calls()
			if len(cs) != calls+1 {
				t.Fatalf("STS calls %d → %d", calls, len(cs))
			}
			d := int64(cs[len(cs)-1].DurationSeconds)
			if tc.awsCapped {
				// Whole seconds left when the broker asked, never more.
				if d > end.Unix()-before.Unix() || d < end.Unix()-after.Unix()-1 {
					t.Fatalf("DurationSeconds = %d, session ends %d s after the request", d, end.Unix()-before.Unix())
				}
			} else if d != configured {
				t.Fatalf("DurationSeconds = %d, want the configured %d", d, configured)
			}
			var got api.MintAWSResponse
			json.Unmarshal(r.body, &got)
			issued := h.sts.Issued()
			exp := issued[len(issued)-1].Expiration.Unix()
			if got.Expiration != exp || row.CredentialExpiresAt != exp || row.DurationSeconds != d || row.Outcome != audit.OutcomeOK {
				t.Fatalf("response expiration %d, STS expiration %d, audit row %+v", got.Expiration, exp, row)
			}
		})
	}
}

// The original backend's /session/validate answers {"wallet","scope"} with
// the scope as a JSON *string* (or null) and no session expiry. The broker
// works against it: the string scope is read like an object (read_only
// included, and a scope without aws refuses AWS mints), and with no expiry
// to cap to, credentials get their configured lifetime.
func TestMintAgainstOriginalShapedBackend(t *testing.T) {
	h := newHarness(t)
	w := agentkeys.NewWallet()
	tok := agentkeys.NewToken().Reveal()
	answer := func(scope string) {
		h.backend.set(func(b *fakeBackend) {
			b.status = http.StatusOK
			b.body = `{"wallet":"` + string(w) + `","scope":` + scope + `}`
		})
	}

	answer(`"{\"services\":[\"aws\",\"openrouter\"],\"read_only\":true}"`)
	r := h.do("POST", PathMintJWT, tok, "")
	if r.status != http.StatusOK {
		t.Fatalf("JWT with a string scope: %d %s", r.status, r.body)
	}
	c := oidctest.DecodeClaims(t, r.json(t)["jwt"].(string))
	if c.Access != "read" || c.Wallet != string(w) {
		t.Fatalf("claims from a string scope: %+v", c)
	}
	if got, want := c.Exp-c.Iat, int64(h.cfg.JWTTTL/time.Second); got != want {
		t.Fatalf("lifetime without a stated session expiry: %d s, want the configured %d s", got, want)
	}
	if r := h.do("POST", PathMintAWS, tok, ""); r.status != http.StatusOK {
		t.Fatalf("AWS with a string scope holding aws: %d %s", r.status, r.body)
	}

	answer(`"{\"services\":[\"openrouter\"],\"read_only\":false}"`)
	if r := h.do("POST", PathMintAWS, tok, ""); r.status != http.StatusForbidden {
		t.Fatalf("AWS with a string scope without aws: %d %s", r.status, r.body)
	}

	answer(`null`)
	if r := h.do("POST", PathMintJWT, tok, ""); r.status != http.StatusOK || oidctest.DecodeClaims(t, r.json(t)["jwt"].(string)).Access != "write" {
		t.Fatalf("master (null scope): %d %s", r.status, r.body)
	}

	answer(`"not json"`)
	if r := h.do("POST", PathMintJWT, tok, ""); r.status != http.StatusBadGateway {
		t.Fatalf("malformed string scope: %d %s", r.status, r.body)
	}
}

// agentkeys_access reaches AWS and OIDC consumers: "read" for a read-only
// agent, "write" for a read-write agent and for a master, as a top-level
// claim, as a principal tag (an array, AWS's format) that is transitive,
// and as a transitive STS session tag.
func TestMintCarriesAccessLevel(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		kind  string
		scope *agentkeys.Scope
		want  string
	}{
		{"read-only agent", "agent", &agentkeys.Scope{Services: []string{"aws"}, ReadOnly: true}, "read"},
		{"read-write agent", "agent", &agentkeys.Scope{Services: []string{"aws"}}, "write"},
		{"master", "master", nil, "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, wallet := h.backend.newSession(tc.kind, tc.scope)
			r := h.mintJWT(tok)
			if r.status != http.StatusOK {
				t.Fatalf("JWT mint: %d %s", r.status, r.body)
			}
			var got api.MintJWTResponse
			json.Unmarshal(r.body, &got)
			c := oidctest.DecodeClaims(t, got.JWT)
			if c.Wallet != string(wallet) || c.Access != tc.want {
				t.Errorf("agentkeys_access claim = %q, want %q", c.Access, tc.want)
			}
			if pt := c.Tags.PrincipalTags["agentkeys_access"]; len(pt) != 1 || pt[0] != tc.want {
				t.Errorf("principal_tags = %v", c.Tags.PrincipalTags)
			}
			if !slices.Contains(c.Tags.TransitiveTagKeys, "agentkeys_access") || !slices.Contains(c.Tags.TransitiveTagKeys, "agentkeys_user_wallet") {
				t.Errorf("transitive_tag_keys = %v", c.Tags.TransitiveTagKeys)
			}

			r = h.mintAWS(tok)
			if r.status != http.StatusOK {
				t.Fatalf("AWS mint: %d %s", r.status, r.body)
			}
			cs := h.sts.Calls()
			call := cs[len(cs)-1]
			if call.Tags["agentkeys_access"] != tc.want || call.Tags["agentkeys_user_wallet"] != string(wallet) {
				t.Errorf("session tags = %v", call.Tags)
			}
			if !slices.Contains(call.TransitiveTagKeys, "agentkeys_access") {
				t.Errorf("transitive tag keys = %v", call.TransitiveTagKeys)
			}
			if p := h.sts.Problems(); len(p) > 0 {
				t.Fatalf("fake STS rejected: %v", p)
			}
		})
	}
}

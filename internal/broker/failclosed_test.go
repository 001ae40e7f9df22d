package broker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/sts"
)

// failingSink refuses every write, like a full disk or a lost database.
type failingSink struct{ err error }

func (s *failingSink) Append(context.Context, audit.Record) error { return s.err }
func (s *failingSink) Verify(context.Context) (audit.VerifyReport, error) {
	return audit.VerifyReport{}, s.err
}
func (s *failingSink) Ping(context.Context) error { return s.err }
func (s *failingSink) Close() error               { return nil }

// hangingSink never answers an Append (it even ignores the context) until
// released.
type hangingSink struct{ release chan struct{} }

func (s *hangingSink) Append(context.Context, audit.Record) error { <-s.release; return nil }
func (s *hangingSink) Verify(context.Context) (audit.VerifyReport, error) {
	return audit.VerifyReport{}, nil
}
func (s *hangingSink) Ping(context.Context) error { return nil }
func (s *hangingSink) Close() error               { return nil }

func TestFailingAuditSinkReleasesNothing(t *testing.T) {
	h := newHarness(t, withSink(&failingSink{err: errors.New("database is locked")}))
	tok, _ := h.backend.newSession("master", nil)

	r := h.mintJWT(tok)
	r.wantErrorf(t, http.StatusInternalServerError, KindAuditError, "JWT mint with a failing ledger")
	if strings.Contains(string(r.body), "eyJ") || strings.Contains(string(r.body), "database is locked") {
		t.Fatalf("body leaks a token or the sink error: %s", r.body)
	}

	r = h.mintAWS(tok)
	r.wantErrorf(t, http.StatusInternalServerError, KindAuditError, "AWS mint with a failing ledger")
	// The attempt could not be recorded, so STS was never asked: no
	// credentials exist that the ledger does not know about.
	if issued := h.sts.Issued(); len(issued) != 0 {
		t.Fatalf("STS issued %d credentials although the ledger could not record the attempt", len(issued))
	}
	// Failure paths fail closed too: nothing is answered unaudited.
	h.mintJWT(agentkeys.NewToken().Reveal()).wantErrorf(t, http.StatusInternalServerError, KindAuditError, "unaudited auth failure")
	if !strings.Contains(h.logs.String(), "audit write failed") {
		t.Fatal("audit failure not logged")
	}
}

// staticValidator knows one session, without a network.
type staticValidator struct {
	token string
	id    Identity
}

func (v staticValidator) Validate(_ context.Context, token string) (Identity, error) {
	if token != v.token {
		return Identity{}, &UnauthorizedError{Reason: "session not found"}
	}
	return v.id, nil
}

// memoryAWS issues fake credentials without a network.
type memoryAWS struct{ creds sts.Credentials }

func (m memoryAWS) AssumeRole(context.Context, sts.AssumeRequest) (sts.Credentials, error) {
	return m.creds, nil
}
func (m memoryAWS) CallerIdentity(context.Context) (sts.Identity, error) { return sts.Identity{}, nil }

func TestHangingAuditSinkTimesOutWithoutCredential(t *testing.T) {
	dir := t.TempDir()
	cfg := Defaults()
	cfg.Issuer = "https://oidc.test.invalid"
	cfg.KeyFile = filepath.Join(dir, "keys.json")
	cfg.AuditDB = filepath.Join(dir, "audit.sqlite")
	cfg.DataRoleARN = testRoleARN
	cfg.RatePerBearer, cfg.RatePerIP = 0, 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	issuer, err := oidc.NewIssuer(oidc.Config{Issuer: cfg.Issuer, TTL: cfg.JWTTTL, KeyFile: cfg.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	tok := agentkeys.NewToken().Reveal()
	secret := agentkeys.NewToken().Reveal()
	creds := sts.Credentials{AccessKeyID: "ASIAMEMORY", SecretAccessKey: secret, SessionToken: secret + "-session", Expiration: time.Now().Add(time.Hour)}

	for _, path := range []string{PathMintJWT, PathMintAWS} {
		t.Run(path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sink := &hangingSink{release: make(chan struct{})}
				// Released however f ends: a failure then reports as one
				// instead of a bubble deadlock panic that aborts the binary.
				defer close(sink.release)
				srv := NewServer(cfg, Deps{
					Validator: staticValidator{token: tok, id: Identity{Wallet: agentkeys.NewWallet(), Kind: "master", ExpiresAt: time.Now().Add(24 * time.Hour)}},
					Issuer:    issuer, AWS: memoryAWS{creds: creds}, Audit: sink,
				})
				req := httptest.NewRequest(http.MethodPost, path, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				start := time.Now()
				srv.ServeHTTP(rec, req)
				elapsed := time.Since(start)
				if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"audit_error"`) {
					t.Fatalf("hanging ledger: %d %s", rec.Code, rec.Body)
				}
				if elapsed != cfg.AuditTimeout {
					t.Fatalf("answered after %v, want exactly the audit deadline %v", elapsed, cfg.AuditTimeout)
				}
				body := rec.Body.String()
				if strings.Contains(body, secret) || strings.Contains(body, "eyJ") || strings.Contains(body, "ASIAMEMORY") {
					t.Fatalf("credential left the broker: %s", body)
				}
			})
		})
	}
}

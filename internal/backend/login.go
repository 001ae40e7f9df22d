package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// LoginVerifier turns a master's identity assertion (the auth_token of
// POST /session/create) into a stable identity key. Only its SHA-256 is
// stored, as the wallet's login hash.
type LoginVerifier interface {
	Verify(ctx context.Context, assertion string) (identity string, err error)
}

// errBadAssertion is what a verifier returns for an assertion it refuses;
// the client sees 401 "invalid auth token".
var errBadAssertion = errors.New("invalid auth token")

// MockLogin trusts the assertion, as the original's mock did: any non-empty
// string names an identity, so whoever can reach the backend can log in as
// any master. Only `agentkeys dev` and tests select it (--login mock); it is
// never a default.
type MockLogin struct{}

// Verify accepts any assertion but "" and "invalid".
func (MockLogin) Verify(_ context.Context, a string) (string, error) {
	if a == "" || a == "invalid" || len(a) > 4096 {
		return "", errBadAssertion
	}
	return "mock\x00" + a, nil
}

// OIDCLogin accepts only ID tokens from one OpenID provider for one client
// id, and keys the master on the token's issuer and subject.
type OIDCLogin struct {
	verifier *oidc.IDTokenVerifier
	issuer   string
}

// NewOIDCLogin discovers the provider at issuer. It fails when the
// provider cannot be reached, so a misconfigured backend does not start.
func NewOIDCLogin(ctx context.Context, issuer, clientID string) (*OIDCLogin, error) {
	if clientID == "" {
		return nil, errors.New("--login-oidc-client-id is required with --login-oidc-issuer")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("discover login OIDC provider %s: %w", issuer, err)
	}
	return &OIDCLogin{verifier: p.Verifier(&oidc.Config{ClientID: clientID}), issuer: issuer}, nil
}

// Verify checks signature, issuer, audience and expiry of an ID token.
func (o *OIDCLogin) Verify(ctx context.Context, token string) (string, error) {
	if token == "" || len(token) > 16<<10 {
		return "", errBadAssertion
	}
	idt, err := o.verifier.Verify(ctx, token)
	if err != nil || idt.Subject == "" {
		return "", errBadAssertion
	}
	return "oidc\x00" + idt.Issuer + "\x00" + idt.Subject, nil
}

func loginHash(identity string) string {
	return string(agentkeys.HashSecret("agentkeys-login\x00" + identity))
}

package daemon

import (
	"context"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/provision"
)

// Requests the agent's scope cannot satisfy are refused before any
// browser starts (the scraper command here would fail loudly if run).
func TestProvisionerRefusesBeforeSigningUp(t *testing.T) {
	never := provision.Command{Path: "/nonexistent/scraper"}
	for _, c := range []struct {
		scope   *agentkeys.Scope
		service string
		code    string
	}{
		{&agentkeys.Scope{Services: []string{"openrouter"}, ReadOnly: true}, "openrouter", CodeDenied},
		{&agentkeys.Scope{Services: []string{"openai"}}, "openrouter", CodeDenied},
		{nil, "geocities", CodeServiceNotSupported},
	} {
		p, err := NewProvisioner(ProvisionConfig{Scraper: never, StateDir: t.TempDir()}, nil, nil,
			Session{Token: agentkeys.NewToken(), Wallet: agentkeys.NewWallet(), Scope: c.scope}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Provision(context.Background(), c.service, false, nil); CodeOf(err) != c.code {
			t.Errorf("scope %+v, service %s: err = %v, want %s", c.scope, c.service, err, c.code)
		}
	}
}

package provision

import (
	"context"
	"errors"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// ClientBackend is the Backend of a real agentkeys backend, acting with
// session tok on agent (the master CLI passes its own session and the
// agent's wallet; the daemon its agent session and own wallet).
type ClientBackend struct {
	Client *backendclient.Client
	Token  agentkeys.Token
	Agent  agentkeys.Wallet
}

// ReadCredential implements Backend.
func (b ClientBackend) ReadCredential(ctx context.Context, service string) ([]byte, bool, error) {
	v, err := b.Client.ReadCredential(ctx, b.Token, b.Agent, service)
	if errors.Is(err, backendclient.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// StoreCredential implements Backend.
func (b ClientBackend) StoreCredential(ctx context.Context, service string, v []byte) error {
	return b.Client.StoreCredential(ctx, b.Token, b.Agent, service, v)
}

// AuditProvision implements Backend.
func (b ClientBackend) AuditProvision(ctx context.Context, service, result, detail string) error {
	return b.Client.AuditProvision(ctx, b.Token, b.Agent, service, result, detail)
}

// ProvisionInbox implements Backend.
func (b ClientBackend) ProvisionInbox(ctx context.Context) (string, error) {
	return b.Client.ProvisionInbox(ctx, b.Token, b.Agent)
}

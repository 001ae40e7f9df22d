package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// sessionGrants are the audit actions that give a wallet a new session:
// after one of them, an earlier revoke no longer describes the agent.
var sessionGrants = map[string]bool{
	agentkeys.ActionSessionCreate: true,
	agentkeys.ActionChildCreate:   true,
	"pair_approve":                true,
	"recover_approve":             true,
	"auth_request_delivered":      true,
	"rendezvous_deliver":          true,
}

// refuseRevoked fails when the agent's newest audit record about its
// sessions is a revoke: `run` then refuses rather than hand a revoked
// agent's credentials to a command.
func (a *App) refuseRevoked(ctx context.Context, m *Master, ref agentRef) error {
	if ref.Wallet == m.Session.Wallet {
		return nil
	}
	page, err := m.Client.QueryAudit(ctx, m.Session.Token, backendclient.AuditFilter{
		Agent: ref.Wallet, Action: agentkeys.ActionRevoke, Result: agentkeys.ResultOK, Limit: 1,
	})
	if err != nil || len(page.Events) == 0 {
		return err
	}
	rev := page.Events[0]
	since := time.Unix(rev.Timestamp, 0)
	later, err := m.Client.QueryAudit(ctx, m.Session.Token, backendclient.AuditFilter{
		Agent: ref.Wallet, Result: agentkeys.ResultOK, Since: since, Limit: 200,
	})
	if err != nil {
		return err
	}
	for _, e := range later.Events {
		if e.ID > rev.ID && sessionGrants[e.Action] {
			return nil
		}
	}
	return withHint(fmt.Errorf("agent %s was revoked at %s; refusing to run a command with its credentials", ref, since.UTC().Format(time.RFC3339)),
		"its credentials are still stored: give the work to a new agent (`agentkeys agent create`), or delete them with `agentkeys teardown %s`", ref.Wallet)
}

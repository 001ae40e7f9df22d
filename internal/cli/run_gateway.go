package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/gateway"
	"github.com/agentkeys/agentkeys/internal/keychain"
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

// agentRevoked reports whether the agent's newest audit record about its
// sessions is a revoke, and when it was (what `run --gateway` polls
// without the agent's own session to watch).
func agentRevoked(ctx context.Context, m *Master, ref agentRef) (time.Time, bool, error) {
	if ref.Wallet == m.Session.Wallet {
		return time.Time{}, false, nil
	}
	page, err := m.Client.QueryAudit(ctx, m.Session.Token, backendclient.AuditFilter{
		Agent: ref.Wallet, Action: agentkeys.ActionRevoke, Result: agentkeys.ResultOK, Limit: 1,
	})
	if err != nil || len(page.Events) == 0 {
		return time.Time{}, false, err
	}
	rev := page.Events[0]
	since := time.Unix(rev.Timestamp, 0)
	later, err := m.Client.QueryAudit(ctx, m.Session.Token, backendclient.AuditFilter{
		Agent: ref.Wallet, Result: agentkeys.ResultOK, Since: since, Limit: 200,
	})
	if err != nil {
		return time.Time{}, false, err
	}
	for _, e := range later.Events {
		if e.ID > rev.ID && sessionGrants[e.Action] {
			return time.Time{}, false, nil
		}
	}
	return since, true, nil
}

// gatewayPoll is how often `run --gateway` checks that the agent was not
// revoked when it has no agent session to watch.
const gatewayPoll = time.Second

// gatewayRunEnv serves a gateway on 127.0.0.1 for the agent for the
// command's lifetime and returns the variables that point SDKs at it
// (<SERVICE>_BASE_URL, a placeholder <SERVICE>_API_KEY) for the services
// in the agent's scope. Credentials are read with the master's session
// and never leave this process; calls are audited for the agent. The
// gateway stops serving (open streams included) once the agent is
// revoked: watched through the agent's own session when sessionFile is
// given, else checked every second. stop ends it.
func (a *App) gatewayRunEnv(ctx context.Context, m *Master, ref agentRef, sessionFile string) (env []string, stop func(), err error) {
	scope, err := m.Client.GetScope(ctx, m.Session.Token, ref.Wallet)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	list, err := gateway.ServicesFromEnv(nil, nil, log)
	if err != nil {
		return nil, nil, err
	}
	gctx, cancel := context.WithCancel(context.Background())
	revoked := make(chan struct{})
	g, err := gateway.NewAudited(gctx, gateway.Options{
		Services: list,
		Scope:    scope,
		Source: gateway.SourceFunc(func(ctx context.Context, service string) ([]byte, error) {
			return m.Client.ReadCredential(ctx, m.Session.Token, ref.Wallet, service)
		}),
		Revoked: revoked,
		Log:     log,
	}, m.Client, m.Session.Token, ref.Wallet)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	ln, err := gateway.Listen("127.0.0.1:0")
	if err != nil {
		cancel()
		g.Shutdown()
		return nil, nil, err
	}
	go gateway.Serve(gctx, g, ln, log)
	watch, err := a.agentRevocation(m, ref, sessionFile)
	if err != nil {
		cancel()
		g.Shutdown()
		return nil, nil, err
	}
	go func() {
		if watch(gctx) {
			close(revoked)
		}
	}()
	names := g.Services()
	a.notef("gateway for %s at %s", displayList(names), gateway.BaseURL(ln))
	return gateway.Env(gateway.BaseURL(ln), list, names), func() {
		cancel()
		g.Shutdown()
	}, nil
}

// agentRevocation returns a function that blocks until the agent is
// revoked (true) or ctx ends (false).
func (a *App) agentRevocation(m *Master, ref agentRef, sessionFile string) (func(ctx context.Context) bool, error) {
	if sessionFile != "" {
		ks, err := keychain.ReadSessionFile(sessionFile)
		if err != nil {
			return nil, fmt.Errorf("--session-file: %w", err)
		}
		if ks.Wallet != ref.Wallet {
			return nil, fmt.Errorf("--session-file holds the session of %s, not of %s", ks.Wallet, ref.Wallet)
		}
		return func(ctx context.Context) bool {
			for ctx.Err() == nil {
				wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
				_, err := m.Client.WatchSession(wctx, ks.Token)
				cancel()
				if errors.Is(err, backendclient.ErrUnauthorized) || errors.Is(err, backendclient.ErrExpired) {
					return true
				}
				if err != nil && !sleepFor(ctx, gatewayPoll) {
					return false
				}
			}
			return false
		}, nil
	}
	return func(ctx context.Context) bool {
		for sleepFor(ctx, gatewayPoll) {
			if _, revoked, err := agentRevoked(ctx, m, ref); err == nil && revoked {
				return true
			}
		}
		return false
	}, nil
}

func sleepFor(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

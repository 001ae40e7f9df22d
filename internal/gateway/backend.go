package gateway

import (
	"context"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// APICall is c as POST /audit/gateway carries it.
func (c Call) APICall() api.GatewayCall {
	return api.GatewayCall{Service: c.Service, Method: c.Method, Path: c.Path, Status: c.Status,
		BytesIn: c.BytesIn, BytesOut: c.BytesOut, DurationMS: c.Duration.Milliseconds(), Refused: c.Refused}
}

// NewAudited returns a gateway whose calls are audited at the backend:
// batches sent with tok for agent ("" = tok's own wallet) until ctx ends
// or Shutdown. o.Audit is replaced.
func NewAudited(ctx context.Context, o Options, c *backendclient.Client, tok agentkeys.Token, agent agentkeys.Wallet) (*Gateway, error) {
	b := NewBatcher(BatcherOptions{Log: o.Log, Send: func(ctx context.Context, calls []Call) error {
		out := make([]api.GatewayCall, len(calls))
		for i, c := range calls {
			out[i] = c.APICall()
		}
		return c.AuditGateway(ctx, tok, agent, out)
	}})
	o.Audit = b
	g, err := New(o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	g.stopAudit = func() {
		cancel()
		<-done
	}
	return g, nil
}

// Shutdown closes the gateway and sends the audit records left (for at
// most AuditWait).
func (g *Gateway) Shutdown() {
	g.Close()
	if g.stopAudit != nil {
		g.stopAudit()
	}
}

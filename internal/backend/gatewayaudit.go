package backend

import (
	"net/http"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/clientip"
)

// gatewayAuditBody bounds POST /audit/gateway (MaxGatewayCalls records).
const gatewayAuditBody = 256 << 10

// auditGateway stores a batch of the calls a gateway forwarded (or
// refused) for an agent: the caller's daemon for itself, or a master's
// `agentkeys run --gateway` for an agent it owns (agent_id). One "http"
// row per call, owner the caller, agent the agent, result "ok" or the refusal, detail "METHOD PATH
// status=… in=… out=… ms=…". The batch is written whole or not at all, so
// the daemon can resend it after an error without losing or doubling a
// row it was told was stored.
func (s *Server) auditGateway(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.AuditGatewayRequest
	if err := decode(r, &req, gatewayAuditBody); err != nil {
		return nil, err
	}
	addr, err := agentOrSelf(c, req.AgentID)
	if err != nil {
		return nil, err
	}
	if _, err := s.ownedTarget(ctx, c, addr, agentkeys.AuditWildcard, agentkeys.ActionHTTP); err != nil {
		return nil, err
	}
	now, ip := s.now(), clientip.FromContext(ctx)
	rows := make([]agentkeys.AuditEvent, len(req.Calls))
	for i, call := range req.Calls {
		result := agentkeys.ResultOK
		if call.Refused != "" {
			result = call.Refused
		}
		rows[i] = agentkeys.AuditEvent{Time: now, Owner: c.addr(), Agent: addr, Service: call.Service,
			Action: agentkeys.ActionHTTP, Result: result, Detail: call.Detail(), ClientIP: ip}
	}
	if err := s.store.AppendAudits(ctx, rows); err != nil {
		return nil, err
	}
	return api.OK{OK: true}, nil
}

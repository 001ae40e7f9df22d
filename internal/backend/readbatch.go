package backend

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/store"
)

// readCredentials answers POST /credential/read-batch: in one round trip,
// the agent's effective scope and every credential it holds within that
// scope plus the services named (what `agentkeys run` injects). Every
// value returned is audited as a read, and the listing as a list, in one
// transaction that commits before any value leaves. A named service outside
// the scope is refused (403, audited) and one not held is 404, as for a
// single read. The agent is a wallet (agent_id) or any <agent> argument
// (agent), resolved as GET /agent/resolve does: 404 outside the caller's
// tree. An agent whose newest session record is a revoke gets its
// revocation time and no values.
func (s *Server) readCredentials(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.ReadCredentialsRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	var (
		addr     agentkeys.Wallet
		resolved *api.AgentResolveResponse
	)
	if req.Agent != "" {
		res, err := s.resolveAgent(ctx, s.store, c, req.Agent)
		if err != nil {
			return nil, err
		}
		addr, resolved = res.Wallet, &res
	} else {
		w, err := parseWalletField("agent_id", req.AgentID) // Validate checked it
		if err != nil {
			return nil, err
		}
		addr = w
	}
	tw, err := s.ownedTarget(ctx, c, addr, agentkeys.AuditWildcard, agentkeys.ActionRead)
	if err != nil {
		return nil, err
	}
	if tw.TornDown {
		s.auditDenial(ctx, c.addr(), addr, agentkeys.AuditWildcard, agentkeys.ActionRead, agentkeys.ResultNotFound)
		return nil, notFound("agent %s was torn down", addr)
	}
	scope := c.scope
	if addr != c.addr() {
		lineage, err := s.store.Lineage(ctx, addr)
		if err != nil {
			return nil, err
		}
		scope = effectiveScope(lineage)
	}
	// What the caller may read is what both its scope and the agent's allow.
	for _, svc := range req.Services {
		if !scope.Allows(svc) || !c.scope.Allows(svc) {
			s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultDeniedScope)
			return nil, denied("service %s is outside the scope of agent %s", svc, addr)
		}
	}
	resp := api.ReadCredentialsResponse{Agent: resolved, Scope: newScopeResponse(addr, scope), Credentials: []api.Credential{}}
	if addr != c.addr() {
		at, err := s.revokedAt(ctx, c.addr(), addr)
		if err != nil {
			return nil, err
		}
		if !at.IsZero() {
			resp.RevokedAt = at.Unix()
			return resp, nil
		}
	}
	creds, err := s.store.Credentials(ctx, addr)
	if err != nil {
		return nil, err
	}
	var want []store.Credential
	for _, cr := range creds {
		if (scope.Allows(cr.Service) && c.scope.Allows(cr.Service)) || slices.Contains(req.Services, cr.Service) {
			want = append(want, cr)
		}
	}
	for _, svc := range req.Services {
		if !slices.ContainsFunc(want, func(cr store.Credential) bool { return cr.Service == svc }) {
			s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultNotFound)
			return nil, notFound("credential not found for agent=%s service=%s", addr, svc)
		}
	}
	values := make([][]byte, len(want))
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	for i, cr := range want {
		if values[i], err = s.sealer.Open(cr.Sealed, credentialAAD(addr, cr.Service)); err != nil {
			s.log.ErrorContext(ctx, "stored credential failed to open; wrong seal key or tampered row", "wallet", addr, "service", cr.Service)
			return nil, jsonhttp.Errorf(http.StatusInternalServerError, KindInternal, "stored credential cannot be opened")
		}
	}
	err = s.store.Tx(ctx, func(q store.Queries) error {
		if err := s.audit(ctx, q, c.addr(), addr, agentkeys.AuditWildcard, agentkeys.ActionList, agentkeys.ResultOK); err != nil {
			return err
		}
		for _, cr := range want {
			if err := s.audit(ctx, q, c.addr(), addr, cr.Service, agentkeys.ActionRead, agentkeys.ResultOK); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, cr := range want {
		resp.Credentials = append(resp.Credentials, api.Credential{Service: cr.Service, Ciphertext: base64.StdEncoding.EncodeToString(values[i])})
	}
	return resp, nil
}

// revokedAt returns when agent's sessions were revoked if no session was
// granted to it since, and the zero time otherwise; it reads the audit
// rows viewer may see.
func (s *Server) revokedAt(ctx context.Context, viewer, agent agentkeys.Wallet) (time.Time, error) {
	revs, err := s.store.QueryAudit(ctx, store.AuditQuery{Viewer: viewer, Agent: agent, Action: agentkeys.ActionRevoke, Result: agentkeys.ResultOK, Limit: 1})
	if err != nil || len(revs) == 0 {
		return time.Time{}, err
	}
	rev := revs[0]
	later, err := s.store.QueryAudit(ctx, store.AuditQuery{Viewer: viewer, Agent: agent, Result: agentkeys.ResultOK, Since: rev.Time.Truncate(time.Second), Limit: 200})
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range later {
		if e.ID > rev.ID && agentkeys.SessionGrants[e.Action] {
			return time.Time{}, nil
		}
	}
	return rev.Time, nil
}

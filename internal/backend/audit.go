package backend

import (
	"net/http"
	"strconv"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/store"
)

// queryAudit returns the audit rows visible to the caller: rows where the
// actor or the target is the caller's wallet or one of its descendants.
// Filters: owner, agent, service, action, result, since, until (RFC 3339
// or unix seconds), limit (1–1000, default 100), cursor (from next_cursor).
func (s *Server) queryAudit(r *http.Request, c *caller) (any, error) {
	qs := r.URL.Query()
	q := store.AuditQuery{Viewer: c.addr(), Service: qs.Get("service"), Action: qs.Get("action"), Result: qs.Get("result")}
	var err error
	if v := qs.Get("owner"); v != "" {
		if q.Owner, err = parseWalletField("owner", v); err != nil {
			return nil, err
		}
	}
	if v := qs.Get("agent"); v != "" {
		if q.Agent, err = parseWalletField("agent", v); err != nil {
			return nil, err
		}
	}
	if q.Since, err = parseTimeParam("since", qs.Get("since")); err != nil {
		return nil, err
	}
	if q.Until, err = parseTimeParam("until", qs.Get("until")); err != nil {
		return nil, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return nil, badRequest("since must be before until")
	}
	q.Limit = store.DefaultAuditLimit
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			return nil, badRequest("limit must be an integer from 1 to %d", store.MaxAuditLimit)
		}
		q.Limit = n
	}
	if v := qs.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, badRequest("cursor is not one this server issued")
		}
		q.BeforeID = n
	}
	events, err := s.store.QueryAudit(r.Context(), q)
	if err != nil {
		return nil, err
	}
	out := make([]api.AuditEvent, len(events))
	for i, e := range events {
		out[i] = api.AuditEvent{
			ID: e.ID, Owner: e.Owner, Agent: e.Agent, Service: e.Service, Action: e.Action, Result: e.Result,
			Timestamp: e.Time.Unix(), Time: e.Time.UTC().Format(time.RFC3339Nano), Detail: e.Detail,
			ClientIP: e.ClientIP,
		}
	}
	next := ""
	if len(events) == q.Limit {
		next = strconv.FormatInt(events[len(events)-1].ID, 10)
	}
	return api.AuditPage{Events: out, NextCursor: next}, nil
}

func parseTimeParam(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return time.Time{}, badRequest("%s must not be negative", name)
		}
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest("%s must be RFC 3339 (2026-01-02T15:04:05Z) or unix seconds", name)
	}
	return t, nil
}

// auditProvision records the outcome of a provisioner run for an agent
// the caller owns (the store itself is audited separately, as "store").
// Detail is short printable text (step, tripwire kind); the caller must
// not put secrets in it.
func (s *Server) auditProvision(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.AuditProvisionRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	addr, err := parseWalletField("agent_id", req.AgentID) // Validate checked it
	if err != nil {
		return nil, err
	}
	svc := req.Service
	if _, err := s.ownedTarget(ctx, c, addr, svc, agentkeys.ActionProvision); err != nil {
		return nil, err
	}
	if !c.scope.Allows(svc) {
		s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionProvision, agentkeys.ResultDeniedScope)
		return nil, denied("session scope does not include service %s", svc)
	}
	_, err = s.store.AppendAudit(ctx, agentkeys.AuditEvent{
		Time: s.now(), Owner: c.addr(), Agent: addr, Service: svc, Action: agentkeys.ActionProvision,
		Result: req.Result, Detail: req.Detail, ClientIP: clientip.FromContext(ctx),
	})
	if err != nil {
		return nil, err
	}
	return api.OK{OK: true}, nil
}

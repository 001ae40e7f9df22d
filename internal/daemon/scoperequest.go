package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// Scope requests: an agent that needs a service outside its scope asks its
// master for it. The daemon opens a ScopeChange auth request with the
// agent's own session (so the backend binds it to the agent's master, who
// sees it in `agentkeys pending`) for the current scope plus the services
// asked for, and hands back the pair code and OTP to show the human, who
// approves with `agentkeys approve CODE --otp OTP`. The daemon awaits the
// decision in the background (its signature is verified like a pairing's);
// the backend enforces the new scope from the moment it is approved.

// Scope request states.
const (
	ScopePending  = "pending"
	ScopeApproved = "approved"
	ScopeDenied   = "denied"
	ScopeLocked   = "locked"
	ScopeExpired  = "expired"
	ScopeFailed   = "failed"
)

// ScopeRequest is an open request for more scope. OTP is shown to the
// human, who types it into `agentkeys approve`.
type ScopeRequest struct {
	RequestID string   `json:"request_id"`
	PairCode  string   `json:"pair_code"`
	OTP       string   `json:"otp"`
	ExpiresAt string   `json:"expires_at"`
	Services  []string `json:"services"` // the whole scope asked for
	Added     []string `json:"added"`
	ReadOnly  bool     `json:"read_only"`
	Approve   string   `json:"approve"` // the master's command
}

type scopeReq struct {
	status string
	done   chan struct{}
}

// RequestScope asks the agent's master to add services to its scope.
func (s *Service) RequestScope(ctx context.Context, services []string) (ScopeRequest, error) {
	if err := s.alive(); err != nil {
		return ScopeRequest{}, err
	}
	if len(services) == 0 {
		return ScopeRequest{}, errorf(CodeInvalidParams, "name at least one service to ask for")
	}
	for _, svc := range services {
		if err := agentkeys.ValidateService(svc); err != nil {
			return ScopeRequest{}, errorf(CodeInvalidParams, "%s", err.Error())
		}
	}
	tok := s.o.Session.Token
	id, err := s.o.Backend.Validate(ctx, tok)
	if err != nil {
		return ScopeRequest{}, s.noteErr("validate", err)
	}
	if id.Parent == "" {
		return ScopeRequest{}, errorf(CodeInvalidParams, "this daemon holds a master's session, whose scope is not changed by request")
	}
	if id.Scope == nil {
		return ScopeRequest{}, errorf(CodeInvalidParams, "the agent's scope is already unrestricted")
	}
	var added []string
	for _, svc := range services {
		if !id.Scope.Allows(svc) && !slices.Contains(added, svc) {
			added = append(added, svc)
		}
	}
	if len(added) == 0 {
		return ScopeRequest{}, errorf(CodeInvalidParams, "the agent's scope already includes %s", strings.Join(services, ", "))
	}
	next, err := id.Scope.Edit(added, nil)
	if err != nil {
		return ScopeRequest{}, errorf(CodeInvalidParams, "%s", err.Error())
	}
	details, err := authreq.Encode(authreq.Request{Type: authreq.TypeScopeChange, AgentID: string(id.Wallet),
		NewScope: authreq.Scope{Services: next.Services, ReadOnly: next.ReadOnly}})
	if err != nil {
		return ScopeRequest{}, errorf(CodeInvalidParams, "%s", err.Error())
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return ScopeRequest{}, errorf(CodeInternal, "internal error")
	}
	opened, err := s.o.Backend.OpenAuthRequest(ctx, backendclient.OpenRequest{ChildPubkey: pub, RequestType: authreq.TypeScopeChange,
		RequestDetails: details, ParentWallet: id.Parent, Session: tok})
	if err != nil {
		return ScopeRequest{}, s.noteErr("open scope request", err)
	}
	r := &scopeReq{status: ScopePending, done: make(chan struct{})}
	s.authMu.Lock()
	if s.scopeReqs == nil {
		s.scopeReqs = map[string]*scopeReq{}
	}
	s.scopeReqs[opened.ID] = r
	s.authMu.Unlock()
	go s.awaitScope(opened, r)
	s.log.Info("asked the master for more scope", "request_id", opened.ID, "added", strings.Join(added, ","))
	return ScopeRequest{RequestID: opened.ID, PairCode: opened.PairCode, OTP: opened.OTP, ExpiresAt: opened.ExpiresAt.UTC().Format(time.RFC3339),
		Services: next.Services, Added: added, ReadOnly: next.ReadOnly,
		Approve: "agentkeys approve " + opened.PairCode + " --otp " + opened.OTP}, nil
}

// awaitScope waits for the master's decision on a scope request.
func (s *Service) awaitScope(o backendclient.Opened, r *scopeReq) {
	ctx, cancel := context.WithDeadline(context.Background(), o.ExpiresAt.Add(30*time.Second))
	defer cancel()
	status := ScopeExpired
	defer func() {
		s.authMu.Lock()
		r.status = status
		s.authMu.Unlock()
		close(r.done)
		s.log.Info("scope request decided", "request_id", o.ID, "status", status)
	}()
	failures := 0
	for ctx.Err() == nil && s.alive() == nil {
		callCtx, callCancel := context.WithTimeout(ctx, 45*time.Second)
		d, err := s.o.Backend.AwaitAuthDecision(callCtx, o)
		callCancel()
		switch {
		case errors.Is(err, backendclient.ErrExpired):
			return
		case errors.Is(err, backendclient.ErrUnverifiedApproval):
			s.log.Warn("a scope request's approval did not verify", "request_id", o.ID, "err", err.Error())
			status = ScopeFailed
			return
		case err != nil:
			if !retryable(err) {
				status = ScopeFailed
				return
			}
			sleepCtx(ctx, backoff(failures, time.Second, 10*time.Second))
			failures++
			continue
		}
		failures = 0
		switch d.Status {
		case "timeout", "pending":
			continue
		case "approved":
			status = ScopeApproved
		case "denied":
			status = ScopeDenied
		case "locked":
			status = ScopeLocked
		default:
			status = ScopeFailed
		}
		return
	}
}

// ScopeRequestStatus returns a scope request's state, waiting up to wait
// for it to be decided.
func (s *Service) ScopeRequestStatus(ctx context.Context, id string, wait time.Duration) (string, error) {
	s.authMu.Lock()
	r, ok := s.scopeReqs[id]
	s.authMu.Unlock()
	if !ok {
		return "", errorf(CodeNotFound, "no scope request %q in this daemon", id)
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	s.authMu.Lock()
	defer s.authMu.Unlock()
	return r.status, nil
}

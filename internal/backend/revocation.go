package backend

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Revocation propagation.
//
// Every change that takes access away (a session or wallet revoked, a
// wallet torn down, a scope changed) bumps the store's revocation epoch in
// its own transaction. Relying services use it to decide whether what they
// cached is still good:
//
//   - GET /session/epoch answers the current epoch (one single-row read). A
//     broker asks it for every mint (coalesced) and reuses a cached
//     validation only if it was made at that very epoch.
//   - GET /session/validate also answers the epoch, read before the
//     session, so a validation is never credited to a later epoch than the
//     one it saw.
//   - GET /session/watch is a long-poll for daemons: it answers 401 as soon
//     as the bearer's session stops being valid, or 200 after the await
//     window. Watchers sleep on an in-process wake-up (revokes on this
//     replica) and on one shared poller that reads the epoch every
//     epochPollEvery while anyone watches (revokes on other replicas).

// DefaultEpochPoll is how often the shared poller reads the epoch while
// daemons watch their sessions.
const DefaultEpochPoll = 250 * time.Millisecond

// epochHub tracks the latest epoch this process has seen and wakes the
// watchers when it moves.
type epochHub struct {
	read  func(ctx context.Context) (int64, error)
	every time.Duration
	log   func(msg string, err error)

	mu       sync.Mutex
	epoch    int64
	changed  chan struct{} // closed (and replaced) when epoch moves
	watchers int
	polling  bool
}

func newEpochHub(read func(context.Context) (int64, error), every time.Duration, log func(string, error)) *epochHub {
	return &epochHub{read: read, every: every, log: log, changed: make(chan struct{})}
}

// observe records an epoch read from the store (or just written) and wakes
// the watchers if it is newer than what the hub knew.
func (h *epochHub) observe(e int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e > h.epoch {
		h.epoch = e
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// since returns the hub's epoch and a channel closed when it moves on.
func (h *epochHub) since() (int64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch, h.changed
}

// join registers a watcher and starts the poller if it is not running;
// the returned func unregisters.
func (h *epochHub) join() func() {
	h.mu.Lock()
	h.watchers++
	if !h.polling {
		h.polling = true
		go h.poll()
	}
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.watchers--
			h.mu.Unlock()
		})
	}
}

// watcherCount is how many watchers the hub has.
func (h *epochHub) watcherCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watchers
}

// poll reads the epoch every h.every while anyone watches.
func (h *epochHub) poll() {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for range t.C {
		h.mu.Lock()
		if h.watchers == 0 {
			h.polling = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), max(h.every*4, time.Second))
		e, err := h.read(ctx)
		cancel()
		if err != nil {
			h.log("revocation epoch poll failed", err)
			continue
		}
		h.observe(e)
	}
}

// revocationTx runs change, a change to what sessions may do (revoke,
// teardown, scope update), in one transaction with the revocation-epoch
// bump and the ResultOK audit row of action on the wallet change returns;
// after the commit the new epoch is observed, so that waiting watchers and
// relying services see it at once. A denial (403) rolls everything back
// and is audited on its own, with deniedTarget as the target.
func (s *Server) revocationTx(ctx context.Context, c *caller, action string, deniedTarget agentkeys.Wallet, change func(q store.Queries) (agentkeys.Wallet, error)) error {
	var epoch int64
	err := s.store.Tx(ctx, func(q store.Queries) error {
		target, err := change(q)
		if err != nil {
			return err
		}
		if epoch, err = q.BumpRevocationEpoch(ctx); err != nil {
			return err
		}
		return s.audit(ctx, q, c.addr(), target, agentkeys.AuditWildcard, action, agentkeys.ResultOK)
	})
	if err != nil {
		if isDenied(err) {
			s.auditDenial(ctx, c.addr(), deniedTarget, agentkeys.AuditWildcard, action, agentkeys.ResultDenied)
		}
		return err
	}
	s.epochs.observe(epoch)
	return nil
}

// sessionEpoch answers the current revocation epoch. It is unauthenticated
// (the epoch is a counter of revocations, not a secret) and costs one
// single-row read: relying services call it for every mint.
func (s *Server) sessionEpoch(r *http.Request) (any, error) {
	e, err := s.store.RevocationEpoch(r.Context())
	if err != nil {
		return nil, err
	}
	return api.EpochResponse{Epoch: &e}, nil
}

// validateSession tells a relying service (the broker) who holds a token
// (a session or a broker token derived from one), and the revocation epoch read before the session was: a cached answer is
// good only while the epoch has not moved past it.
func (s *Server) validateSession(r *http.Request) (any, error) {
	epoch, err := s.store.RevocationEpoch(r.Context())
	if err != nil {
		return nil, err
	}
	c, err := s.authenticateForBroker(r)
	if err != nil {
		return nil, err
	}
	if err := s.limitWallet(c); err != nil {
		return nil, err
	}
	resp := api.ValidateResponse{
		Wallet: c.addr(), Kind: string(c.wallet.Kind), Parent: c.wallet.Parent,
		Scope: c.scope, ExpiresAt: c.session.ExpiresAt.Unix(), Epoch: epoch,
	}
	if bt := c.brokerToken; bt != nil {
		resp.Audience, resp.TokenExpiresAt = bt.Audience, bt.ExpiresAt.Unix()
	}
	return resp, nil
}

// watchSession is a long-poll for a daemon: 401 (the same envelope as
// validate) as soon as the bearer's session is revoked, expires, or its
// wallet is torn down; otherwise 200 {"valid":true,"epoch":N} after the
// await window. The session is re-resolved only when the epoch moves.
func (s *Server) watchSession(r *http.Request) (any, error) {
	ctx := r.Context()
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	leave := s.epochs.join()
	defer leave()
	epoch, err := s.store.RevocationEpoch(ctx)
	if err != nil {
		return nil, err
	}
	s.epochs.observe(epoch)
	c, err := s.resolveSession(ctx, s.store, tok)
	if err != nil {
		return nil, err
	}
	window := time.NewTimer(s.awaitWindow)
	defer window.Stop()
	expiry := time.NewTimer(max(c.session.ExpiresAt.Sub(s.now()), 0))
	defer expiry.Stop()
	for {
		seen, changed := s.epochs.since()
		if seen > epoch {
			// Read the epoch before the session again, so that a
			// revocation committed after this read moves it once more.
			if epoch, err = s.store.RevocationEpoch(ctx); err != nil {
				return nil, err
			}
			if _, err := s.resolveSession(ctx, s.store, tok); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case <-changed:
		case <-expiry.C:
			return nil, unauthorized("session expired")
		case <-window.C:
			return api.WatchResponse{Valid: true, Epoch: epoch}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// DetailCachedRead marks read rows the daemon served from its cache.
const DetailCachedRead = "cached"

// auditCachedRead records that a daemon is about to hand out credential
// values from its own cache (--cache-ttl): one "read" row per service,
// detail "cached", in the same views as a read through the backend. The
// daemon serves the value only after this answers 200, so it also refuses
// cached values of a session that was revoked or narrowed meanwhile.
func (s *Server) auditCachedRead(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.AuditCachedReadRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	addr, err := agentOrSelf(c, req.AgentID)
	if err != nil {
		return nil, err
	}
	tw, err := s.ownedTarget(ctx, c, addr, agentkeys.AuditWildcard, agentkeys.ActionRead)
	if err != nil {
		return nil, err
	}
	if tw.TornDown {
		return nil, notFound("agent %s was torn down", addr)
	}
	for _, svc := range req.Services {
		if !c.scope.Allows(svc) {
			s.auditDenial(ctx, c.addr(), addr, svc, agentkeys.ActionRead, agentkeys.ResultDeniedScope)
			return nil, denied("agent %s does not have scope for service %s", c.addr(), svc)
		}
	}
	now := s.now()
	err = s.store.Tx(ctx, func(q store.Queries) error {
		for _, svc := range req.Services {
			if _, err := q.AppendAudit(ctx, agentkeys.AuditEvent{
				Time: now, Owner: c.addr(), Agent: addr, Service: svc, Action: agentkeys.ActionRead,
				Result: agentkeys.ResultOK, Detail: DetailCachedRead,
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.OK{OK: true}, nil
}

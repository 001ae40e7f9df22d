package backend

import (
	"errors"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/store"
)

const smallBody = 16 << 10

// createSession logs a master in. The LoginVerifier decides what an
// auth_token is worth: with an OIDC login provider only a valid ID token;
// in mock mode (dev and tests only) any non-empty string names an identity. The
// wallet is keyed on a hash of the identity, so the same identity always
// reaches the same wallet and the token itself is never stored.
func (s *Server) createSession(r *http.Request) (any, error) {
	if err := limit(s.login, ratelimit.ClientIP(r), "too many login attempts; retry later"); err != nil {
		return nil, err
	}
	var req api.CreateSessionRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	identity, err := s.loginVerifier.Verify(r.Context(), *req.AuthToken)
	if err != nil {
		return nil, unauthorized("invalid auth token")
	}
	login := loginHash(identity)
	now := s.now()
	tok := agentkeys.NewToken()
	var resp api.SessionResponse
	err = s.store.Tx(r.Context(), func(q store.Queries) error {
		w, err := q.WalletByLogin(r.Context(), login)
		if errors.Is(err, store.ErrNotFound) {
			w = store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, LoginHash: login, CreatedAt: now}
			err = q.InsertWallet(r.Context(), w)
		}
		if err != nil {
			return err
		}
		if w.TornDown {
			return unauthorized("this identity's wallet was torn down")
		}
		sess := store.Session{TokenHash: tok.Hash(), Wallet: w.Address, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
		if err := q.InsertSession(r.Context(), sess); err != nil {
			return err
		}
		resp = api.SessionResponse{Session: tok.Reveal(), Wallet: w.Address, ExpiresAt: sess.ExpiresAt.Unix()}
		return s.audit(r.Context(), q, w.Address, w.Address, agentkeys.AuditWildcard, agentkeys.ActionSessionCreate, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// createBrokerToken derives from the caller's session a short-lived token
// for the broker's audience: the broker can validate it, but every other
// route refuses it, it dies with the session (revocation included), and it
// never outlives the session. Only a session can ask (authed refuses broker
// tokens), so a broker token cannot beget another.
//
// Issuance is not written to the audit log: the token grants nothing the
// session does not already hold, clients derive one every few minutes, and
// what it is used for — a mint — is audited by the broker with the wallet.
func (s *Server) createBrokerToken(r *http.Request, c *caller) (any, error) {
	if err := limit(s.brokerLimit, string(c.session.TokenHash), "too many broker tokens requested; retry later"); err != nil {
		return nil, err
	}
	var req api.BrokerTokenRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	if req.Audience != "" && req.Audience != store.AudienceBroker {
		return nil, badRequest("audience must be %q", store.AudienceBroker)
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(MaxBrokerTokenTTL/time.Second) {
		return nil, badRequest("ttl_seconds must be between 1 and %d", int64(MaxBrokerTokenTTL/time.Second))
	}
	ttl := s.brokerTTL
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	now := s.now()
	expires := now.Add(ttl)
	if expires.After(c.session.ExpiresAt) {
		expires = c.session.ExpiresAt
	}
	tok := agentkeys.NewToken()
	bt := store.BrokerToken{TokenHash: tok.Hash(), ParentHash: c.session.TokenHash, Audience: store.AudienceBroker, CreatedAt: now, ExpiresAt: expires}
	err := s.store.Tx(r.Context(), func(q store.Queries) error {
		// Re-check the session inside the transaction: a concurrent revoke
		// must not leave a live token of a dead session.
		if _, err := s.resolveSession(r.Context(), q, c.token); err != nil {
			return err
		}
		return q.InsertBrokerToken(r.Context(), bt)
	})
	if err != nil {
		return nil, err
	}
	return api.BrokerTokenResponse{Token: tok.Reveal(), ExpiresAt: expires.Unix(), Audience: store.AudienceBroker}, nil
}

// createChild mints an agent wallet under the caller with a scope no wider
// than the caller's own, and a session that dies with the caller's.
func (s *Server) createChild(r *http.Request, c *caller) (any, error) {
	var req api.CreateChildRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	scope, err := req.Scope.Normalize() // Validate checked it
	if err != nil {
		return nil, badRequest("scope: %v", err)
	}
	if err := checkTTL(req.TTLSeconds); err != nil {
		return nil, err
	}
	if !scope.Within(c.scope) {
		s.auditDenial(r.Context(), c.addr(), c.addr(), agentkeys.AuditWildcard, agentkeys.ActionChildCreate, agentkeys.ResultDeniedScope)
		return nil, denied("requested scope is wider than the caller's scope")
	}
	now := s.now()
	expires := now.Add(s.ttl)
	if req.TTLSeconds > 0 {
		expires = now.Add(time.Duration(req.TTLSeconds) * time.Second)
	}
	if expires.After(c.session.ExpiresAt) {
		expires = c.session.ExpiresAt
	}
	tok := agentkeys.NewToken()
	child := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindAgent, Parent: c.addr(), Scope: scope, CreatedAt: now}
	err = s.store.Tx(r.Context(), func(q store.Queries) error {
		// Re-check the caller inside the transaction: a concurrent revoke
		// must not leave a live child of a dead session.
		if _, err := s.resolveSession(r.Context(), q, c.token); err != nil {
			return err
		}
		if err := s.checkChildQuota(r.Context(), q, c.addr()); err != nil {
			return err
		}
		if err := q.InsertWallet(r.Context(), child); err != nil {
			return err
		}
		if req.Name != "" {
			_, root, err := rootOf(r.Context(), q, child.Address)
			if err != nil {
				return err
			}
			if err := s.setName(r.Context(), q, root, child.Address, req.Name); err != nil {
				return err
			}
		}
		sess := store.Session{TokenHash: tok.Hash(), Wallet: child.Address, ParentHash: c.session.TokenHash, CreatedAt: now, ExpiresAt: expires}
		if err := q.InsertSession(r.Context(), sess); err != nil {
			return err
		}
		return s.audit(r.Context(), q, c.addr(), child.Address, agentkeys.AuditWildcard, agentkeys.ActionChildCreate, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	return api.SessionResponse{Session: tok.Reveal(), Wallet: child.Address, ExpiresAt: expires.Unix()}, nil
}

// revoke ends a session (and every session minted from it) or every session
// of a wallet and its descendants.
func (s *Server) revoke(r *http.Request, c *caller) (any, error) {
	var req api.RevokeRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	ctx := r.Context()
	now := s.now()
	if req.TargetSession != "" {
		tok, err := agentkeys.ParseToken(req.TargetSession)
		if err != nil {
			return nil, notFound("target session not found")
		}
		var n int
		err = s.revocationTx(ctx, c, agentkeys.ActionRevoke, c.addr(), func(q store.Queries) (agentkeys.Wallet, error) {
			sess, err := q.Session(ctx, tok.Hash())
			if errors.Is(err, store.ErrNotFound) {
				return "", notFound("target session not found")
			}
			if err != nil {
				return "", err
			}
			if _, owned, err := s.target(ctx, q, c, sess.Wallet); err != nil {
				return "", err
			} else if !owned {
				return "", denied("session does not own the target session")
			}
			n, err = q.RevokeSessionTree(ctx, sess.TokenHash, now)
			return sess.Wallet, err
		})
		if err != nil {
			return nil, err
		}
		return api.RevokeResponse{OK: true, SessionsRevoked: n}, nil
	}

	addr, err := parseWalletField("target_wallet", req.TargetWallet)
	if err != nil {
		return nil, err
	}
	var n int
	err = s.revocationTx(ctx, c, agentkeys.ActionRevoke, addr, func(q store.Queries) (agentkeys.Wallet, error) {
		if _, owned, err := s.target(ctx, q, c, addr); err != nil {
			return "", err
		} else if !owned {
			return "", denied("session does not own the target wallet")
		}
		tree, err := q.Subtree(ctx, addr)
		if err != nil {
			return "", err
		}
		if n, err = q.RevokeWalletSessions(ctx, tree, now); err != nil {
			return "", err
		}
		if n == 0 {
			return "", notFound("no active sessions found for target wallet")
		}
		return addr, nil
	})
	if err != nil {
		return nil, err
	}
	return api.RevokeResponse{OK: true, SessionsRevoked: n}, nil
}

func isDenied(err error) bool {
	var e *jsonhttp.Error
	return errors.As(err, &e) && e.Status == http.StatusForbidden
}

func newScopeResponse(w agentkeys.Wallet, sc *agentkeys.Scope) api.ScopeResponse {
	if sc == nil {
		return api.ScopeResponse{Wallet: w}
	}
	return api.ScopeResponse{Wallet: w, Services: sc.Services, ReadOnly: sc.ReadOnly}
}

// getScope returns a wallet's effective scope; services is null when the
// wallet is unrestricted and [] when it may use nothing.
func (s *Server) getScope(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query().Get("wallet")
	addr := c.addr()
	if q != "" {
		var err error
		if addr, err = parseWalletField("wallet", q); err != nil {
			return nil, err
		}
	}
	if addr == c.addr() {
		return newScopeResponse(addr, c.scope), nil
	}
	if _, owned, err := s.target(ctx, s.store, c, addr); err != nil {
		return nil, err
	} else if !owned {
		s.auditDenial(ctx, c.addr(), addr, agentkeys.AuditWildcard, agentkeys.ActionScopeRead, agentkeys.ResultDenied)
		return nil, denied("session does not own the target wallet")
	}
	lineage, err := s.store.Lineage(ctx, addr)
	if err != nil {
		return nil, err
	}
	return newScopeResponse(addr, effectiveScope(lineage)), nil
}

// putScope sets the scope of a descendant wallet; it applies at once to
// every session of that wallet and narrows its own descendants.
func (s *Server) putScope(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.SetScopeRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	addr, err := parseWalletField("target_wallet", req.TargetWallet)
	if err != nil {
		return nil, err
	}
	if addr == c.addr() {
		return nil, badRequest("a session cannot change its own scope; ask the wallet that owns it")
	}
	scope, err := req.Scope.Normalize() // Validate checked it
	if err != nil {
		return nil, badRequest("scope: %v", err)
	}
	err = s.revocationTx(ctx, c, agentkeys.ActionScopeUpdate, addr, func(q store.Queries) (agentkeys.Wallet, error) {
		tw, owned, err := s.target(ctx, q, c, addr)
		if err != nil {
			return "", err
		}
		if !owned {
			return "", denied("session does not own the target wallet")
		}
		if tw.TornDown {
			return "", notFound("target wallet was torn down")
		}
		if !c.scope.CanWrite() {
			return "", jsonhttp.Errorf(http.StatusForbidden, KindDenied, "a read-only session cannot change scopes")
		}
		if !scope.Within(c.scope) {
			return "", jsonhttp.Errorf(http.StatusForbidden, KindDenied, "requested scope is wider than the caller's scope")
		}
		return addr, q.SetScope(ctx, addr, scope)
	})
	if err != nil {
		return nil, err
	}
	return api.SetScopeResponse{OK: true, Wallet: addr, Scope: scope}, nil
}

package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// caller is the authenticated party of a request.
type caller struct {
	token   agentkeys.Token
	session store.Session
	wallet  store.Wallet
	// scope is the effective scope: the caller's own narrowed by every
	// ancestor's. nil means unrestricted.
	scope *agentkeys.Scope
	// brokerToken is set when the bearer is a broker token derived from
	// session (only GET /session/validate accepts one).
	brokerToken *store.BrokerToken
}

func (c *caller) addr() agentkeys.Wallet { return c.wallet.Address }

// bearer extracts the token from "Authorization: Bearer <token>". The scheme
// is matched case-insensitively (RFC 9110 §11.1).
func bearer(r *http.Request) (agentkeys.Token, error) {
	h := r.Header.Get("Authorization")
	scheme, value, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", unauthorized("missing Authorization header (want: Bearer <session token>)")
	}
	tok, err := agentkeys.ParseToken(strings.TrimSpace(value))
	if err != nil {
		return "", unauthorized("session not found")
	}
	return tok, nil
}

// authenticate resolves the bearer as a session. A broker token (derived
// for the broker's audience) is refused here: it is good only at
// GET /session/validate (authenticateForBroker).
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	c, err := s.resolveCurrent(r.Context(), tok)
	if err != nil {
		if _, berr := s.store.BrokerToken(r.Context(), tok.Hash()); berr == nil {
			return nil, unauthorized(msgBrokerOnly)
		}
	}
	return c, err
}

// msgBrokerOnly answers a broker token presented anywhere but
// GET /session/validate.
const msgBrokerOnly = "token is for the broker only"

// authenticateForBroker accepts a session or a live broker token whose
// parent session is valid; the caller is the parent session's, with
// brokerToken set.
func (s *Server) authenticateForBroker(r *http.Request) (*caller, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	c, serr := s.resolveSession(ctx, s.store, tok)
	if serr == nil {
		return c, nil
	}
	hash := tok.Hash()
	bt, err := s.store.BrokerToken(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	if !bt.TokenHash.Equal(hash) || bt.Audience != store.AudienceBroker {
		return nil, unauthorized("session not found")
	}
	if !s.now().Before(bt.ExpiresAt) {
		return nil, unauthorized("session expired")
	}
	// The parent session's checks apply in full: revoking it, an ancestor
	// session or a wallet above it, or its expiry, ends the token too.
	c, err = s.resolveSessionHash(ctx, s.store, bt.ParentHash)
	if err != nil {
		return nil, err
	}
	c.brokerToken = &bt
	return c, nil
}

// resolveSession checks a token and loads its wallet and effective scope.
func (s *Server) resolveSession(ctx context.Context, q store.Queries, tok agentkeys.Token) (*caller, error) {
	c, err := s.resolveSessionHash(ctx, q, tok.Hash())
	if err != nil {
		return nil, err
	}
	c.token = tok
	return c, nil
}

// resolveSessionHash checks the session with this token hash.
func (s *Server) resolveSessionHash(ctx context.Context, q store.Queries, hash agentkeys.TokenHash) (*caller, error) {
	sess, err := q.Session(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthorized("session not found")
	}
	if err != nil {
		return nil, err
	}
	// The lookup was by hash; compare again in constant time so that no
	// code path depends on a variable-time comparison of token material.
	if !sess.TokenHash.Equal(hash) {
		return nil, unauthorized("session not found")
	}
	if sess.Revoked() {
		return nil, unauthorized("session revoked")
	}
	if !s.now().Before(sess.ExpiresAt) {
		return nil, unauthorized("session expired")
	}
	lineage, err := q.Lineage(ctx, sess.Wallet)
	if err != nil {
		return nil, err
	}
	if len(lineage) == 0 || lineage[0].TornDown {
		return nil, unauthorized("session revoked")
	}
	return &caller{session: sess, wallet: lineage[0], scope: effectiveScope(lineage)}, nil
}

// effectiveScope intersects the scopes of a wallet and its ancestors.
func effectiveScope(lineage []store.Wallet) *agentkeys.Scope {
	var sc *agentkeys.Scope
	for i, w := range lineage {
		if i == 0 {
			sc = w.Scope
			continue
		}
		sc = sc.Intersect(w.Scope)
	}
	if sc != nil {
		sc, _ = sc.Normalize()
	}
	return sc
}

// ownedTarget resolves addr for c outside a transaction and refuses (403,
// audited as a denial of action on service) a wallet c does not own.
func (s *Server) ownedTarget(ctx context.Context, c *caller, addr agentkeys.Wallet, service, action string) (store.Wallet, error) {
	tw, owned, err := s.target(ctx, s.store, c, addr)
	if err != nil {
		return store.Wallet{}, err
	}
	if !owned {
		s.auditDenial(ctx, c.addr(), addr, service, action, agentkeys.ResultDenied)
		return store.Wallet{}, denied("session does not own agent %s", addr)
	}
	return tw, nil
}

// agentOrSelf is the wallet an optional agent_id names: the caller's own
// when empty.
func agentOrSelf(c *caller, agentID string) (agentkeys.Wallet, error) {
	if agentID == "" {
		return c.addr(), nil
	}
	return parseWalletField("agent_id", agentID)
}

// target loads the wallet a caller wants to act on and checks ownership: a
// caller owns its own wallet and every descendant. Unknown and foreign
// wallets get the same answer, so the check is no existence oracle.
func (s *Server) target(ctx context.Context, q store.Queries, c *caller, addr agentkeys.Wallet) (store.Wallet, bool, error) {
	if addr == c.addr() {
		return c.wallet, true, nil
	}
	lineage, err := q.Lineage(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return store.Wallet{}, false, nil
	}
	if err != nil {
		return store.Wallet{}, false, err
	}
	if len(lineage) == 0 {
		return store.Wallet{}, false, nil
	}
	for _, w := range lineage[1:] {
		if w.Address == c.addr() {
			return lineage[0], true, nil
		}
	}
	return store.Wallet{}, false, nil
}

// recheck re-decides, inside the write's transaction, what a handler
// checked before it: that the caller's session is still live, that it owns
// addr and that addr is not torn down, and that the caller may write. The
// check made before the transaction only picks the denial to audit; this
// one is what counts, so a write racing a teardown, a revoke or a scope
// change either sees it and fails, or commits first and is undone by it.
// It returns the caller as of this transaction.
func (s *Server) recheck(ctx context.Context, q store.Queries, c *caller, addr agentkeys.Wallet) (*caller, error) {
	fresh, err := s.resolveSession(ctx, q, c.token)
	if err != nil {
		return nil, err
	}
	tw, owned, err := s.target(ctx, q, fresh, addr)
	if err != nil {
		return nil, err
	}
	if !owned {
		return nil, denied("session does not own wallet %s", addr)
	}
	if tw.TornDown {
		return nil, notFound("wallet %s was torn down", addr)
	}
	if !fresh.scope.CanWrite() {
		return nil, denied("session scope is read-only")
	}
	return fresh, nil
}

// parseWalletField validates a wallet given by the client.
func parseWalletField(name, v string) (agentkeys.Wallet, error) {
	if v == "" {
		return "", badRequest("%s required", name)
	}
	w, err := agentkeys.ParseWallet(v)
	if err != nil {
		return "", badRequest("%s: %v", name, err)
	}
	return w, nil
}

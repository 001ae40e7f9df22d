package backend

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/store"
)

// identityVerified reports whether a link of this type is proof that the
// wallet's holder controls the name. E-mail addresses and ENS names are
// claimed first-come-first-served without any proof of ownership, so they
// are always shown as "verified": false and a daemon will not bind its
// --parent to one. A wallet address names itself; an alias is a name the
// account picked, not a claim to anything outside AgentKeys.
func identityVerified(typ string) bool {
	return typ == string(agentkeys.KindWallet) || typ == string(agentkeys.KindAlias)
}

// resolveIdentity maps (type, value) to a wallet.
func (s *Server) resolveIdentity(ctx context.Context, q store.Queries, typ, value string) (agentkeys.Wallet, error) {
	id, err := agentkeys.ParseIdentityAs(agentkeys.IdentityKind(typ), value)
	if err != nil {
		return "", badRequest("%v", err)
	}
	if id.Kind == agentkeys.KindWallet {
		w := agentkeys.Wallet(id.Value)
		wr, err := q.Wallet(ctx, w)
		if errors.Is(err, store.ErrNotFound) || (err == nil && wr.TornDown) {
			return "", notFound("no account found for that wallet")
		}
		return w, err
	}
	l, err := q.ResolveIdentity(ctx, string(id.Kind), id.Value)
	if errors.Is(err, store.ErrNotFound) {
		return "", notFound("no identity found for type=%s value=%s", id.Kind, truncateStr(id.Value))
	}
	return l.Wallet, err
}

// linkIdentity names a wallet the caller owns by an alias, e-mail or ENS
// name. A name points at one wallet; taking a name another wallet holds is
// refused.
func (s *Server) linkIdentity(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.LinkIdentityRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	id, err := agentkeys.ParseIdentityAs(agentkeys.IdentityKind(req.IdentityType), req.IdentityValue)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	value := id.Value
	target := c.addr()
	if req.WalletAddress != "" {
		if target, err = parseWalletField("wallet_address", req.WalletAddress); err != nil {
			return nil, err
		}
	}
	if !c.scope.CanWrite() {
		return nil, denied("a read-only session cannot link identities")
	}
	tw, owned, err := s.target(ctx, s.store, c, target)
	if err != nil {
		return nil, err
	}
	if !owned || tw.TornDown {
		s.auditDenial(ctx, c.addr(), target, agentkeys.AuditWildcard, actionLink, agentkeys.ResultDenied)
		return nil, denied("session does not own wallet %s", target)
	}
	err = s.store.Tx(ctx, func(q store.Queries) error {
		if _, err := s.recheck(ctx, q, c, target); err != nil {
			return err
		}
		if id.Kind == agentkeys.KindAlias {
			if err := s.checkAliasFree(ctx, q, target, value); err != nil {
				return err
			}
		}
		if err := q.PutIdentityLink(ctx, store.IdentityLink{Wallet: target, Type: req.IdentityType, Value: value, CreatedAt: s.now()}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return conflict("%s %q already names another wallet", req.IdentityType, value)
			}
			return err
		}
		return s.audit(ctx, q, c.addr(), target, agentkeys.AuditWildcard, actionLink, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	return api.LinkIdentityResponse{OK: true, WalletAddress: target, IdentityType: req.IdentityType, IdentityValue: value,
		Verified: identityVerified(req.IdentityType)}, nil
}

// resolveIdentityRoute answers who a name points at. It is public (a
// daemon without a session resolves its --parent) and rate-limited per IP.
func (s *Server) resolveIdentityRoute(r *http.Request) (any, error) {
	if err := s.limitIP(r, s.openLimit); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	typ := q.Get("identity_type")
	w, err := s.resolveIdentity(r.Context(), s.store, typ, q.Get("identity_value"))
	if err != nil {
		return nil, err
	}
	return api.ResolveIdentityResponse{WalletAddress: w, IdentityType: typ, Verified: identityVerified(typ)}, nil
}

package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/store"
	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// Identity types on the HTTP wire.
const (
	identityAlias  = "alias"
	identityEmail  = "email"
	identityEns    = "ens"
	identityWallet = "wallet"
)

// wireIdentityType maps a CBOR identity kind to its HTTP spelling.
func wireIdentityType(cborType string) string {
	switch cborType {
	case authreq.IdentityAlias:
		return identityAlias
	case authreq.IdentityEmail:
		return identityEmail
	case authreq.IdentityEns:
		return identityEns
	case authreq.IdentityWallet:
		return identityWallet
	}
	return ""
}

// normalizeIdentity folds case where the kind is case-insensitive.
func normalizeIdentity(typ, value string) string {
	value = strings.TrimSpace(value)
	switch typ {
	case identityEmail, identityEns, identityAlias, identityWallet:
		return strings.ToLower(value)
	}
	return value
}

func validateLinkIdentity(typ, value string) error {
	if err := textcheck.Check(value, 254); err != nil {
		return badRequest("identity_value: %v", err)
	}
	switch typ {
	case identityAlias:
		if len(value) == 0 || len(value) > 64 {
			return badRequest("alias must be 1 to 64 characters")
		}
		for _, r := range value {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return badRequest("alias may use letters, digits, '-', '_' and '.'")
			}
		}
		if strings.HasPrefix(value, "0x") {
			return badRequest("alias must not start with 0x (it would read as a wallet)")
		}
	case identityEmail:
		at := strings.LastIndexByte(value, '@')
		if at < 1 || at == len(value)-1 || len(value) > 254 || strings.ContainsAny(value, " \t\r\n") {
			return badRequest("email must look like name@example.com")
		}
	case identityEns:
		if !strings.HasSuffix(value, ".eth") || len(value) < 5 || len(value) > 254 {
			return badRequest("ens name must end in .eth")
		}
	case "":
		return badRequest("identity_type required")
	default:
		return badRequest("unknown identity_type %q: use alias, email or ens", truncateStr(typ))
	}
	return nil
}

// identityVerified reports whether a link of this type is proof that the
// wallet's holder controls the name. E-mail addresses and ENS names are
// claimed first-come-first-served without any proof of ownership, so they
// are always shown as "verified": false and a daemon will not bind its
// --parent to one. A wallet address names itself; an alias is a name the
// account picked, not a claim to anything outside AgentKeys.
func identityVerified(typ string) bool {
	return typ == identityWallet || typ == identityAlias
}

// resolveIdentity maps (type, value) to a wallet.
func (s *Server) resolveIdentity(ctx context.Context, q store.Queries, typ, value string) (agentkeys.Wallet, error) {
	if err := textcheck.Check(value, 254); err != nil {
		return "", badRequest("identity_value: %v", err)
	}
	value = normalizeIdentity(typ, value)
	if value == "" {
		return "", badRequest("identity_value required")
	}
	if typ == identityWallet {
		w, err := agentkeys.ParseWallet(value)
		if err != nil {
			return "", badRequest("invalid wallet address")
		}
		wr, err := q.Wallet(ctx, w)
		if errors.Is(err, store.ErrNotFound) || (err == nil && wr.TornDown) {
			return "", notFound("no account found for that wallet")
		}
		return w, err
	}
	if err := validateLinkIdentity(typ, value); err != nil {
		return "", err
	}
	l, err := q.ResolveIdentity(ctx, typ, value)
	if errors.Is(err, store.ErrNotFound) {
		return "", notFound("no identity found for type=%s value=%s", typ, truncateStr(value))
	}
	return l.Wallet, err
}

// linkIdentity names a wallet the caller owns by an alias, e-mail or ENS
// name. A name points at one wallet; taking a name another wallet holds is
// refused.
func (s *Server) linkIdentity(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req struct {
		IdentityType  string `json:"identity_type"`
		IdentityValue string `json:"identity_value"`
		WalletAddress string `json:"wallet_address,omitempty"`
	}
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	value := normalizeIdentity(req.IdentityType, req.IdentityValue)
	if err := validateLinkIdentity(req.IdentityType, value); err != nil {
		return nil, err
	}
	target := c.addr()
	if req.WalletAddress != "" {
		var err error
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
	return map[string]any{"ok": true, "wallet_address": target, "identity_type": req.IdentityType, "identity_value": value,
		"verified": identityVerified(req.IdentityType)}, nil
}

// resolveIdentityRoute answers who a name points at. It is public (a
// daemon without a session resolves its --parent) and rate-limited per IP.
func (s *Server) resolveIdentityRoute(r *http.Request) (any, error) {
	if err := s.limitIP(r, s.openLimit); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	typ := q.Get("identity_type")
	switch typ {
	case identityAlias, identityEmail, identityEns, identityWallet:
	case "":
		return nil, badRequest("identity_type required")
	default:
		return nil, badRequest("unknown identity_type %q: use alias, email, ens or wallet", truncateStr(typ))
	}
	w, err := s.resolveIdentity(r.Context(), s.store, typ, q.Get("identity_value"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"wallet_address": w, "identity_type": typ, "verified": identityVerified(typ)}, nil
}

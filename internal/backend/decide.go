package backend

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store"
)

// approveAuthRequest checks the OTP the master typed and carries the
// request out: a Pair mints an agent wallet under the master with the
// requested scope (never wider than the master's); a Recover mints a new
// session on a wallet the master already owns; a ScopeChange sets a
// descendant's scope. The approval is single-use: the state moves from
// pending exactly once, inside one transaction.
func (s *Server) approveAuthRequest(r *http.Request, c *caller) (any, error) {
	if err := s.limitCaller(c, s.approveLimit); err != nil {
		return nil, err
	}
	ctx := r.Context()
	var req api.ApproveRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	if !c.scope.CanWrite() {
		return nil, denied("a read-only session cannot approve requests")
	}
	var (
		result   store.AuthRequest
		badOTP   bool
		attempts int
		pairing  int64
	)
	err := s.store.Tx(ctx, func(q store.Queries) error {
		// The approver as of this transaction: a session revoked or torn
		// down since it authenticated approves nothing.
		c, err := s.resolveSession(ctx, q, c.token)
		if err != nil {
			return err
		}
		ar, err := lookupAuthRequest(ctx, q, req.PairCode, req.RequestID)
		if err != nil {
			return err
		}
		if err := s.checkPending(ar, c); err != nil {
			return err
		}
		if !agentkeys.TokenHash(ar.OTPHash).Equal(agentkeys.TokenHash(otpHash(ar.ID, req.OTP))) {
			// Count the miss and commit it; the error is returned after.
			ar.FailedAttempts++
			if ar.FailedAttempts >= MaxOTPAttempts {
				ar.Status = store.AuthLocked
				ar.DecidedAt = s.now()
			}
			badOTP, attempts, result = true, ar.FailedAttempts, ar
			if err := q.UpdateAuthRequest(ctx, ar); err != nil {
				return err
			}
			res := resultBadOTP
			if ar.Status == store.AuthLocked {
				res = resultLocked
				if err := bumpPairing(ctx, q, &pairing); err != nil {
					return err
				}
			}
			return s.audit(ctx, q, c.addr(), c.addr(), agentkeys.AuditWildcard, actionAuthOTP, res)
		}
		d, err := authreq.Decode(ar.Type, ar.Details)
		if err != nil {
			return err
		}
		now := s.now()
		if req.Name != "" && ar.Type != authreq.TypePair {
			return badRequest("name applies to a pairing only, not to a %s request", ar.Type)
		}
		switch ar.Type {
		case authreq.TypePair:
			err = s.approvePair(ctx, q, c, &ar, d, req.Name)
		case authreq.TypeRecover:
			err = s.approveRecover(ctx, q, c, &ar, req.ConfirmMasterRecovery)
		case authreq.TypeScopeChange:
			err = s.approveScopeChange(ctx, q, c, &ar, d)
		default:
			err = badRequest("request_type %q cannot be approved", ar.Type)
		}
		if err != nil {
			return err
		}
		ar.Status, ar.ApproverWallet, ar.DecidedAt = store.AuthApproved, c.addr(), now
		if ar.Signature, err = s.signApproval(ar); err != nil {
			return err
		}
		if err := q.UpdateAuthRequest(ctx, ar); err != nil {
			return err
		}
		result = ar
		return bumpPairing(ctx, q, &pairing)
	})
	if err != nil {
		return nil, err
	}
	s.notify(result.ID)
	s.pairings.observe(pairing)
	if badOTP {
		if result.Status == store.AuthLocked {
			return nil, jsonhttp.Errorf(http.StatusConflict, kindLocked, "wrong OTP; the request is now locked after %d attempts — start pairing again", MaxOTPAttempts)
		}
		return nil, denied("wrong OTP (%d attempts left)", MaxOTPAttempts-attempts)
	}
	return api.ApproveResponse{
		OK: true, RequestID: result.ID, Status: "approved", Wallet: result.ResultWallet,
		Signature: result.Signature, KeyID: s.signKID,
		ApproverWallet: result.ApproverWallet, CreatedAt: result.CreatedAt.Unix(),
	}, nil
}

// approvalOf is the statement signed for an approved request. sessionHash
// is the SHA-256 of the minted session token (nil if none was minted).
func approvalOf(ar store.AuthRequest, sessionHash []byte) (authreq.Approval, error) {
	awaitHash, err := hex.DecodeString(string(ar.AwaitHash))
	if err != nil || len(awaitHash) != sha256.Size {
		return authreq.Approval{}, errors.New("auth request has a malformed await hash")
	}
	return authreq.Approval{
		RequestID: ar.ID, RequestType: ar.Type, RequestDetails: ar.Details,
		ChildPubkey: ar.ChildPubkey, BoxPubkey: ar.BoxPubkey,
		ApproverWallet: string(ar.ApproverWallet), CreatedAt: uint64(ar.CreatedAt.Unix()),
		AwaitTokenHash: awaitHash, ResultWallet: string(ar.ResultWallet), SessionHash: sessionHash,
	}, nil
}

// signApproval signs an approved request, binding the session it minted.
func (s *Server) signApproval(ar store.AuthRequest) ([]byte, error) {
	var sessionHash []byte
	if ar.SealedSession != nil {
		raw, err := s.sealer.Open(ar.SealedSession, sessionAAD(ar.ID))
		if err != nil {
			return nil, err
		}
		sessionHash = authreq.TokenSHA256(string(raw))
		clear(raw)
	}
	a, err := approvalOf(ar, sessionHash)
	if err != nil {
		return nil, err
	}
	return authreq.SignApproval(s.signKey, a)
}

// PairingKeysPath serves the public keys that verify approval signatures,
// as a JWKS-style document (RFC 7517, OKP keys per RFC 8037).
const PairingKeysPath = authreq.KeysPath

func (s *Server) pairingKeys(*http.Request) (any, error) {
	raw, err := authreq.MarshalKeySet([]authreq.PublicKey{{Key: s.signKey.Public().(ed25519.PublicKey)}})
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

// mintSession creates a session on w minted by the caller's session, seals
// its token into ar for a single delivery, and returns nothing else: the
// token leaves the server only through await.
func (s *Server) mintSession(ctx context.Context, q store.Queries, c *caller, ar *store.AuthRequest, w agentkeys.Wallet) error {
	now := s.now()
	expires := now.Add(s.ttl)
	if expires.After(c.session.ExpiresAt) {
		expires = c.session.ExpiresAt
	}
	tok := agentkeys.NewToken()
	if err := q.InsertSession(ctx, store.Session{TokenHash: tok.Hash(), Wallet: w, ParentHash: c.session.TokenHash, CreatedAt: now, ExpiresAt: expires}); err != nil {
		return err
	}
	sealed, err := s.sealer.Seal([]byte(tok.Reveal()), sessionAAD(ar.ID))
	if err != nil {
		return err
	}
	ar.SealedSession, ar.ResultWallet = sealed, w
	return nil
}

func sessionAAD(id string) []byte { return seal.AAD("agentkeys-authreq-session-v1", id) }

func (s *Server) approvePair(ctx context.Context, q store.Queries, c *caller, ar *store.AuthRequest, d authreq.Request, name string) error {
	scope, err := (&agentkeys.Scope{Services: d.RequestedScope.Services, ReadOnly: d.RequestedScope.ReadOnly}).Normalize()
	if err != nil {
		return badRequest("requested scope: %v", err)
	}
	if !scope.Within(c.scope) {
		return denied("the requested scope is wider than the approver's scope")
	}
	child := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindAgent, Parent: c.addr(), Scope: scope, CreatedAt: s.now()}
	if err := s.checkChildQuota(ctx, q, c.addr()); err != nil {
		return err
	}
	if err := q.InsertWallet(ctx, child); err != nil {
		return err
	}
	if name != "" {
		_, root, err := rootOf(ctx, q, child.Address)
		if err != nil {
			return err
		}
		if err := s.setName(ctx, q, root, child.Address, name); err != nil {
			return err
		}
	}
	if err := s.mintSession(ctx, q, c, ar, child.Address); err != nil {
		return err
	}
	return s.audit(ctx, q, c.addr(), child.Address, agentkeys.AuditWildcard, actionPairApprove, agentkeys.ResultOK)
}

func (s *Server) approveRecover(ctx context.Context, q store.Queries, c *caller, ar *store.AuthRequest, confirmMaster string) error {
	target, err := s.resolveIdentity(ctx, q, ar.IdentityType, ar.IdentityValue)
	if err != nil {
		var apiErr *jsonhttp.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
			// Same answer as a foreign wallet: no identity oracle.
			return denied("session does not own the wallet to recover")
		}
		return err
	}
	tw, owned, err := s.target(ctx, q, c, target)
	if err != nil {
		return err
	}
	if !owned {
		s.auditDenialTx(ctx, c.addr(), target, actionRecoverApprove)
		return denied("session does not own the wallet to recover")
	}
	if tw.TornDown {
		return notFound("the wallet to recover was torn down")
	}
	if tw.Kind == store.KindMaster && confirmMaster != string(target) {
		// The whole account, not an agent: a blanket "yes" does not do.
		// The request stays pending (this transaction rolls back).
		return jsonhttp.Errorf(http.StatusForbidden, kindMasterRecovery,
			"this request recovers master wallet %s (full control of the account), not an agent; approving it needs confirm_master_recovery set to that wallet", target)
	}
	if err := s.mintSession(ctx, q, c, ar, target); err != nil {
		return err
	}
	return s.audit(ctx, q, c.addr(), target, agentkeys.AuditWildcard, actionRecoverApprove, agentkeys.ResultOK)
}

func (s *Server) approveScopeChange(ctx context.Context, q store.Queries, c *caller, ar *store.AuthRequest, d authreq.Request) error {
	agent, err := agentkeys.ParseWallet(d.AgentID)
	if err != nil {
		return badRequest("agent_id: %v", err)
	}
	if agent == c.addr() {
		return badRequest("a session cannot approve a change of its own scope")
	}
	tw, owned, err := s.target(ctx, q, c, agent)
	if err != nil {
		return err
	}
	if !owned || tw.TornDown {
		return denied("session does not own agent %s", agent)
	}
	scope, err := (&agentkeys.Scope{Services: d.NewScope.Services, ReadOnly: d.NewScope.ReadOnly}).Normalize()
	if err != nil {
		return badRequest("new scope: %v", err)
	}
	if !scope.Within(c.scope) {
		return denied("the requested scope is wider than the approver's scope")
	}
	if err := q.SetScope(ctx, agent, scope); err != nil {
		return err
	}
	// A scope change can take access away: relying services re-validate.
	// (Watchers on every replica see it through the epoch poller.)
	if _, err := q.BumpRevocationEpoch(ctx); err != nil {
		return err
	}
	ar.ResultWallet = agent
	return s.audit(ctx, q, c.addr(), agent, agentkeys.AuditWildcard, actionScopeApprove, agentkeys.ResultOK)
}

// auditDenialTx records a denial decided inside a transaction that is about
// to roll back, so it is written outside it, after.
func (s *Server) auditDenialTx(ctx context.Context, owner, agent agentkeys.Wallet, action string) {
	go s.auditDenial(context.WithoutCancel(ctx), owner, agent, agentkeys.AuditWildcard, action, agentkeys.ResultDenied)
}

// denyAuthRequest lets the master refuse a request outright.
func (s *Server) denyAuthRequest(r *http.Request, c *caller) (any, error) {
	ctx := r.Context()
	var req api.DenyRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	var (
		id      string
		pairing int64
	)
	err := s.store.Tx(ctx, func(q store.Queries) error {
		ar, err := lookupAuthRequest(ctx, q, req.PairCode, req.RequestID)
		if err != nil {
			return err
		}
		if err := s.checkPending(ar, c); err != nil {
			return err
		}
		ar.Status, ar.ApproverWallet, ar.DecidedAt = store.AuthDenied, c.addr(), s.now()
		id = ar.ID
		if err := q.UpdateAuthRequest(ctx, ar); err != nil {
			return err
		}
		if err := bumpPairing(ctx, q, &pairing); err != nil {
			return err
		}
		return s.audit(ctx, q, c.addr(), c.addr(), agentkeys.AuditWildcard, actionAuthDeny, agentkeys.ResultOK)
	})
	if err != nil {
		return nil, err
	}
	s.notify(id)
	s.pairings.observe(pairing)
	return api.DenyResponse{OK: true, RequestID: id, Status: "denied"}, nil
}

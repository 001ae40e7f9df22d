package backend

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Pairing defaults.
const (
	DefaultAuthRequestTTL = 5 * time.Minute
	DefaultAwaitWindow    = 25 * time.Second
	// MaxOTPAttempts wrong OTPs lock a request (RFC 8628 §5.1 style).
	MaxOTPAttempts = 5
)

// Audit actions of the pairing flows.
const (
	actionPairApprove    = "pair_approve"
	actionRecoverApprove = "recover_approve"
	actionScopeApprove   = "scope_change_approve"
	actionAuthOpen       = agentkeys.ActionAuthRequestOpen
	actionAuthDeny       = "auth_request_deny"
	actionAuthOTP        = "auth_request_otp"
	actionAuthDelivered  = "auth_request_delivered"
	actionLink           = "identity_link"
	resultLocked         = "LOCKED"
	resultBadOTP         = "BAD_OTP"
)

const kindLocked = "LOCKED"

// kindMasterRecovery refuses an approval that would hand a master wallet's
// session to a new machine without the approver's explicit confirmation.
const kindMasterRecovery = "MASTER_RECOVERY_UNCONFIRMED"

// supportedRequests are the request types this backend can act on.
var supportedRequests = map[string]bool{authreq.TypePair: true, authreq.TypeRecover: true, authreq.TypeScopeChange: true}

// openAuthRequest is called by a daemon (no session yet). It returns the
// OTP and pair code to show the human and an await token that only the
// opener holds; the server keeps hashes of both.
func (s *Server) openAuthRequest(r *http.Request) (any, error) {
	if err := s.limitIP(r, s.openLimit); err != nil {
		return nil, err
	}
	var req api.OpenAuthRequestRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	pub, err := base64.StdEncoding.DecodeString(req.ChildPubkey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, badRequest("child_pubkey must be a base64 public key (32 bytes)")
	}
	var box []byte
	if req.BoxPubkey != "" {
		box, err = base64.StdEncoding.DecodeString(req.BoxPubkey)
		if err == nil {
			_, err = authreq.ParseBoxPublicKey(box)
		}
		if err != nil {
			return nil, badRequest("box_pubkey must be a standard base64 X25519 public key (32 bytes)")
		}
	}
	details, err := base64.StdEncoding.DecodeString(req.RequestDetails)
	if err != nil {
		return nil, badRequest("request_details must be standard base64")
	}
	if !supportedRequests[req.RequestType] {
		return nil, badRequest("request_type %q is not supported (want Pair, Recover or ScopeChange)", truncateStr(req.RequestType))
	}
	details2, err := authreq.Decode(req.RequestType, details)
	if err != nil {
		return nil, badRequest("request_details: %v", err)
	}
	var parent agentkeys.Wallet
	if req.ParentWallet != "" {
		if parent, err = parseWalletField("parent_wallet", req.ParentWallet); err != nil {
			return nil, err
		}
		// Anyone may name any master here, and each open writes into
		// that master's log: bound it per master, whatever the address.
		if err := s.limitParent(string(parent)); err != nil {
			return nil, err
		}
	}
	idType, idValue := "", ""
	if req.RequestType == authreq.TypeRecover {
		id, err := agentkeys.ParseIdentityAs(details2.AgentIdentity.Kind(), details2.AgentIdentity.Value)
		if err != nil {
			return nil, badRequest("request_details: %v", err)
		}
		idType, idValue = string(id.Kind), id.Value
		if req.IdentityType != "" {
			if given, err := agentkeys.ParseIdentityAs(agentkeys.IdentityKind(req.IdentityType), req.IdentityValue); err != nil || given != id {
				return nil, badRequest("identity_type/identity_value disagree with the identity in request_details")
			}
		}
	} else if req.IdentityType != "" || req.IdentityValue != "" {
		return nil, badRequest("identity_type and identity_value apply only to Recover requests")
	}

	nonce := make([]byte, 32)
	rand.Read(nonce)
	otp := authreq.OTP(nonce, details)
	await := agentkeys.NewToken()
	now := s.now()
	ar := store.AuthRequest{
		ID: agentkeys.NewToken().Reveal(), Type: req.RequestType, Details: details, ChildPubkey: pub, BoxPubkey: box,
		ParentWallet: parent, IdentityType: idType, IdentityValue: idValue, AwaitHash: await.Hash(),
		Status: store.AuthPending, CreatedAt: now, ExpiresAt: now.Add(s.authTTL),
	}
	ar.OTPHash = otpHash(ar.ID, otp)
	for attempt := 0; ; attempt++ {
		ar.PairCode = authreq.NewPairCode()
		err = s.store.Tx(r.Context(), func(q store.Queries) error {
			if err := s.checkPendingQuota(r.Context(), q, parent); err != nil {
				return err
			}
			if err := q.InsertAuthRequest(r.Context(), ar); err != nil {
				return err
			}
			if parent == "" {
				return nil
			}
			// A request bound to a master shows up in that master's audit
			// (the opener has no wallet yet), so unsolicited requests are
			// visible; the row says that nobody vouched for it.
			_, err := q.AppendAudit(r.Context(), agentkeys.AuditEvent{
				Time: now, Agent: parent, Service: agentkeys.AuditWildcard, Action: actionAuthOpen,
				Result:   agentkeys.ResultOK,
				Detail:   agentkeys.DetailUnverified + req.RequestType + " request opened by an unauthenticated caller",
				ClientIP: clientip.FromContext(r.Context()),
			})
			return err
		})
		if !errors.Is(err, store.ErrConflict) || attempt == 5 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	nh := sha256.Sum256(nonce)
	return api.OpenAuthRequestResponse{
		ID: ar.ID, OTP: otp, PairCode: authreq.FormatPairCode(ar.PairCode),
		TTLSeconds: int64(s.authTTL / time.Second), ExpiresAt: ar.ExpiresAt.Unix(),
		NonceHash: base64.StdEncoding.EncodeToString(nh[:]), AwaitToken: await.Reveal(),
	}, nil
}

func otpHash(id, otp string) string {
	return string(agentkeys.HashSecret("agentkeys-otp\x00" + id + "\x00" + otp))
}

// lookupAuthRequest finds a request by pair code or id.
func lookupAuthRequest(ctx context.Context, q store.Queries, pairCode, id string) (store.AuthRequest, error) {
	var (
		ar  store.AuthRequest
		err error
	)
	switch {
	case pairCode != "":
		code, ok := authreq.NormalizePairCode(pairCode)
		if !ok {
			return ar, notFound("no auth request found for this pair code")
		}
		ar, err = q.AuthRequestByPairCode(ctx, code)
	case id != "":
		ar, err = q.AuthRequest(ctx, id)
	default:
		return ar, badRequest("pair_code (or request_id) required")
	}
	if errors.Is(err, store.ErrNotFound) {
		return ar, notFound("no auth request found for this pair code")
	}
	return ar, err
}

// checkPending enforces expiry, state and binding for a master acting on a
// request.
func (s *Server) checkPending(ar store.AuthRequest, c *caller) error {
	if !s.now().Before(ar.ExpiresAt) {
		return jsonhttp.Errorf(http.StatusGone, KindExpired, "auth request expired")
	}
	switch ar.Status {
	case store.AuthPending:
	case store.AuthLocked:
		return jsonhttp.Errorf(http.StatusConflict, kindLocked, "auth request locked after %d wrong OTPs; start pairing again", MaxOTPAttempts)
	default:
		return jsonhttp.Errorf(http.StatusConflict, KindConflict, "auth request already %s", ar.Status)
	}
	if ar.ParentWallet != "" && ar.ParentWallet != c.addr() {
		return denied("this auth request is bound to another wallet")
	}
	return nil
}

// fetchAuthRequest shows a master what a pending request asks for. It never
// returns the OTP: the master must type the one the daemon shows.
func (s *Server) fetchAuthRequest(r *http.Request, c *caller) (any, error) {
	if err := s.limitCaller(c, s.approveLimit); err != nil {
		return nil, err
	}
	ar, err := lookupAuthRequest(r.Context(), s.store, r.URL.Query().Get("pair_code"), r.URL.Query().Get("request_id"))
	if err != nil {
		return nil, err
	}
	if err := s.checkPending(ar, c); err != nil {
		return nil, err
	}
	d, err := authreq.Decode(ar.Type, ar.Details)
	if err != nil {
		return nil, err // validated at open; a failure here is internal
	}
	out := api.FetchAuthRequestResponse{
		ID: ar.ID, PairCode: authreq.FormatPairCode(ar.PairCode), RequestType: ar.Type,
		RequestDetails: base64.StdEncoding.EncodeToString(ar.Details), Description: d.Describe(),
		IdentityType: ar.IdentityType, IdentityValue: ar.IdentityValue,
		ChildPubkey: base64.StdEncoding.EncodeToString(ar.ChildPubkey), Status: string(ar.Status),
		CreatedAt: ar.CreatedAt.Unix(), ExpiresAt: ar.ExpiresAt.Unix(), OTPAttemptsLeft: MaxOTPAttempts - ar.FailedAttempts,
	}
	switch ar.Type {
	case authreq.TypePair:
		out.RequestedScope, _ = (&agentkeys.Scope{Services: d.RequestedScope.Services, ReadOnly: d.RequestedScope.ReadOnly}).Normalize()
	case authreq.TypeRecover:
		// Say what is really being recovered: a request naming a master
		// must not read as an agent's.
		if target, err := s.resolveIdentity(r.Context(), s.store, ar.IdentityType, ar.IdentityValue); err == nil {
			if tw, owned, err := s.target(r.Context(), s.store, c, target); err == nil && owned {
				out.TargetWallet, out.TargetKind = target, string(tw.Kind)
				out.Description = describeRecover(tw, ar.IdentityType, ar.IdentityValue)
			}
		}
	case authreq.TypeScopeChange:
		out.AgentID = d.AgentID
		out.RequestedScope, _ = (&agentkeys.Scope{Services: d.NewScope.Services, ReadOnly: d.NewScope.ReadOnly}).Normalize()
		if agent, err := agentkeys.ParseWallet(d.AgentID); err == nil {
			if tw, owned, err := s.target(r.Context(), s.store, c, agent); err == nil && owned {
				out.CurrentScope = tw.Scope
			}
		}
	}
	return out, nil
}

func describeRecover(tw store.Wallet, idType, idValue string) string {
	if tw.Kind == store.KindMaster {
		return "Recover MASTER wallet " + string(tw.Address) + " (" + idType + " " + idValue + ") onto a new machine: it gets a full session of your account"
	}
	return "Recover agent " + string(tw.Address) + " (" + idType + " " + idValue + ") onto a new daemon"
}

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
		switch ar.Type {
		case authreq.TypePair:
			err = s.approvePair(ctx, q, c, &ar, d)
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

func (s *Server) approvePair(ctx context.Context, q store.Queries, c *caller, ar *store.AuthRequest, d authreq.Request) error {
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

// awaitAuthDecision long-polls for the decision. Only the opener can call
// it: it must present the await token from open as its bearer. An approved
// session is handed out exactly once and then wiped from the server.
func (s *Server) awaitAuthDecision(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.URL.Query().Get("request_id")
	if id == "" {
		return nil, badRequest("request_id required")
	}
	tok, err := bearer(r)
	if err != nil {
		return nil, unauthorized("await needs the await_token returned by open as its bearer")
	}
	done, err := s.startLongPoll(r)
	if err != nil {
		return nil, err
	}
	defer done()
	deadline := time.NewTimer(s.awaitWindow)
	defer deadline.Stop()
	for {
		// Subscribe before reading, so a decision committed after the read
		// still wakes this poll.
		_, moved := s.pairings.since()
		wake := s.waiter(id)
		ar, err := s.store.AuthRequest(ctx, id) // a plain read: no transaction while waiting
		left, err := s.awaitable(ar, err, tok)
		if err != nil {
			s.unwait(id, wake)
			return nil, err
		}
		if left <= 0 {
			// Decided: collect it (once) in a transaction.
			out, done, err := s.awaitOnce(ctx, id, tok)
			if err != nil || done {
				s.unwait(id, wake)
				return out, err
			}
			left = time.Second // raced with nothing: look again shortly
		}
		expiry := time.NewTimer(left)
		select {
		case <-wake:
		case <-moved:
		case <-expiry.C:
		case <-deadline.C:
			expiry.Stop()
			s.unwait(id, wake)
			return api.AwaitResponse{Status: "timeout", RequestID: id, Decision: api.Null[struct{}]()}, nil
		case <-ctx.Done():
			expiry.Stop()
			s.unwait(id, wake)
			return nil, ctx.Err()
		}
		expiry.Stop()
		s.unwait(id, wake)
	}
}

// awaitable checks a plainly read request against the await token: an
// error for an unknown, foreign, expired or already collected request; 0
// if it is decided (collect it); otherwise how long it stays pending.
func (s *Server) awaitable(ar store.AuthRequest, err error, tok agentkeys.Token) (time.Duration, error) {
	if errors.Is(err, store.ErrNotFound) {
		return 0, notFound("auth request not found")
	}
	if err != nil {
		return 0, err
	}
	if !ar.AwaitHash.Equal(tok.Hash()) {
		return 0, unauthorized("await token does not match this request")
	}
	switch ar.Status {
	case store.AuthPending:
		left := ar.ExpiresAt.Sub(s.now())
		if left <= 0 {
			return 0, jsonhttp.Errorf(http.StatusGone, KindExpired, "auth request expired before approval")
		}
		return left, nil
	case store.AuthDelivered:
		return 0, jsonhttp.Errorf(http.StatusConflict, KindConflict, "auth request already awaited")
	}
	return 0, nil
}

func (s *Server) awaitOnce(ctx context.Context, id string, tok agentkeys.Token) (any, bool, error) {
	var out any
	done := false
	err := s.store.Tx(ctx, func(q store.Queries) error {
		ar, err := q.AuthRequest(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("auth request not found")
		}
		if err != nil {
			return err
		}
		if !ar.AwaitHash.Equal(tok.Hash()) {
			return unauthorized("await token does not match this request")
		}
		switch ar.Status {
		case store.AuthPending:
			if !s.now().Before(ar.ExpiresAt) {
				return jsonhttp.Errorf(http.StatusGone, KindExpired, "auth request expired before approval")
			}
			return nil
		case store.AuthDenied, store.AuthLocked:
			done = true
			out = api.AwaitResponse{Status: string(ar.Status), RequestID: id, Approved: new(false)}
			return nil
		case store.AuthDelivered:
			return jsonhttp.Errorf(http.StatusConflict, KindConflict, "auth request already awaited")
		}
		done = true
		resp := api.AwaitResponse{
			Status: "approved", RequestID: id, Approved: new(true), Wallet: ar.ResultWallet,
			Signature: base64.StdEncoding.EncodeToString(ar.Signature), KeyID: s.signKID,
			ApproverWallet: ar.ApproverWallet, CreatedAt: ar.CreatedAt.Unix(),
		}
		if ar.BoxPubkey == nil {
			resp.Session = api.Null[api.AwaitSession]()
		}
		if ar.SealedSession != nil {
			raw, err := s.sealer.Open(ar.SealedSession, sessionAAD(ar.ID))
			if err != nil {
				return err
			}
			st, err := agentkeys.ParseToken(string(raw))
			if err != nil {
				return err
			}
			sess, err := q.Session(ctx, st.Hash())
			if err != nil {
				return err
			}
			session := api.AwaitSession{Token: st.Reveal(), Wallet: sess.Wallet, ExpiresAt: sess.ExpiresAt.Unix()}
			if ar.BoxPubkey == nil {
				resp.Session = api.Some(session)
			} else {
				// Sealed to the opener's key: whoever relays or sees this
				// answer holds no usable bearer.
				plain, err := json.Marshal(session)
				if err != nil {
					return err
				}
				sealed, err := authreq.SealTo(ar.BoxPubkey, ar.ID, plain)
				clear(plain)
				if err != nil {
					return err
				}
				resp.SealedSession = base64.StdEncoding.EncodeToString(sealed)
			}
		}
		ar.Status, ar.SealedSession = store.AuthDelivered, nil
		if err := q.UpdateAuthRequest(ctx, ar); err != nil {
			return err
		}
		if ar.ApproverWallet != "" {
			if err := s.audit(ctx, q, ar.ApproverWallet, ar.ResultWallet, agentkeys.AuditWildcard, actionAuthDelivered, agentkeys.ResultOK); err != nil {
				return err
			}
		}
		out = resp
		return nil
	})
	return out, done, err
}

// waiter registers interest in a request's decision on this replica.
// Replicas that do not see the approval fall back to polling.
func (s *Server) waiter(id string) chan struct{} {
	ch := make(chan struct{})
	s.waitMu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.waitMu.Unlock()
	return ch
}

func (s *Server) unwait(id string, ch chan struct{}) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	list := s.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = list
	}
}

func (s *Server) notify(id string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for _, ch := range s.waiters[id] {
		close(ch)
	}
	delete(s.waiters, id)
}

// recoverSession is the original's proof-free recovery; it now refuses and
// points at the approval flow.
func (s *Server) recoverSession(r *http.Request) (any, error) {
	var req api.RecoverSessionRequest
	if err := decode(r, &req, smallBody); err != nil {
		return nil, err
	}
	return nil, badRequest("recovery by %q needs a verified factor this backend does not offer; recover through master approval (a Recover auth request approved by a live session of the owning wallet)", truncateStr(req.Method))
}

func (s *Server) limitIP(r *http.Request, l *ratelimit.Limiter) error {
	if ok, wait := l.Allow(ratelimit.ClientIP(r)); !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many requests; retry later")
		e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
		return e
	}
	return nil
}

func (s *Server) limitCaller(c *caller, l *ratelimit.Limiter) error {
	if ok, wait := l.Allow(string(c.session.TokenHash)); !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many attempts; retry later")
		e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
		return e
	}
	return nil
}

func truncateStr(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

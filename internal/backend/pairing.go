package backend

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
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
	}
	// An agent asking for more scope opens its ScopeChange with its own
	// session: the request is then bound to the agent's parent (the master
	// who can approve it, and who sees it in GET /auth-request/pending),
	// and the audit row names the agent as the verified opener.
	var opener *caller
	if r.Header.Get("Authorization") != "" {
		if req.RequestType != authreq.TypeScopeChange {
			return nil, badRequest("only a ScopeChange request is opened with a session (Pair and Recover are opened by a daemon without one)")
		}
		if opener, err = s.authenticate(r); err != nil {
			return nil, err
		}
		if err := s.limitWallet(opener); err != nil {
			return nil, err
		}
		if string(opener.addr()) != details2.AgentID {
			return nil, denied("a session can ask to change only its own scope")
		}
		if opener.wallet.Parent == "" {
			return nil, badRequest("a master's scope is not changed by request")
		}
		if parent != "" && parent != opener.wallet.Parent {
			return nil, badRequest("parent_wallet is not this agent's parent")
		}
		parent = opener.wallet.Parent
	}
	if parent != "" {
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
			ev := agentkeys.AuditEvent{
				Time: now, Agent: parent, Service: agentkeys.AuditWildcard, Action: actionAuthOpen,
				Result:   agentkeys.ResultOK,
				Detail:   agentkeys.DetailUnverified + req.RequestType + " request opened by an unauthenticated caller",
				ClientIP: clientip.FromContext(r.Context()),
			}
			if opener != nil {
				ev.Owner, ev.Agent, ev.Detail = parent, opener.addr(), req.RequestType+" request opened by the agent's own session"
			}
			_, err := q.AppendAudit(r.Context(), ev)
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
	return s.describeAuthRequest(r.Context(), c, ar)
}

// describeAuthRequest is what a master sees of a pending request (never
// its OTP).
func (s *Server) describeAuthRequest(ctx context.Context, c *caller, ar store.AuthRequest) (api.FetchAuthRequestResponse, error) {
	d, err := authreq.Decode(ar.Type, ar.Details)
	if err != nil {
		return api.FetchAuthRequestResponse{}, err // validated at open; a failure here is internal
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
		if target, err := s.resolveIdentity(ctx, s.store, ar.IdentityType, ar.IdentityValue); err == nil {
			if tw, owned, err := s.target(ctx, s.store, c, target); err == nil && owned {
				out.TargetWallet, out.TargetKind = target, string(tw.Kind)
				out.Description = describeRecover(tw, ar.IdentityType, ar.IdentityValue)
			}
		}
	case authreq.TypeScopeChange:
		out.AgentID = d.AgentID
		out.RequestedScope, _ = (&agentkeys.Scope{Services: d.NewScope.Services, ReadOnly: d.NewScope.ReadOnly}).Normalize()
		if agent, err := agentkeys.ParseWallet(d.AgentID); err == nil {
			if tw, owned, err := s.target(ctx, s.store, c, agent); err == nil && owned {
				out.CurrentScope = tw.Scope
			}
		}
	}
	return out, nil
}

// maxPendingListed bounds GET /auth-request/pending (the per-master
// pending quota keeps real lists far shorter).
const maxPendingListed = 100

// listPendingAuthRequests shows a master the pending requests bound to its
// wallet (pair and recover requests naming it, scope changes its agents
// asked for), oldest first, without their OTPs.
func (s *Server) listPendingAuthRequests(r *http.Request, c *caller) (any, error) {
	if err := s.limitCaller(c, s.approveLimit); err != nil {
		return nil, err
	}
	list, err := s.store.PendingAuthRequests(r.Context(), c.addr(), s.now(), maxPendingListed)
	if err != nil {
		return nil, err
	}
	out := api.PendingAuthRequestsResponse{Requests: []api.FetchAuthRequestResponse{}}
	for _, ar := range list {
		d, err := s.describeAuthRequest(r.Context(), c, ar)
		if err != nil {
			return nil, err
		}
		out.Requests = append(out.Requests, d)
	}
	return out, nil
}

func describeRecover(tw store.Wallet, idType, idValue string) string {
	if tw.Kind == store.KindMaster {
		return "Recover MASTER wallet " + string(tw.Address) + " (" + idType + " " + idValue + ") onto a new machine: it gets a full session of your account"
	}
	return "Recover agent " + string(tw.Address) + " (" + idType + " " + idValue + ") onto a new daemon"
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

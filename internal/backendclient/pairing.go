package backendclient

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
)

// OpenRequest asks the backend to open an auth request (a daemon does this
// before it has any session).
type OpenRequest struct {
	ChildPubkey    []byte
	RequestType    string
	RequestDetails []byte // canonical CBOR (authreq.Encode)
	ParentWallet   agentkeys.Wallet
	IdentityType   string
	IdentityValue  string
	// BoxKey, when set, makes the backend seal the approved session to
	// its public half (sent as box_pubkey); AwaitAuthDecision opens it.
	BoxKey *ecdh.PrivateKey
	// PinnedKeyIDs, when set, are the only approval-signing keys (by RFC
	// 7638 thumbprint) trusted, whatever else the backend publishes.
	PinnedKeyIDs []string
	// Session, set only for a ScopeChange, is the agent's own session: the
	// backend then binds the request to the agent's parent.
	Session agentkeys.Token
}

// Opened is the answer to OpenAuthRequest. OTP and PairCode are shown to
// the human; AwaitToken is the opener's proof and must stay secret. It
// also remembers what was asked and the backend's published signing keys,
// so AwaitAuthDecision can verify the approval.
type Opened struct {
	ID         string
	OTP        string
	PairCode   string
	TTL        time.Duration
	ExpiresAt  time.Time
	AwaitToken agentkeys.Token

	req  OpenRequest
	keys []authreq.PublicKey
}

// String and GoString keep the request's private box key out of any
// formatted output.
func (o Opened) String() string   { return "auth request " + o.PairCode }
func (o Opened) GoString() string { return o.String() }

// ErrUnverifiedApproval is wrapped by AwaitAuthDecision errors when the
// backend's answer does not carry a valid approval signature over what was
// asked and what was delivered: the session is refused.
var ErrUnverifiedApproval = errors.New("approval not verified")

// PairingKeys fetches the backend's approval-signing public keys.
func (c *Client) PairingKeys(ctx context.Context) ([]authreq.PublicKey, error) {
	var raw json.RawMessage
	if err := c.do(ctx, "fetch pairing keys", http.MethodGet, authreq.KeysPath, nil, "", nil, &raw); err != nil {
		return nil, err
	}
	keys, err := authreq.ParseKeySet(raw)
	if err != nil {
		return nil, transportError("fetch pairing keys", "", err)
	}
	return keys, nil
}

// OpenAuthRequest fetches the backend's pairing keys, then opens a pair,
// recover or scope-change request.
func (c *Client) OpenAuthRequest(ctx context.Context, r OpenRequest) (Opened, error) {
	keys, err := c.PairingKeys(ctx)
	if err != nil {
		return Opened{}, err
	}
	if len(r.PinnedKeyIDs) > 0 {
		keys = slices.DeleteFunc(keys, func(k authreq.PublicKey) bool { return !slices.Contains(r.PinnedKeyIDs, k.ID) })
		if len(keys) == 0 {
			return Opened{}, fmt.Errorf("open auth request: %w: the backend does not publish the pinned pairing key", ErrUnverifiedApproval)
		}
	}
	in := api.OpenAuthRequestRequest{
		ChildPubkey:    base64.StdEncoding.EncodeToString(r.ChildPubkey),
		RequestType:    r.RequestType,
		RequestDetails: base64.StdEncoding.EncodeToString(r.RequestDetails),
		ParentWallet:   string(r.ParentWallet),
	}
	if r.BoxKey != nil {
		in.BoxPubkey = base64.StdEncoding.EncodeToString(r.BoxKey.PublicKey().Bytes())
	}
	if r.IdentityType != "" {
		in.IdentityType, in.IdentityValue = r.IdentityType, r.IdentityValue
	}
	var out api.OpenAuthRequestResponse
	if err := c.do(ctx, "open auth request", http.MethodPost, "/auth-request/open", nil, r.Session, in, &out); err != nil {
		return Opened{}, err
	}
	tok, err := agentkeys.ParseToken(out.AwaitToken)
	if err != nil {
		return Opened{}, transportError("open auth request", "", errors.New("backend returned a malformed await token"))
	}
	return Opened{ID: out.ID, OTP: out.OTP, PairCode: out.PairCode, TTL: time.Duration(out.TTLSeconds) * time.Second,
		ExpiresAt: time.Unix(out.ExpiresAt, 0), AwaitToken: tok, req: r, keys: keys}, nil
}

// PendingRequest is what a master sees before approving.
type PendingRequest = api.FetchAuthRequestResponse

// FetchAuthRequest shows a pending request by its pair code.
func (c *Client) FetchAuthRequest(ctx context.Context, tok agentkeys.Token, pairCode string) (PendingRequest, error) {
	var out PendingRequest
	err := c.do(ctx, "fetch auth request", http.MethodGet, "/auth-request/fetch", url.Values{"pair_code": {pairCode}}, tok, nil, &out)
	return out, err
}

// PendingAuthRequests lists the pending requests bound to the caller's
// wallet (what `agentkeys pending` shows), oldest first.
func (c *Client) PendingAuthRequests(ctx context.Context, tok agentkeys.Token) ([]PendingRequest, error) {
	var out api.PendingAuthRequestsResponse
	err := c.do(ctx, "list pending auth requests", http.MethodGet, "/auth-request/pending", nil, tok, nil, &out)
	return out.Requests, err
}

// Approval is the result of ApproveAuthRequest. Signature is the
// backend's Ed25519 signature over the approval (the same one the opener
// receives and verifies), by the key KeyID names.
type Approval struct {
	RequestID string           `json:"request_id"`
	Status    string           `json:"status"`
	Wallet    agentkeys.Wallet `json:"wallet"`
	Signature []byte           `json:"signature"`
	KeyID     string           `json:"key_id"`
}

// ApproveAuthRequest approves a request with the OTP the daemon shows.
func (c *Client) ApproveAuthRequest(ctx context.Context, tok agentkeys.Token, pairCode, otp string) (Approval, error) {
	return c.approve(ctx, tok, api.ApproveRequest{PairCode: pairCode, OTP: otp})
}

func (c *Client) approve(ctx context.Context, tok agentkeys.Token, in api.ApproveRequest) (Approval, error) {
	var out api.ApproveResponse
	err := c.do(ctx, "approve auth request", http.MethodPost, "/auth-request/approve", nil, tok, in, &out)
	return Approval{RequestID: out.RequestID, Status: out.Status, Wallet: out.Wallet, Signature: out.Signature, KeyID: out.KeyID}, err
}

// ApproveMasterRecovery approves a Recover request that hands out a
// session of the master wallet master: the backend refuses such an
// approval unless it repeats that wallet.
func (c *Client) ApproveMasterRecovery(ctx context.Context, tok agentkeys.Token, pairCode, otp string, master agentkeys.Wallet) (Approval, error) {
	return c.approve(ctx, tok, api.ApproveRequest{PairCode: pairCode, OTP: otp, ConfirmMasterRecovery: string(master)})
}

// DenyAuthRequest refuses a request.
func (c *Client) DenyAuthRequest(ctx context.Context, tok agentkeys.Token, pairCode string) error {
	return c.do(ctx, "deny auth request", http.MethodPost, "/auth-request/deny", nil, tok, api.DenyRequest{PairCode: pairCode}, nil)
}

// Decision is the outcome of an auth request as its opener sees it.
type Decision struct {
	// Status is "approved", "denied", "locked" or "timeout" (the server's
	// long-poll window ended; ask again).
	Status  string
	Wallet  agentkeys.Wallet
	Session *Session // set for approved Pair and Recover requests
	// For approvals: who approved, the verified signature and its key.
	ApproverWallet agentkeys.Wallet
	Signature      []byte
	KeyID          string
}

// AwaitAuthDecision long-polls once for the decision (the server answers
// within its window, ~25 s). Call it again on "timeout".
//
// An approval is accepted only if its signature verifies, under a key the
// backend published before the request was opened, over what was asked
// (type, details, keys, this opener's await token), who approved it (the
// bound parent, if any) and the session delivered; a sealed session is
// opened with the request's box key. Otherwise the error wraps
// ErrUnverifiedApproval.
func (c *Client) AwaitAuthDecision(ctx context.Context, o Opened) (Decision, error) {
	var out api.AwaitResponse
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout+longPoll)
		defer cancel()
	}
	if err := c.do(ctx, "await auth decision", http.MethodGet, "/auth-request/await", url.Values{"request_id": {o.ID}}, o.AwaitToken, nil, &out); err != nil {
		return Decision{}, err
	}
	d := Decision{Status: out.Status, Wallet: out.Wallet}
	if out.Status != "approved" {
		return d, nil
	}
	bad := func(format string, args ...any) (Decision, error) {
		return Decision{}, fmt.Errorf("await auth decision: %w: %s", ErrUnverifiedApproval, fmt.Sprintf(format, args...))
	}
	sessObj := out.Session.Value
	switch {
	case out.SealedSession != "":
		blob, err := base64.StdEncoding.DecodeString(out.SealedSession)
		if err != nil {
			return bad("sealed_session is not standard base64")
		}
		plain, err := authreq.OpenSealed(o.req.BoxKey, o.ID, blob)
		if err != nil {
			return bad("%v", err)
		}
		sessObj = new(api.AwaitSession)
		err = json.Unmarshal(plain, sessObj)
		clear(plain)
		if err != nil {
			return bad("the sealed session is malformed")
		}
	case o.req.BoxKey != nil && sessObj != nil:
		return bad("the session came in clear although this request asked for it sealed")
	}
	var sessionHash []byte
	if sessObj != nil {
		s, err := sessionFrom("await auth decision", api.SessionResponse{Session: sessObj.Token, Wallet: sessObj.Wallet, ExpiresAt: sessObj.ExpiresAt})
		if err != nil {
			return bad("the delivered session is malformed")
		}
		if s.Wallet != out.Wallet {
			return bad("the session is for another wallet than the approval names")
		}
		d.Session = &s
		sessionHash = authreq.TokenSHA256(s.Token.Reveal())
	}
	sig, err := base64.StdEncoding.DecodeString(out.Signature)
	if err != nil || out.Signature == "" {
		return bad("the backend sent no valid signature")
	}
	if o.req.ParentWallet != "" && out.ApproverWallet != o.req.ParentWallet {
		return bad("approved by %s, not by the bound master %s", out.ApproverWallet, o.req.ParentWallet)
	}
	if out.CreatedAt < 0 {
		return bad("malformed created_at")
	}
	keys := o.keys
	if len(keys) == 0 {
		if keys, err = c.PairingKeys(ctx); err != nil {
			return Decision{}, err
		}
	}
	a := authreq.Approval{
		RequestID: o.ID, RequestType: o.req.RequestType, RequestDetails: o.req.RequestDetails,
		ChildPubkey: o.req.ChildPubkey, ApproverWallet: string(out.ApproverWallet), CreatedAt: uint64(out.CreatedAt),
		AwaitTokenHash: authreq.TokenSHA256(o.AwaitToken.Reveal()), ResultWallet: string(out.Wallet), SessionHash: sessionHash,
	}
	if o.req.BoxKey != nil {
		a.BoxPubkey = o.req.BoxKey.PublicKey().Bytes()
	}
	if err := authreq.VerifyApproval(keys, out.KeyID, a, sig); err != nil {
		return bad("%v", err)
	}
	d.ApproverWallet, d.Signature, d.KeyID = out.ApproverWallet, sig, out.KeyID
	return d, nil
}

// longPoll is the extra time a long-poll call may take beyond the normal
// request timeout.
const longPoll = 35 * time.Second

// LinkIdentity names wallet (or the caller's own, if empty) by an alias,
// e-mail or ENS name.
func (c *Client) LinkIdentity(ctx context.Context, tok agentkeys.Token, typ, value string, wallet agentkeys.Wallet) error {
	in := api.LinkIdentityRequest{IdentityType: typ, IdentityValue: value, WalletAddress: string(wallet)}
	return c.do(ctx, "link identity", http.MethodPost, "/identity/link", nil, tok, in, nil)
}

// ResolveIdentity returns the wallet a name points at (typ: alias, email,
// ens or wallet).
func (c *Client) ResolveIdentity(ctx context.Context, typ, value string) (agentkeys.Wallet, error) {
	r, err := c.ResolveIdentityLink(ctx, typ, value)
	return r.Wallet, err
}

// ResolvedIdentity is what a name points at, and whether the backend has
// proof that the wallet's holder controls the name (a backend that does not
// say is taken to have none).
type ResolvedIdentity struct {
	Wallet   agentkeys.Wallet
	Verified bool
}

// ResolveIdentityLink is ResolveIdentity with the verified flag.
func (c *Client) ResolveIdentityLink(ctx context.Context, typ, value string) (ResolvedIdentity, error) {
	var out api.ResolveIdentityResponse
	err := c.do(ctx, "resolve identity", http.MethodGet, "/identity/resolve", url.Values{"identity_type": {typ}, "identity_value": {value}}, "", nil, &out)
	return ResolvedIdentity{Wallet: out.WalletAddress, Verified: out.Verified}, err
}

// ProvisionInbox creates a mock inbox for agent (dev backends only).
func (c *Client) ProvisionInbox(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet) (string, error) {
	var out api.InboxProvisionResponse
	err := c.do(ctx, "provision inbox", http.MethodPost, "/mock/inbox/provision", nil, tok, api.InboxProvisionRequest{AgentID: string(agent)}, &out)
	return out.Address, err
}

// ListInboxes lists agent's mock inboxes.
func (c *Client) ListInboxes(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet) ([]string, error) {
	var out []string
	err := c.do(ctx, "list inboxes", http.MethodGet, "/mock/inbox/list", url.Values{"agent_id": {string(agent)}}, tok, nil, &out)
	return out, err
}

// InboxMessage is one mock inbox message.
type InboxMessage = api.InboxMessage

// InboxMessages lists messages received at or after since, newest first.
func (c *Client) InboxMessages(ctx context.Context, tok agentkeys.Token, address string, since time.Time) ([]InboxMessage, error) {
	q := url.Values{"address": {address}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	var out []InboxMessage
	err := c.do(ctx, "inbox messages", http.MethodGet, "/mock/inbox/messages", q, tok, nil, &out)
	return out, err
}

// DeliverMail puts a message into a mock inbox (what a mail provider does).
func (c *Client) DeliverMail(ctx context.Context, address, from, subject, body string) error {
	return c.do(ctx, "deliver mail", http.MethodPost, "/mock/inbox/deliver", nil, "",
		api.DeliverMailRequest{Address: address, From: from, Subject: subject, Body: body}, nil)
}

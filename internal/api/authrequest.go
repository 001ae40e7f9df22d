package api

import (
	"encoding/json"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Auth request routes: a daemon opens a request and awaits the decision; a
// master fetches, approves or denies it.

// OpenAuthRequestRequest is the body of POST /auth-request/open. Keys and
// details are standard base64.
type OpenAuthRequestRequest struct {
	ChildPubkey    string `json:"child_pubkey"`
	RequestType    string `json:"request_type"`
	RequestDetails string `json:"request_details"`
	BoxPubkey      string `json:"box_pubkey,omitempty"`
	ParentWallet   string `json:"parent_wallet,omitempty"`
	IdentityType   string `json:"identity_type,omitempty"`
	IdentityValue  string `json:"identity_value,omitempty"`
}

// Validate requires child_pubkey, request_type and request_details (the
// backend decodes and checks them).
func (r OpenAuthRequestRequest) Validate() error {
	if err := required("child_pubkey required", r.ChildPubkey); err != nil {
		return err
	}
	if err := required("request_type required", r.RequestType); err != nil {
		return err
	}
	return required("request_details required", r.RequestDetails)
}

// OpenAuthRequestResponse answers POST /auth-request/open. OTP and pair
// code are shown to the human; the await token is the opener's secret.
type OpenAuthRequestResponse struct {
	ID         string `json:"id"`
	OTP        string `json:"otp"`
	PairCode   string `json:"pair_code"`
	TTLSeconds int64  `json:"ttl_seconds"`
	ExpiresAt  int64  `json:"expires_at"`
	NonceHash  string `json:"nonce_hash"`
	AwaitToken string `json:"await_token"`
}

// FetchAuthRequestResponse answers GET /auth-request/fetch: what a master
// sees before approving. It never carries the OTP.
type FetchAuthRequestResponse struct {
	ID             string           `json:"id"`
	PairCode       string           `json:"pair_code"`
	RequestType    string           `json:"request_type"`
	RequestDetails string           `json:"request_details"`
	Description    string           `json:"description"`
	RequestedScope *agentkeys.Scope `json:"requested_scope,omitempty"`
	IdentityType   string           `json:"identity_type,omitempty"`
	IdentityValue  string           `json:"identity_value,omitempty"`
	AgentID        string           `json:"agent_id,omitempty"`
	// TargetWallet and TargetKind ("master" or "agent") name the wallet a
	// Recover would hand a session of; CurrentScope is a ScopeChange
	// target's scope today. Both are filled only for their owner.
	TargetWallet    agentkeys.Wallet `json:"target_wallet,omitempty"`
	TargetKind      string           `json:"target_kind,omitempty"`
	CurrentScope    *agentkeys.Scope `json:"current_scope,omitempty"`
	ChildPubkey     string           `json:"child_pubkey"`
	Status          string           `json:"status"`
	CreatedAt       int64            `json:"created_at"`
	ExpiresAt       int64            `json:"expires_at"`
	OTPAttemptsLeft int              `json:"otp_attempts_left"`
}

// PendingAuthRequestsResponse answers GET /auth-request/pending: the
// pending requests bound to the caller's wallet, oldest first.
type PendingAuthRequestsResponse struct {
	Requests []FetchAuthRequestResponse `json:"requests"`
}

// ApproveRequest is the body of POST /auth-request/approve.
type ApproveRequest struct {
	PairCode  string `json:"pair_code,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	OTP       string `json:"otp"`
	// ConfirmMasterRecovery must repeat the master wallet a Recover would
	// hand a session of; without it such an approval is refused.
	ConfirmMasterRecovery string `json:"confirm_master_recovery,omitempty"`
	// Name, for a pairing, names the new agent in the approver's tree in
	// the approval's transaction (409 if the tree has an agent of that name).
	Name string `json:"name,omitempty"`
}

// Validate requires the OTP (which request is the backend's to find) and
// checks the name's spelling.
func (r ApproveRequest) Validate() error {
	if err := checkAgentName(r.Name); err != nil {
		return err
	}
	return required("otp required: type the 6-digit code the daemon shows", r.OTP)
}

// ApproveResponse answers POST /auth-request/approve. Signature is the
// backend's Ed25519 signature over the approval (standard base64 on the
// wire), by the key KeyID names.
type ApproveResponse struct {
	OK             bool             `json:"ok"`
	RequestID      string           `json:"request_id"`
	Status         string           `json:"status"`
	Wallet         agentkeys.Wallet `json:"wallet"`
	Signature      []byte           `json:"signature"`
	KeyID          string           `json:"key_id"`
	ApproverWallet agentkeys.Wallet `json:"approver_wallet"`
	CreatedAt      int64            `json:"created_at"`
}

// DenyRequest is the body of POST /auth-request/deny.
type DenyRequest struct {
	PairCode  string `json:"pair_code,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// DenyResponse answers POST /auth-request/deny.
type DenyResponse struct {
	OK        bool   `json:"ok"`
	RequestID string `json:"request_id"`
	Status    string `json:"status"`
}

// AwaitSession is the session an approved Pair or Recover hands its
// opener, in clear or (sealed_session) sealed to its box key.
type AwaitSession struct {
	Token     string           `json:"token"`
	Wallet    agentkeys.Wallet `json:"wallet"`
	ExpiresAt int64            `json:"expires_at"`
}

// AwaitResponse answers GET /auth-request/await. Its fields depend on the
// status:
//   - "timeout": request_id and "decision": null; ask again;
//   - "denied" or "locked": request_id and "approved": false;
//   - "approved": approved, wallet, signature, key_id, approver_wallet,
//     created_at, and the session: "session" (an object, or null when none
//     was minted) for an opener without a box key, "sealed_session" for one
//     with a box key.
type AwaitResponse struct {
	Status         string                 `json:"status"`
	RequestID      string                 `json:"request_id"`
	Decision       Optional[struct{}]     `json:"decision,omitzero"`
	Approved       *bool                  `json:"approved,omitempty"`
	Wallet         agentkeys.Wallet       `json:"wallet,omitempty"`
	Signature      string                 `json:"signature,omitempty"` // standard base64
	KeyID          string                 `json:"key_id,omitempty"`
	ApproverWallet agentkeys.Wallet       `json:"approver_wallet,omitempty"`
	CreatedAt      int64                  `json:"created_at,omitempty"`
	Session        Optional[AwaitSession] `json:"session,omitzero"`
	SealedSession  string                 `json:"sealed_session,omitempty"`
}

// Optional is a field that is absent, null or a value: with omitzero it is
// left out unless Present, and written as null when Value is nil.
type Optional[T any] struct {
	Present bool
	Value   *T
}

// Null is a present null.
func Null[T any]() Optional[T] { return Optional[T]{Present: true} }

// Some is a present value.
func Some[T any](v T) Optional[T] { return Optional[T]{Present: true, Value: &v} }

// IsZero reports whether the field is absent.
func (o Optional[T]) IsZero() bool { return !o.Present }

// MarshalJSON writes the value or null.
func (o Optional[T]) MarshalJSON() ([]byte, error) {
	if o.Value == nil {
		return []byte("null"), nil
	}
	return json.Marshal(o.Value)
}

// UnmarshalJSON marks the field present and reads the value or null.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Present, o.Value = true, nil
	if string(b) == "null" {
		return nil
	}
	o.Value = new(T)
	return json.Unmarshal(b, o.Value)
}

// RecoverSessionRequest is the body of POST /session/recover, the
// original's proof-free recovery, which the backend always refuses.
type RecoverSessionRequest struct {
	IdentityType  string `json:"identity_type"`
	IdentityValue string `json:"identity_value"`
	Method        string `json:"method"`
}

// Validate requires all three fields.
func (r RecoverSessionRequest) Validate() error {
	return required("identity_type, identity_value and method required", r.IdentityType, r.IdentityValue, r.Method)
}

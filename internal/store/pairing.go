package store

import (
	"context"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// AuthRequestStatus is the state of an auth request. The only transitions
// are pending → approved → delivered, pending → denied and pending → locked
// (too many wrong OTPs); expiry is decided by comparing ExpiresAt with the
// clock and expired rows are swept.
type AuthRequestStatus string

const (
	AuthPending   AuthRequestStatus = "pending"
	AuthApproved  AuthRequestStatus = "approved"
	AuthDelivered AuthRequestStatus = "delivered"
	AuthDenied    AuthRequestStatus = "denied"
	AuthLocked    AuthRequestStatus = "locked"
)

// AuthRequest is a "child asks, master approves" request (pair, recover,
// scope change, …). Secrets are kept only as hashes (OTP, await token) or
// sealed (the minted session, until it is delivered once).
type AuthRequest struct {
	ID          string // 64 hex, primary key
	PairCode    string // normalised, unique among stored requests
	Type        string
	Details     []byte // canonical CBOR
	ChildPubkey []byte
	// BoxPubkey is the X25519 key the opener wants its session sealed
	// to; nil when it sent none.
	BoxPubkey      []byte
	ParentWallet   agentkeys.Wallet // "" = not bound at open
	IdentityType   string
	IdentityValue  string
	OTPHash        string
	AwaitHash      agentkeys.TokenHash
	Status         AuthRequestStatus
	FailedAttempts int
	ApproverWallet agentkeys.Wallet
	ResultWallet   agentkeys.Wallet
	SealedSession  []byte // nil once delivered
	// Signature is the backend's Ed25519 signature over the approval
	// (authreq.Approval); nil until approved.
	Signature []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	DecidedAt time.Time // zero while pending
}

// IdentityLink names a wallet by an alias, e-mail or ENS name. (Type,
// Value) is unique: one name points at one wallet.
type IdentityLink struct {
	Wallet    agentkeys.Wallet
	Type      string
	Value     string
	CreatedAt time.Time
}

// Rendezvous is a one-shot relay slot keyed by a pair code: the daemon
// registers it and polls with its registration token; the approver delivers
// one opaque payload.
type Rendezvous struct {
	PairCode     string
	TokenHash    agentkeys.TokenHash // registration token, unique
	DaemonPubkey []byte
	Payload      []byte // nil until delivered
	Delivered    bool
	Consumed     bool
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// Inbox is a mock e-mail inbox of a wallet (provisioner test scaffolding).
type Inbox struct {
	Address   string
	Wallet    agentkeys.Wallet
	CreatedAt time.Time
}

// InboxMessage is one message delivered to a mock inbox.
type InboxMessage struct {
	ID         string
	Address    string
	From       string
	Subject    string
	Body       string
	ReceivedAt time.Time
}

// PairingQueries are the primitives of pairing, recovery, identity links and
// mock inboxes. Inserts return ErrConflict on a duplicate key, lookups
// ErrNotFound.
type PairingQueries interface {
	InsertAuthRequest(ctx context.Context, r AuthRequest) error
	AuthRequest(ctx context.Context, id string) (AuthRequest, error)
	AuthRequestByPairCode(ctx context.Context, code string) (AuthRequest, error)
	// UpdateAuthRequest rewrites the mutable fields (Status,
	// FailedAttempts, ApproverWallet, ResultWallet, SealedSession,
	// Signature, DecidedAt) of the request with r.ID.
	UpdateAuthRequest(ctx context.Context, r AuthRequest) error
	// PendingAuthRequests lists the pending requests bound to parent that
	// are still unexpired at now, oldest first, at most limit of them.
	PendingAuthRequests(ctx context.Context, parent agentkeys.Wallet, now time.Time, limit int) ([]AuthRequest, error)
	// DeleteExpiredAuthRequests removes requests whose ExpiresAt is at or
	// before t.
	DeleteExpiredAuthRequests(ctx context.Context, t time.Time) (int, error)

	// PutIdentityLink inserts a link, or refreshes it if the same wallet
	// already holds that (type, value); ErrConflict if another wallet does.
	PutIdentityLink(ctx context.Context, l IdentityLink) error
	// ResolveIdentity returns the link for (type, value).
	ResolveIdentity(ctx context.Context, typ, value string) (IdentityLink, error)
	// IdentityLinks lists a wallet's links, oldest first.
	IdentityLinks(ctx context.Context, w agentkeys.Wallet) ([]IdentityLink, error)

	InsertRendezvous(ctx context.Context, r Rendezvous) error
	Rendezvous(ctx context.Context, pairCode string) (Rendezvous, error)
	RendezvousByToken(ctx context.Context, hash agentkeys.TokenHash) (Rendezvous, error)
	// UpdateRendezvous rewrites Payload, Delivered and Consumed.
	UpdateRendezvous(ctx context.Context, r Rendezvous) error
	// DeleteExpiredRendezvous removes slots whose ExpiresAt is at or before t.
	DeleteExpiredRendezvous(ctx context.Context, t time.Time) (int, error)

	// BumpPairingEpoch increments the pairing epoch and returns the new
	// value. Call it inside the transaction of every decision an opener
	// long-polls for (approve, deny, lock, rendezvous delivery), so other
	// replicas learn of it from one cheap read.
	BumpPairingEpoch(ctx context.Context) (int64, error)
	// PairingEpoch returns the current pairing epoch (0 at first; it never
	// goes down).
	PairingEpoch(ctx context.Context) (int64, error)

	InsertInbox(ctx context.Context, in Inbox) error
	Inbox(ctx context.Context, address string) (Inbox, error)
	// Inboxes lists a wallet's inboxes, oldest first.
	Inboxes(ctx context.Context, w agentkeys.Wallet) ([]Inbox, error)
	InsertInboxMessage(ctx context.Context, m InboxMessage) error
	// InboxMessages lists an inbox's messages received at or after since,
	// newest first, at most limit (<= 0: 100).
	InboxMessages(ctx context.Context, address string, since time.Time, limit int) ([]InboxMessage, error)
}

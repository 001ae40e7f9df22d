// Package store declares the persistence the backend needs and the records it
// keeps. Engines live in sub-packages (sqlstore: SQLite and PostgreSQL); the
// conformance suite every engine must pass lives in storetest.
//
// The store holds no business rules: ownership, scopes and expiry are decided
// by the backend, which composes these primitives inside Store.Tx so that a
// multi-step change is all-or-nothing.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Errors every engine returns (wrapped or not) so callers can use errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: already exists")
)

// Kind says whether a wallet belongs to a human (master) or an agent.
type Kind string

const (
	KindMaster Kind = "master"
	KindAgent  Kind = "agent"
)

// Wallet is an account. Masters have a LoginHash (SHA-256 of the identity
// they log in with) and no parent; agents have a parent and cannot log in.
type Wallet struct {
	Address   agentkeys.Wallet
	Kind      Kind
	Parent    agentkeys.Wallet // "" for masters
	LoginHash string           // "" for agents
	Scope     *agentkeys.Scope // nil = unrestricted
	CreatedAt time.Time
	TornDown  bool // tombstoned: no session may act as or on it
}

// Session is a bearer session. Only the token's hash is stored.
type Session struct {
	TokenHash  agentkeys.TokenHash
	Wallet     agentkeys.Wallet
	ParentHash agentkeys.TokenHash // "" for sessions not minted by another session
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while live
}

// Revoked reports whether the session has been revoked.
func (s Session) Revoked() bool { return !s.RevokedAt.IsZero() }

// AudienceBroker is the audience of broker tokens: bearers the backend
// accepts only at GET /session/validate, for the broker to check.
const AudienceBroker = "broker"

// BrokerToken is a short-lived bearer derived from a session for one
// audience. Only its hash is stored; it is valid only while its parent
// session is.
type BrokerToken struct {
	TokenHash  agentkeys.TokenHash
	ParentHash agentkeys.TokenHash // the session it was derived from
	Audience   string
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// Credential is one sealed secret of a wallet for a service.
type Credential struct {
	Wallet    agentkeys.Wallet
	Service   string
	Sealed    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuditQuery selects audit rows visible to Viewer: rows whose owner or agent
// is Viewer or one of its descendants. Zero-valued filters match anything.
type AuditQuery struct {
	Viewer   agentkeys.Wallet
	Owner    agentkeys.Wallet
	Agent    agentkeys.Wallet
	Service  string
	Action   string
	Result   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	BeforeID int64     // pagination cursor: only rows with id < BeforeID
	Limit    int       // engines cap it; <= 0 means the default
}

// Default and maximum page sizes for QueryAudit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// Queries are the primitives available both inside and outside a
// transaction. Times are stored with millisecond precision.
type Queries interface {
	InsertWallet(ctx context.Context, w Wallet) error
	// Wallet returns the wallet, tombstoned or not, or ErrNotFound.
	Wallet(ctx context.Context, addr agentkeys.Wallet) (Wallet, error)
	WalletByLogin(ctx context.Context, loginHash string) (Wallet, error)
	// Lineage returns addr followed by its ancestors, nearest first, or
	// ErrNotFound for an unknown address (Subtree likewise).
	Lineage(ctx context.Context, addr agentkeys.Wallet) ([]Wallet, error)
	// Subtree returns addr and all its descendants (addr first).
	Subtree(ctx context.Context, addr agentkeys.Wallet) ([]agentkeys.Wallet, error)
	SetScope(ctx context.Context, addr agentkeys.Wallet, scope *agentkeys.Scope) error
	TombstoneWallets(ctx context.Context, addrs []agentkeys.Wallet) error

	InsertSession(ctx context.Context, s Session) error
	Session(ctx context.Context, hash agentkeys.TokenHash) (Session, error)
	// RevokeSessionTree revokes the session and every session minted from it,
	// transitively; it returns how many live sessions it revoked.
	RevokeSessionTree(ctx context.Context, hash agentkeys.TokenHash, at time.Time) (int, error)
	// RevokeWalletSessions revokes every live session of the wallets.
	RevokeWalletSessions(ctx context.Context, addrs []agentkeys.Wallet, at time.Time) (int, error)
	// DeleteExpiredSessions removes sessions that expired before t.
	DeleteExpiredSessions(ctx context.Context, t time.Time) (int, error)

	// InsertBrokerToken stores a derived token; ErrNotFound if its parent
	// session does not exist, ErrConflict if the hash does.
	InsertBrokerToken(ctx context.Context, t BrokerToken) error
	// BrokerToken returns the derived token, expired or not, or ErrNotFound.
	BrokerToken(ctx context.Context, hash agentkeys.TokenHash) (BrokerToken, error)
	// DeleteExpiredBrokerTokens removes derived tokens that expired before t.
	DeleteExpiredBrokerTokens(ctx context.Context, t time.Time) (int, error)

	// BumpRevocationEpoch increments the revocation epoch and returns the
	// new value. Call it inside the transaction of every change that takes
	// access away, so that the epoch and the change commit together.
	BumpRevocationEpoch(ctx context.Context) (int64, error)
	// RevocationEpoch returns the current revocation epoch (0 at first;
	// it never goes down).
	RevocationEpoch(ctx context.Context) (int64, error)

	// PutCredential inserts or replaces; CreatedAt is kept on replace.
	PutCredential(ctx context.Context, c Credential) error
	Credential(ctx context.Context, addr agentkeys.Wallet, service string) (Credential, error)
	// Services lists the wallet's credential services in ascending order.
	Services(ctx context.Context, addr agentkeys.Wallet) ([]string, error)
	// Credentials returns the wallet's credentials in ascending service
	// order (none for an unknown wallet).
	Credentials(ctx context.Context, addr agentkeys.Wallet) ([]Credential, error)
	// DeleteWalletData removes credentials, identity links, agent names,
	// inboxes and inbox messages of the wallets and returns how many credentials it removed.
	DeleteWalletData(ctx context.Context, addrs []agentkeys.Wallet) (int, error)

	// AppendAudit stores e and returns its id.
	AppendAudit(ctx context.Context, e agentkeys.AuditEvent) (int64, error)
	// AppendAudits stores es (their IDs are ignored) in one statement, in
	// order: all of them or, on error, none.
	AppendAudits(ctx context.Context, es []agentkeys.AuditEvent) error
	// QueryAudit returns matching rows, newest first.
	QueryAudit(ctx context.Context, q AuditQuery) ([]agentkeys.AuditEvent, error)

	PairingQueries
	QuotaQueries
	NameQueries
}

// Store is a database engine.
type Store interface {
	Queries
	// Tx runs fn in a read-write transaction, committing if fn returns nil
	// and rolling back otherwise (also on panic). Transactions are
	// serializable on both engines, so check-then-write logic inside fn is
	// safe across goroutines and replicas. An engine may run fn again after
	// a serialization conflict, so fn must have no effect outside the
	// Queries it is handed; calling the Store itself from inside can
	// deadlock.
	Tx(ctx context.Context, fn func(q Queries) error) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

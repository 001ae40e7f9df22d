package api

import (
	"errors"
	"fmt"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// CreateSessionRequest is the body of POST /session/create.
type CreateSessionRequest struct {
	AuthToken *string `json:"auth_token"`
}

// Validate requires auth_token (an empty string is the login verifier's to
// judge).
func (r CreateSessionRequest) Validate() error {
	if r.AuthToken == nil {
		return errors.New("auth_token required")
	}
	return nil
}

// SessionResponse answers POST /session/create and /session/child.
type SessionResponse struct {
	Session   string           `json:"session"`
	Wallet    agentkeys.Wallet `json:"wallet"`
	ExpiresAt int64            `json:"expires_at"`
}

// ValidateResponse answers GET /session/validate: what the backend knows
// of a token's holder.
type ValidateResponse struct {
	Wallet    agentkeys.Wallet `json:"wallet"`
	Kind      string           `json:"kind"`
	Parent    agentkeys.Wallet `json:"parent,omitempty"`
	Scope     *agentkeys.Scope `json:"scope"`
	ExpiresAt int64            `json:"expires_at"`
	// For a broker token: its audience ("broker") and its own expiry;
	// expires_at stays the parent session's.
	Audience       string `json:"audience,omitempty"`
	TokenExpiresAt int64  `json:"token_expires_at,omitempty"`
	// Epoch is the revocation epoch read before the session was (0 from a
	// backend without revocation epochs).
	Epoch int64 `json:"epoch"`
}

// AudienceBroker is the one audience a derived token may have.
const AudienceBroker = "broker"

// BrokerTokenRequest is the body of POST /session/broker-token.
type BrokerTokenRequest struct {
	Audience   string `json:"audience"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

// BrokerTokenResponse answers POST /session/broker-token.
type BrokerTokenResponse struct {
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expires_at"`
	Audience  string `json:"audience"`
}

// CreateChildRequest is the body of POST /session/child.
type CreateChildRequest struct {
	Scope      *agentkeys.Scope `json:"scope"`
	TTLSeconds int64            `json:"ttl_seconds,omitempty"`
	// Name, when set, names the new agent in the caller's tree in the same
	// transaction (409 if the tree already has an agent of that name).
	Name string `json:"name,omitempty"`
}

// Validate requires a scope that normalises and, when given, a valid
// name (ttl_seconds is the backend's to bound).
func (r CreateChildRequest) Validate() error {
	if err := checkAgentName(r.Name); err != nil {
		return err
	}
	return checkScope(r.Scope, `scope required (an agent is always scoped; use {"services":[...],"read_only":false})`)
}

// RevokeRequest is the body of POST /session/revoke: exactly one target.
type RevokeRequest struct {
	TargetSession string `json:"target_session,omitempty"`
	TargetWallet  string `json:"target_wallet,omitempty"`
}

// Validate requires exactly one target.
func (r RevokeRequest) Validate() error {
	if (r.TargetSession == "") == (r.TargetWallet == "") {
		return errors.New("give exactly one of target_session or target_wallet")
	}
	return nil
}

// RevokeResponse answers POST /session/revoke.
type RevokeResponse struct {
	OK              bool `json:"ok"`
	SessionsRevoked int  `json:"sessions_revoked"`
}

// ScopeResponse answers GET /session/scope: services is null when the
// wallet is unrestricted and [] when it may use nothing.
type ScopeResponse struct {
	Wallet   agentkeys.Wallet `json:"wallet"`
	Services []string         `json:"services"`
	ReadOnly bool             `json:"read_only"`
}

// SetScopeRequest is the body of PUT /session/scope.
type SetScopeRequest struct {
	TargetWallet string           `json:"target_wallet"`
	Scope        *agentkeys.Scope `json:"scope"`
}

// Validate requires the target wallet and a scope that normalises.
func (r SetScopeRequest) Validate() error {
	if _, err := ParseWalletField("target_wallet", r.TargetWallet); err != nil {
		return err
	}
	return checkScope(r.Scope, "scope required")
}

// SetScopeResponse answers PUT /session/scope.
type SetScopeResponse struct {
	OK     bool             `json:"ok"`
	Wallet agentkeys.Wallet `json:"wallet"`
	Scope  *agentkeys.Scope `json:"scope"`
}

// EpochResponse answers GET /session/epoch. Epoch is a pointer so that a
// client tells a missing field from 0.
type EpochResponse struct {
	Epoch *int64 `json:"epoch"`
}

// WatchResponse answers GET /session/watch when its window ends with the
// session still valid.
type WatchResponse struct {
	Valid bool  `json:"valid"`
	Epoch int64 `json:"epoch"`
}

// checkScope requires a scope and checks that it normalises.
func checkScope(sc *agentkeys.Scope, missing string) error {
	if sc == nil {
		return errors.New(missing)
	}
	if _, err := sc.Normalize(); err != nil {
		return fmt.Errorf("scope: %v", err)
	}
	return nil
}

// SessionTreeResponse answers GET /session/tree: the bearer's wallet and
// every wallet below it (torn-down ones included, for their history), the
// bearer's own first. A session or a broker token may ask.
type SessionTreeResponse struct {
	Wallet  agentkeys.Wallet   `json:"wallet"`
	Wallets []agentkeys.Wallet `json:"wallets"`
}

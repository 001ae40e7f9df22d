package api

import (
	"errors"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Agent registry routes: the names a master gives the wallets of its tree.
// A name is unique within one master's tree; the same name in another
// master's tree is another agent.

// AgentInfo is one agent of the caller's tree in GET /agent/list.
type AgentInfo struct {
	Wallet agentkeys.Wallet `json:"wallet"`
	Name   string           `json:"name,omitempty"`
	Parent agentkeys.Wallet `json:"parent"`
	// Scope is the wallet's own scope (nil: unrestricted).
	Scope *agentkeys.Scope `json:"scope"`
	// ExpiresAt is the latest expiry (unix seconds) of the agent's live
	// sessions, 0 when it has none (revoked or expired).
	ExpiresAt int64 `json:"expires_at"`
	// LastUsedAt is the time (unix seconds) of the newest audit row the
	// agent wrote or that read, stored or provisioned for it; 0 if never.
	LastUsedAt int64 `json:"last_used_at"`
	CreatedAt  int64 `json:"created_at"`
}

// AgentListResponse answers GET /agent/list: the agents below the caller,
// torn-down ones left out, ordered by depth then wallet.
type AgentListResponse struct {
	Agents []AgentInfo `json:"agents"`
}

// Resolution sources in AgentResolveResponse.Via.
const (
	ViaWallet = "wallet"
	ViaName   = "name"
	ViaAlias  = "alias"
	ViaEmail  = "email"
	ViaENS    = "ens"
)

// AgentResolveResponse answers GET /agent/resolve?agent=X: the wallet X
// names in the caller's own tree (the caller itself included), its name if
// it has one, and what X matched.
type AgentResolveResponse struct {
	Wallet agentkeys.Wallet `json:"wallet"`
	Name   string           `json:"name,omitempty"`
	Via    string           `json:"via"`
}

// AgentNameRequest is the body of POST /agent/name: give wallet a name,
// replacing the one it had ("" removes it).
type AgentNameRequest struct {
	Wallet string `json:"wallet"`
	Name   string `json:"name"`
}

// Validate checks the wallet and the name's spelling.
func (r AgentNameRequest) Validate() error {
	if _, err := ParseWalletField("wallet", r.Wallet); err != nil {
		return err
	}
	return checkAgentName(r.Name)
}

// checkAgentName accepts "" (no name) or a name already in its normal
// form: clients normalise, the wire carries one spelling.
func checkAgentName(name string) error {
	if name == "" {
		return nil
	}
	if n, err := agentkeys.ParseAgentName(name); err != nil {
		return err
	} else if n != name {
		return errors.New("agent name must not have surrounding spaces")
	}
	return nil
}

// AgentNameResponse answers POST /agent/name.
type AgentNameResponse struct {
	OK       bool             `json:"ok"`
	Wallet   agentkeys.Wallet `json:"wallet"`
	Name     string           `json:"name"`
	Previous string           `json:"previous,omitempty"`
}

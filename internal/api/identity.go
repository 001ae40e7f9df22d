package api

import (
	"fmt"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// LinkIdentityRequest is the body of POST /identity/link.
type LinkIdentityRequest struct {
	IdentityType  string `json:"identity_type"`
	IdentityValue string `json:"identity_value"`
	WalletAddress string `json:"wallet_address,omitempty"`
}

// LinkIdentityResponse answers POST /identity/link.
type LinkIdentityResponse struct {
	OK            bool             `json:"ok"`
	WalletAddress agentkeys.Wallet `json:"wallet_address"`
	IdentityType  string           `json:"identity_type"`
	IdentityValue string           `json:"identity_value"`
	Verified      bool             `json:"verified"`
}

// ResolveIdentityResponse answers GET /identity/resolve.
type ResolveIdentityResponse struct {
	WalletAddress agentkeys.Wallet `json:"wallet_address"`
	IdentityType  string           `json:"identity_type"`
	Verified      bool             `json:"verified"`
}

// Validate checks the kind (a wallet names itself and is never linked), the
// value and the optional target wallet.
func (r LinkIdentityRequest) Validate() error {
	if r.IdentityType == string(agentkeys.KindWallet) {
		return fmt.Errorf("unknown identity_type %q: use alias, email or ens", r.IdentityType)
	}
	if _, err := agentkeys.ParseIdentityAs(agentkeys.IdentityKind(r.IdentityType), r.IdentityValue); err != nil {
		return err
	}
	return checkWallet("wallet_address", r.WalletAddress)
}

package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// StoreCredentialRequest is the body of POST /credential/store. The field
// keeps the original's name, "ciphertext", but carries the value
// base64-encoded; the backend seals it.
type StoreCredentialRequest struct {
	AgentID    string `json:"agent_id"`
	Service    string `json:"service"`
	Ciphertext string `json:"ciphertext"`
}

// Validate checks the agent, the service and that a value is present (the
// backend decodes and bounds it).
func (r StoreCredentialRequest) Validate() error {
	if err := checkAgentService(r.AgentID, r.Service); err != nil {
		return err
	}
	return required("ciphertext required", r.Ciphertext)
}

// ReadCredentialResponse answers GET /credential/read.
type ReadCredentialResponse struct {
	Ciphertext string `json:"ciphertext"`
}

// ListCredentialsResponse answers GET /credential/list.
type ListCredentialsResponse struct {
	Services []string `json:"services"`
}

// TeardownRequest is the body of DELETE /credential/teardown.
type TeardownRequest = AgentRequest

// TeardownResponse answers DELETE /credential/teardown.
type TeardownResponse struct {
	OK                 bool `json:"ok"`
	WalletsRemoved     int  `json:"wallets_removed"`
	SessionsRevoked    int  `json:"sessions_revoked"`
	CredentialsRemoved int  `json:"credentials_removed"`
}

// MaxBatchServices bounds the services one POST /credential/read-batch
// may name.
const MaxBatchServices = 64

// ReadCredentialsRequest is the body of POST /credential/read-batch: every
// credential the agent holds within its scope, plus the named services
// (which must be in scope and held). The agent is named by exactly one of
// AgentID (its 0x wallet) and Agent (a name, alias, e-mail or 0x wallet,
// as GET /agent/resolve takes), so a client need not resolve it first.
type ReadCredentialsRequest struct {
	AgentID  string   `json:"agent_id,omitempty"`
	Agent    string   `json:"agent,omitempty"`
	Services []string `json:"services,omitempty"`
}

// Validate checks the agent and every named service.
func (r ReadCredentialsRequest) Validate() error {
	switch {
	case (r.AgentID == "") == (r.Agent == ""):
		return errors.New("give exactly one of agent_id or agent")
	case r.Agent != "":
		if _, err := agentkeys.ParseIdentity(r.Agent); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	default:
		if _, err := ParseWalletField("agent_id", r.AgentID); err != nil {
			return err
		}
	}
	if len(r.Services) > MaxBatchServices {
		return fmt.Errorf("at most %d services", MaxBatchServices)
	}
	for _, s := range r.Services {
		if err := CheckService(s); err != nil {
			return err
		}
	}
	return nil
}

// Credential is one service's value in a ReadCredentialsResponse,
// base64-encoded.
type Credential struct {
	Service    string `json:"service"`
	Ciphertext string `json:"ciphertext"`
}

// ReadCredentialsResponse answers POST /credential/read-batch: the agent's
// effective scope (services null when unrestricted) and its credentials,
// sorted by service. RevokedAt (unix seconds) is set when the agent's
// newest session record is a revoke; credentials are then withheld.
// Agent is what the request's agent resolved to (nil for agent_id).
type ReadCredentialsResponse struct {
	Agent       *AgentResolveResponse `json:"agent,omitempty"`
	Scope       ScopeResponse         `json:"scope"`
	Credentials []Credential          `json:"credentials"`
	RevokedAt   int64                 `json:"revoked_at,omitempty"`
}

// CredentialVersion is one credential's version: it changes whenever the
// credential is stored again, and says nothing about the value.
type CredentialVersion struct {
	Service   string    `json:"service"`
	Version   string    `json:"version"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CredentialVersionsResponse answers GET /credential/versions: the
// versions of the agent's credentials within the caller's scope, in
// service order. The route returns no value and writes no audit row, so
// it can be polled (run --watch).
type CredentialVersionsResponse struct {
	Versions []CredentialVersion `json:"versions"`
}

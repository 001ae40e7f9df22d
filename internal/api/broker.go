package api

import "github.com/agentkeys/agentkeys/internal/agentkeys"

// Broker routes: POST /v1/mint-oidc-jwt and POST /v1/mint-aws-creds, both
// authenticated by a broker token derived from a backend session.

// MintRequest is the body of both mint routes: empty (or absent), an
// object so fields can be added later.
type MintRequest struct{}

// MintJWTResponse answers POST /v1/mint-oidc-jwt. Expiration is unix
// seconds.
type MintJWTResponse struct {
	JWT        string `json:"jwt"`
	Wallet     string `json:"wallet"`
	Expiration int64  `json:"expiration"`
}

// MintAWSResponse answers POST /v1/mint-aws-creds. Expiration is unix
// seconds.
type MintAWSResponse struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Expiration      int64  `json:"expiration"`
	Wallet          string `json:"wallet"`
}

// PathBrokerAudit is the broker's audit view: GET with a bearer; the
// caller sees the mints of its own wallet and of every wallet below it.
const PathBrokerAudit = "/v1/audit"

// Kinds of mint in the broker's audit view.
const (
	MintKindJWT = "jwt" // POST /v1/mint-oidc-jwt
	MintKindAWS = "aws" // POST /v1/mint-aws-creds
)

// BrokerAuditEvent is one row of the broker's mint ledger as
// GET /v1/audit shows it. Time is RFC 3339 UTC; CredentialID is the AWS
// access key id or the JWT's jti (identifiers, never secrets).
type BrokerAuditEvent struct {
	Chain               string           `json:"chain"`
	ID                  int64            `json:"id"`
	Timestamp           int64            `json:"timestamp"`
	Time                string           `json:"time"`
	Wallet              agentkeys.Wallet `json:"wallet"`
	Kind                string           `json:"kind"`
	Outcome             string           `json:"outcome"`
	Detail              string           `json:"detail,omitempty"`
	ClientIP            string           `json:"client_ip,omitempty"`
	RequestID           string           `json:"request_id,omitempty"`
	CredentialID        string           `json:"credential_id,omitempty"`
	CredentialExpiresAt int64            `json:"credential_expires_at,omitempty"`
}

// BrokerAuditPage answers GET /v1/audit: newest first; next_cursor is ""
// on the last page.
type BrokerAuditPage struct {
	Events     []BrokerAuditEvent `json:"events"`
	NextCursor string             `json:"next_cursor"`
}

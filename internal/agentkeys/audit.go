package agentkeys

import "time"

// Audit actions written by the backend.
const (
	ActionSessionCreate = "session_create"
	ActionChildCreate   = "child_create"
	ActionStore         = "store"
	ActionRead          = "read"
	ActionList          = "list"
	ActionRevoke        = "revoke"
	ActionTeardown      = "teardown"
	ActionScopeRead     = "scope_read"
	ActionScopeUpdate   = "scope_update"
	ActionProvision     = "provision" // reported by the provisioner: result "ok" or its error code
	// ActionHTTP is one API call an agent made through its daemon's
	// gateway: result "ok" when forwarded, else why the gateway refused it.
	ActionHTTP = "http"
)

// Audit results.
const (
	ResultOK             = "ok"
	ResultDenied         = "DENIED"           // the caller does not own the target wallet
	ResultDeniedScope    = "DENIED_SCOPE"     // the caller's scope excludes the service or operation
	ResultDeniedReadOnly = "DENIED_READ_ONLY" // a read-only scope tried to write
	ResultNotFound       = "NOT_FOUND"
)

// DetailUnverified starts the detail of rows written on behalf of a caller
// the backend did not authenticate (an auth request opened naming a
// master): whoever sent it chose what it says.
const DetailUnverified = "unverified: "

// ActionAuthRequestOpen is written into a master's log when someone opens
// an auth request naming that master; the opener is not authenticated.
const ActionAuthRequestOpen = "auth_request_open"

// AuditWildcard is the service recorded for events not about one service.
const AuditWildcard = "*"

// AuditEvent is one row of the backend's audit log. Owner is the wallet
// that acted; Agent the wallet acted upon.
type AuditEvent struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"-"`
	Owner   Wallet    `json:"owner"`
	Agent   Wallet    `json:"agent"`
	Service string    `json:"service"`
	Action  string    `json:"action"`
	Result  string    `json:"result"`
	Detail  string    `json:"detail,omitempty"`
	// ClientIP is the address of the client whose request caused the row.
	ClientIP string `json:"client_ip,omitempty"`
}

// SessionGrants are the audit actions that give a wallet a new session:
// after one of them, an earlier revoke no longer describes the wallet.
var SessionGrants = map[string]bool{
	ActionSessionCreate:      true,
	ActionChildCreate:        true,
	"pair_approve":           true,
	"recover_approve":        true,
	"auth_request_delivered": true,
	"rendezvous_deliver":     true,
}

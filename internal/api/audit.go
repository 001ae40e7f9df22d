package api

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// AuditEvent is one row of GET /audit/query.
type AuditEvent struct {
	ID        int64            `json:"id"`
	Owner     agentkeys.Wallet `json:"owner"`
	Agent     agentkeys.Wallet `json:"agent"`
	Service   string           `json:"service"`
	Action    string           `json:"action"`
	Result    string           `json:"result"`
	Timestamp int64            `json:"timestamp"`
	Time      string           `json:"time"`
	Detail    string           `json:"detail,omitempty"`
	ClientIP  string           `json:"client_ip,omitempty"`
}

// AuditPage answers GET /audit/query: one page of events, newest first;
// next_cursor is "" on the last page.
type AuditPage struct {
	Events     []AuditEvent `json:"events"`
	NextCursor string       `json:"next_cursor"`
}

// AuditProvisionRequest is the body of POST /audit/provision.
type AuditProvisionRequest struct {
	AgentID string `json:"agent_id"`
	Service string `json:"service"`
	Result  string `json:"result"`
	Detail  string `json:"detail"`
}

// Validate checks the agent, the service, that result is "ok" or an error
// code, and that detail is short printable text.
func (r AuditProvisionRequest) Validate() error {
	if err := checkAgentService(r.AgentID, r.Service); err != nil {
		return err
	}
	if !provisionResult(r.Result) {
		return errors.New(`result must be "ok" or an error code (lower-case letters and underscores, at most 40)`)
	}
	if len(r.Detail) > 200 || strings.ContainsFunc(r.Detail, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("detail must be at most 200 printable characters")
	}
	return nil
}

// provisionResult is "ok" or a provisioner error code: lower-case snake
// case, short, so a client cannot write free text into the result column.
func provisionResult(v string) bool {
	if v == "" || len(v) > 40 {
		return false
	}
	for _, r := range v {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// MaxCachedReadServices bounds one cached-read report.
const MaxCachedReadServices = 64

// AuditCachedReadRequest is the body of POST /audit/cached-read; agent_id
// "" means the caller's own wallet.
type AuditCachedReadRequest struct {
	AgentID  string   `json:"agent_id"`
	Services []string `json:"services"`
}

// Validate checks the optional agent and the 1 to MaxCachedReadServices
// services.
func (r AuditCachedReadRequest) Validate() error {
	if err := checkWallet("agent_id", r.AgentID); err != nil {
		return err
	}
	if len(r.Services) == 0 || len(r.Services) > MaxCachedReadServices {
		return fmt.Errorf("services must list 1 to %d services", MaxCachedReadServices)
	}
	for _, svc := range r.Services {
		if err := CheckService(svc); err != nil {
			return err
		}
	}
	return nil
}

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

// MaxGatewayCalls bounds one POST /audit/gateway batch.
const MaxGatewayCalls = 500

// GatewayCall is the record of one request an agent made through its
// daemon's gateway. It holds no header, query or body.
type GatewayCall struct {
	Service    string `json:"service"` // "*" when the request named no known service
	Method     string `json:"method"`
	Path       string `json:"path"` // without the query
	Status     int    `json:"status"`
	BytesIn    int64  `json:"bytes_in"`
	BytesOut   int64  `json:"bytes_out"`
	DurationMS int64  `json:"duration_ms"`
	// Refused is "" for a forwarded call, else the gateway's reason
	// (lower-case letters and underscores).
	Refused string `json:"refused,omitempty"`
}

// AuditGatewayRequest is the body of POST /audit/gateway: the calls made
// for agent_id ("" = the caller's own wallet), oldest first.
type AuditGatewayRequest struct {
	AgentID string        `json:"agent_id,omitempty"`
	Calls   []GatewayCall `json:"calls"`
}

// Validate checks the optional agent and 1 to MaxGatewayCalls calls, each with a service name
// (or "*"), a method token, a printable path of at most 200 bytes
// starting with '/', a status 100-599 and non-negative counts.
func (r AuditGatewayRequest) Validate() error {
	if err := checkWallet("agent_id", r.AgentID); err != nil {
		return err
	}
	if len(r.Calls) == 0 || len(r.Calls) > MaxGatewayCalls {
		return fmt.Errorf("calls must list 1 to %d calls", MaxGatewayCalls)
	}
	for i, c := range r.Calls {
		if err := c.validate(); err != nil {
			return fmt.Errorf("calls[%d]: %w", i, err)
		}
	}
	return nil
}

func (c GatewayCall) validate() error {
	if c.Service != agentkeys.AuditWildcard {
		if err := CheckService(c.Service); err != nil {
			return err
		}
	}
	if c.Method == "" || len(c.Method) > 16 || strings.ContainsFunc(c.Method, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) {
		return errors.New("method must be 1 to 16 printable characters")
	}
	if !strings.HasPrefix(c.Path, "/") || len(c.Path) > 200 || strings.ContainsFunc(c.Path, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) {
		return errors.New("path must start with / and be at most 200 printable characters")
	}
	if c.Status < 100 || c.Status > 599 {
		return errors.New("status must be 100 to 599")
	}
	if c.BytesIn < 0 || c.BytesOut < 0 || c.DurationMS < 0 {
		return errors.New("counts must not be negative")
	}
	if c.Refused != "" && !provisionResult(c.Refused) {
		return errors.New("refused must be lower-case letters and underscores, at most 40")
	}
	return nil
}

// Detail is the audit row's detail for c: "METHOD PATH status=N in=N out=N ms=N".
func (c GatewayCall) Detail() string {
	return fmt.Sprintf("%s %s status=%d in=%d out=%d ms=%d", c.Method, c.Path, c.Status, c.BytesIn, c.BytesOut, c.DurationMS)
}

// Package api holds the JSON bodies of the backend's HTTP routes and the
// broker's mint routes, shared by the handlers (internal/backend,
// internal/broker) and the clients (internal/backendclient,
// internal/brokerclient), so a renamed field is a compile error on both
// sides. JSON names are a compatibility contract: never rename one or
// change its omitempty.
//
// Request types have a Validate method with the checks that need no
// database; the backend runs it right after decoding and answers 400 with
// its message.
package api

import (
	"errors"
	"fmt"
	"slices"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Validator is a request body that can check itself.
type Validator interface {
	Validate() error
}

// OK is the body of routes that only acknowledge.
type OK struct {
	OK bool `json:"ok"`
}

// ParseWalletField parses a required wallet field, naming it in the error.
func ParseWalletField(name, v string) (agentkeys.Wallet, error) {
	if v == "" {
		return "", fmt.Errorf("%s required", name)
	}
	w, err := agentkeys.ParseWallet(v)
	if err != nil {
		return "", fmt.Errorf("%s: %v", name, err)
	}
	return w, nil
}

// checkWallet is ParseWalletField for an optional field.
func checkWallet(name, v string) error {
	if v == "" {
		return nil
	}
	_, err := ParseWalletField(name, v)
	return err
}

// required returns errors.New(msg) if any of vals is empty.
func required(msg string, vals ...string) error {
	if slices.Contains(vals, "") {
		return errors.New(msg)
	}
	return nil
}

// AgentRequest is a body naming one agent wallet: DELETE
// /credential/teardown and POST /mock/inbox/provision.
type AgentRequest struct {
	AgentID string `json:"agent_id"`
}

// Validate requires the agent.
func (r AgentRequest) Validate() error {
	_, err := ParseWalletField("agent_id", r.AgentID)
	return err
}

// checkAgentService checks a required agent and service.
func checkAgentService(agent, service string) error {
	if _, err := ParseWalletField("agent_id", agent); err != nil {
		return err
	}
	return CheckService(service)
}

// CheckService checks a required service name.
func CheckService(v string) error {
	if v == "" {
		return errors.New("service required")
	}
	return agentkeys.ValidateService(v)
}

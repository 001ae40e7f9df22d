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

// CheckService checks a required service name.
func CheckService(v string) error {
	if v == "" {
		return errors.New("service required")
	}
	return agentkeys.ValidateService(v)
}

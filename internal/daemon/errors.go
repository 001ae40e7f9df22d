// Package daemon is agentkeys-daemon: it holds one agent session inside a
// sandbox and serves the agent's credentials over a Unix-socket JSON-RPC
// API and MCP (stdio and Streamable HTTP), obtains its session by pairing
// with the master (pair code + OTP) or by master-approved recovery, and
// fetches AWS credentials and OIDC tokens from the broker.
//
// Secrets (the session token, credential values, OTPs, broker credentials)
// never appear in log lines, error messages or process arguments.
package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// Stable error codes shared by the socket API (JSON-RPC error data.code)
// and the MCP tools (structured content "code" and the text prefix).
const (
	CodeDenied         = "DENIED"
	CodeNotFound       = "NOT_FOUND"
	CodeAuthFailed     = "AUTH_FAILED"
	CodeUnreachable    = "UNREACHABLE"
	CodeInvalidParams  = "INVALID_PARAMS"
	CodeRateLimited    = "RATE_LIMITED"
	CodeBackendError   = "BACKEND_ERROR"
	CodeBrokerError    = "BROKER_ERROR"
	CodeNoBroker       = "BROKER_NOT_CONFIGURED"
	CodeNoGateway      = "GATEWAY_NOT_CONFIGURED"
	CodeDisabled       = "DISABLED"
	CodeExecFailed     = "EXEC_FAILED"
	CodeUnavailable    = "PROVISIONER_UNAVAILABLE"
	CodeInternal       = "INTERNAL"
	CodeMethodNotFound = "METHOD_NOT_FOUND"
	// CodeServiceNotSupported: the provisioner has no flow for the service
	// (the original daemon's code for this case).
	CodeServiceNotSupported = "SERVICE_NOT_SUPPORTED"
)

// Error is an error with a stable code. Its message never contains a
// secret.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the stable code of err.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return classify(err).Code
}

// classify maps backend client errors to coded errors. Backend messages are
// the backend's own (they never echo secrets).
func classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var be *backendclient.Error
	if errors.As(err, &be) {
		switch {
		case errors.Is(err, backendclient.ErrDenied):
			return &Error{Code: CodeDenied, Message: be.Message}
		case errors.Is(err, backendclient.ErrNotFound):
			return &Error{Code: CodeNotFound, Message: be.Message}
		case errors.Is(err, backendclient.ErrUnauthorized), errors.Is(err, backendclient.ErrExpired):
			return &Error{Code: CodeAuthFailed, Message: "the daemon's session is not valid (revoked or expired): " + be.Message}
		case errors.Is(err, backendclient.ErrBadRequest):
			return &Error{Code: CodeInvalidParams, Message: be.Message}
		case errors.Is(err, backendclient.ErrRateLimited):
			return &Error{Code: CodeRateLimited, Message: be.Message}
		}
		return &Error{Code: CodeBackendError, Message: fmt.Sprintf("backend answered %d %s", be.Status, be.Kind)}
	}
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		return &Error{Code: CodeUnreachable, Message: te.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeUnreachable, Message: "timed out"}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: CodeUnreachable, Message: "canceled"}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// Package agentkeys holds the vocabulary every AgentKeys component shares:
// wallet addresses, session tokens, scopes, service names and audit events,
// with the validation every entry point applies to untrusted input.
//
// Secret-bearing types (Token) redact themselves when formatted or logged, so
// an accidental fmt or slog call cannot leak them; call Reveal to get the
// value for the wire.
package agentkeys

// Package secretref parses the places outside the command line where a user
// names a credential, and writes credentials back out as text:
//
//   - a reference, agentkeys://<agent>/<service>, where <agent> is whatever
//     the CLI accepts as an agent (a local name, an alias or a 0x wallet);
//   - dotenv files (run --env-file), whose values are literals or references;
//   - templates (inject) with {{ agentkeys://<agent>/<service> }} placeholders;
//   - dotenv and POSIX shell quoting (export);
//   - a child's environment with credentials in it (ReplaceEnv).
//
// Everything here reads untrusted text: parsers never panic, bound their
// input, and their errors name a line and a key or a reference, never a
// value (a dotenv file may hold literal secrets).
package secretref

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Scheme starts every reference.
const Scheme = "agentkeys://"

// maxAgentLen bounds the agent part of a reference (a wallet is 42
// characters, aliases are shorter; e-mail-like aliases stay well below).
const maxAgentLen = 254

// Ref names one service's credential of one agent.
type Ref struct {
	Agent   string // as written: local name, alias or 0x wallet
	Service string
}

// String is the reference as written.
func (r Ref) String() string { return Scheme + r.Agent + "/" + r.Service }

// ParseRef parses agentkeys://<agent>/<service>. The agent part may hold
// letters, digits and . _ - @ + (names, aliases, wallets); the service
// part follows the service-name rule. Nothing else is accepted: no query,
// no fragment, no percent-encoding, no surrounding space.
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("a reference starts with %s", Scheme)
	}
	agent, svc, ok := strings.Cut(rest, "/")
	if !ok {
		return Ref{}, errors.New("a reference is agentkeys://<agent>/<service>")
	}
	if err := validAgentPart(agent); err != nil {
		return Ref{}, err
	}
	if err := agentkeys.ValidateService(svc); err != nil {
		return Ref{}, err
	}
	return Ref{Agent: agent, Service: svc}, nil
}

func validAgentPart(s string) error {
	if s == "" || len(s) > maxAgentLen {
		return fmt.Errorf("the agent part of a reference must be 1 to %d characters", maxAgentLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-@+", c) >= 0) {
			return errors.New("the agent part of a reference may hold letters, digits and . _ - @ +")
		}
	}
	return nil
}

// quoteRef shows a reference-like string in an error, bounded.
func quoteRef(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

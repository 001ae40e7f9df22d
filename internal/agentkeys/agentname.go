package agentkeys

import (
	"fmt"
	"strings"

	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// ParseAgentName checks the name a master gives one of its agents. The
// text check comes first (so a name with a control character or a
// bidirectional override is refused with that reason), then the alias
// rule: 1 to MaxAliasLen of lower-case letters, digits, '.', '_' and '-',
// starting with a letter or digit, never 0x… (it would read as a wallet).
// Surrounding white space is dropped; upper case is refused rather than
// lowered, so a name is stored as typed (an <agent> argument is lowered
// before lookup, so "Helper" still finds "helper").
func ParseAgentName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if err := textcheck.Check(s, MaxIdentityLen); err != nil {
		return "", fmt.Errorf("agent name: %w", err)
	}
	if err := ValidAlias(s); err != nil {
		return "", fmt.Errorf("agent name %q: %s", textcheck.Escape(truncate(s, 32)), strings.TrimPrefix(err.Error(), "alias "))
	}
	return s, nil
}

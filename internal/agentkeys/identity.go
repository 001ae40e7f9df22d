package agentkeys

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentkeys/agentkeys/internal/textcheck"
)

// IdentityKind is how a wallet is named: its address, or an alias, e-mail
// address or ENS name linked to it. The string values are the HTTP
// identity_type spellings.
type IdentityKind string

// Identity kinds.
const (
	KindWallet IdentityKind = "wallet"
	KindAlias  IdentityKind = "alias"
	KindEmail  IdentityKind = "email"
	KindENS    IdentityKind = "ens"
)

// MaxIdentityLen bounds an identity value, in bytes (the longest e-mail
// address SMTP carries).
const MaxIdentityLen = 254

// MaxAliasLen bounds an alias, in bytes.
const MaxAliasLen = 64

// Identity is one normalised name of a wallet.
type Identity struct {
	Kind  IdentityKind
	Value string
}

func (id Identity) String() string { return string(id.Kind) + ":" + id.Value }

// ParseIdentity reads an identity the way a person writes one, and is the
// one rule the CLI, the daemon and the backend share:
//
//   - surrounding white space is dropped; text that textcheck refuses (NUL,
//     control characters, bidirectional overrides, broken UTF-8) and values
//     longer than MaxIdentityLen are refused;
//   - anything starting with 0x or 0X is a wallet address and must be 0x
//     followed by 40 hex digits (an alias can never start with 0x);
//   - anything containing @ is an e-mail address;
//   - anything ending in .eth (any case) is an ENS name;
//   - anything else is an alias.
//
// Every kind is case-insensitive and normalised to lower case: wallets
// because EIP-55 mixed case is only a checksum, ENS names because ENS
// normalisation lower-cases, aliases because they are lower case by rule,
// and e-mail addresses in full (local part too): an e-mail link is a name
// for a wallet, first come first served, not a mailbox AgentKeys delivers
// to, and two spellings of one address must not name two wallets.
func ParseIdentity(s string) (Identity, error) {
	s, err := cleanIdentity(s)
	if err != nil {
		return Identity{}, err
	}
	return ParseIdentityAs(classify(s), s)
}

// ParseIdentityAs validates and normalises value as an identity of the
// given kind (an HTTP identity_type and identity_value pair). It applies
// the same rules as ParseIdentity but does not second-guess the kind: an
// alias "ops.eth" given as an alias stays an alias.
func ParseIdentityAs(kind IdentityKind, value string) (Identity, error) {
	value, err := cleanIdentity(value)
	if err != nil {
		return Identity{}, err
	}
	switch kind {
	case KindWallet:
		w, err := ParseWallet(value)
		if err != nil {
			return Identity{}, err
		}
		return Identity{KindWallet, string(w)}, nil
	case KindAlias:
		return Identity{KindAlias, value}, ValidAlias(value)
	case KindEmail:
		at := strings.IndexByte(value, '@')
		if at < 1 || at == len(value)-1 || strings.IndexByte(value[at+1:], '@') >= 0 || strings.ContainsAny(value, " \t\r\n") {
			return Identity{}, errors.New("email must look like name@example.com")
		}
		return Identity{KindEmail, value}, nil
	case KindENS:
		if !strings.HasSuffix(value, ".eth") || len(value) < len("x.eth") || strings.ContainsAny(value, " \t\r\n@") {
			return Identity{}, errors.New("ens name must end in .eth")
		}
		return Identity{KindENS, value}, nil
	case "":
		return Identity{}, errors.New("identity_type required")
	}
	return Identity{}, fmt.Errorf("unknown identity_type %q: use alias, email, ens or wallet", textcheck.Escape(truncate(string(kind), 32)))
}

// ValidAlias reports why s is not an alias: 1 to MaxAliasLen of lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit, and
// not starting with 0x (it would read as a wallet).
func ValidAlias(s string) error {
	if s == "" || len(s) > MaxAliasLen {
		return fmt.Errorf("alias must be 1 to %d characters", MaxAliasLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return errors.New("alias may use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
		}
	}
	if strings.HasPrefix(s, "0x") {
		return errors.New("alias must not start with 0x (it would read as a wallet)")
	}
	return nil
}

// cleanIdentity trims, checks and lower-cases a value.
func cleanIdentity(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("identity value required")
	}
	if err := textcheck.Check(s, MaxIdentityLen); err != nil {
		return "", fmt.Errorf("identity value: %w", err)
	}
	// Lower-casing can lengthen a value (U+0130), so check again.
	s = strings.ToLower(s)
	if len(s) > MaxIdentityLen {
		return "", fmt.Errorf("identity value: longer than %d bytes", MaxIdentityLen)
	}
	return s, nil
}

// classify names the kind of a cleaned (lower-case) value.
func classify(s string) IdentityKind {
	switch {
	case strings.HasPrefix(s, "0x"):
		return KindWallet
	case strings.Contains(s, "@"):
		return KindEmail
	case strings.HasSuffix(s, ".eth"):
		return KindENS
	}
	return KindAlias
}

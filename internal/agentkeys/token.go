package agentkeys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
)

// Token is a bearer session token: 64 lower-case hex digits (32 random
// bytes). It never formats as itself: fmt and slog print "[redacted]".
// Servers keep only its SHA-256 (TokenHash).
type Token string

// TokenHash is the hex SHA-256 of a Token, the only form a server stores.
type TokenHash string

// ErrInvalidToken is returned by ParseToken for malformed tokens.
var ErrInvalidToken = errors.New("invalid session token")

const redacted = "[redacted]"

// NewToken returns a fresh random token.
func NewToken() Token {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("agentkeys: crypto/rand failed")
	}
	return Token(hex.EncodeToString(b[:]))
}

// ParseToken checks that s has the shape of a token. The message of the
// error it returns never contains s.
func ParseToken(s string) (Token, error) {
	if len(s) != 64 {
		return "", ErrInvalidToken
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
			return "", ErrInvalidToken
		}
	}
	return Token(s), nil
}

// Reveal returns the token's value for the wire or a session file.
func (t Token) Reveal() string { return string(t) }

// Hash returns the token's SHA-256 in hex.
func (t Token) Hash() TokenHash { return HashSecret(string(t)) }

func (t Token) String() string               { return redacted }
func (t Token) GoString() string             { return redacted }
func (t Token) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (t Token) MarshalText() ([]byte, error) { return []byte(t), nil }

// HashSecret returns the hex SHA-256 of a secret string.
func HashSecret(s string) TokenHash {
	sum := sha256.Sum256([]byte(s))
	return TokenHash(hex.EncodeToString(sum[:]))
}

// Equal compares two hashes in constant time.
func (h TokenHash) Equal(o TokenHash) bool {
	return subtle.ConstantTimeCompare([]byte(h), []byte(o)) == 1
}

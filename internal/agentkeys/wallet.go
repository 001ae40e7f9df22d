package agentkeys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
)

// Wallet is an AgentKeys wallet address: "0x" followed by 40 lower-case hex
// digits. Addresses are normalised to lower case on input, so an EIP-55
// mixed-case spelling names the same wallet.
type Wallet string

// ErrInvalidWallet is returned by ParseWallet for malformed addresses.
var ErrInvalidWallet = errors.New("invalid wallet address: want 0x followed by 40 hex digits")

// ParseWallet validates s and returns it in canonical (lower-case) form.
func ParseWallet(s string) (Wallet, error) {
	if len(s) != 42 || (s[:2] != "0x" && s[:2] != "0X") {
		return "", ErrInvalidWallet
	}
	for i := 2; i < len(s); i++ {
		if !isHex(s[i]) {
			return "", ErrInvalidWallet
		}
	}
	return Wallet("0x" + strings.ToLower(s[2:])), nil
}

// NewWallet returns a fresh random wallet address.
func NewWallet() Wallet {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("agentkeys: crypto/rand failed") // never happens on supported platforms
	}
	return Wallet("0x" + hex.EncodeToString(b[:]))
}

func (w Wallet) String() string { return string(w) }

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

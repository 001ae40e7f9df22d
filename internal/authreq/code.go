package authreq

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"strings"
)

// OTP derives the 6-digit code both screens show for a request: the
// HMAC-SHA256 of the details under the request's random nonce, reduced with
// RFC 4226 §5.3 dynamic truncation (the original took the first four bytes
// without the 31-bit mask).
func OTP(nonce, details []byte) string {
	mac := hmac.New(sha256.New, nonce)
	mac.Write(details)
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	n := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", n%1_000_000)
}

// OTPEqual compares two OTPs in constant time.
func OTPEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or
// typed from a screen survives the usual confusions.
const pairAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// PairCodeLen is the number of symbols in a pair code (40 bits).
const PairCodeLen = 8

// NewPairCode returns a random pair code in its normalised form (8 symbols,
// no separator). Format adds the dash for display.
func NewPairCode() string {
	var b [PairCodeLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authreq: crypto/rand failed")
	}
	out := make([]byte, PairCodeLen)
	for i, v := range b {
		out[i] = pairAlphabet[v&31]
	}
	return string(out)
}

// FormatPairCode renders a normalised code as XXXX-XXXX.
func FormatPairCode(code string) string {
	if len(code) != PairCodeLen {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// NormalizePairCode accepts what a person types (any case, dashes and
// spaces, O for 0, I and L for 1) and returns the normalised code, or false
// if it cannot be a pair code.
func NormalizePairCode(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case '-', ' ':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if !strings.ContainsRune(pairAlphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != PairCodeLen {
		return "", false
	}
	return b.String(), true
}

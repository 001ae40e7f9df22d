package scraper

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
)

func randInt(n int64) int64 {
	if n <= 0 {
		return 0
	}
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		return 0
	}
	return v.Int64()
}

func randFloat() float64 { return float64(randInt(1<<24)) / (1 << 24) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPassword makes a throwaway account password that meets the usual
// rules (length, upper, lower, digit, symbol).
func newPassword() string {
	const alpha = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 18)
	for i := range b {
		b[i] = alpha[randInt(int64(len(alpha)))]
	}
	return string(b) + "Aa7-"
}

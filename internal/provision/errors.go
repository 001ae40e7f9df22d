package provision

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Error is a failed provisioning run. Message never holds a secret.
type Error struct {
	Code        ErrorCode
	Message     string
	Step        string       // scraper step, when known
	Kind        TripwireKind // for CodeTripwire
	Diagnostics string       // directory with a screenshot and the last actions
	Hint        string       // what the user can do
}

func (e *Error) Error() string { return e.Message }

// CodeOf returns the provisioning error code of err (CodeInternal when
// err is not an *Error).
func CodeOf(err error) ErrorCode {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}

// Mask shows enough of a key to recognise it: the first 8 and last 4
// characters (runes, not bytes) around "****"; short keys are all stars.
func Mask(key string) string {
	n := utf8.RuneCountInString(key)
	if n < 16 {
		return "****"
	}
	r := []rune(key)
	return string(r[:8]) + "****" + string(r[n-4:])
}

// redact replaces every occurrence of the secrets in s.
func redact(s string, secrets ...string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

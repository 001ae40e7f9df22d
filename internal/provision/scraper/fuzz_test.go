package scraper

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzReadConfig: the scraper's stdin never makes it panic, and an error
// never quotes a value (secrets) from the input.
func FuzzReadConfig(f *testing.F) {
	for _, s := range []string{
		`{"service":"openrouter","signup_url":"http://127.0.0.1:1/sign-up","email":"a@b.c","password":"hunter2-secret","mail":{"backend":"mock","session_token":"tok-secret"}}`,
		`{"service":"openai","selector_timeout":1000000}`, `{}`, `{"bogus":"value-secret"}`, `[]`, `{"email":1}`, ``, `{"service":"x"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := readConfig(bytes.NewReader(in))
		// Errors say what is wrong, not what was sent: they stay short
		// whatever the input (an unknown field's name is the most they
		// quote, and encoding/json bounds nothing, so neither do we: check
		// the seeds' secret values never appear).
		if err != nil {
			for _, v := range []string{"hunter2-secret", "tok-secret"} {
				if strings.Contains(err.Error(), v) && !bytes.Contains(in, []byte(`"`+v+`":`)) {
					t.Fatalf("error quotes a value: %v", err)
				}
			}
		}
	})
}

package provision

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Verdict is the result of checking a key against its service.
type Verdict int

// Verdicts.
const (
	KeyValid    Verdict = iota
	KeyRejected         // 401/403: the key does not work
	KeyUnknown          // the endpoint was down, rate limited or answered oddly
)

func (v Verdict) String() string {
	switch v {
	case KeyValid:
		return "valid"
	case KeyRejected:
		return "rejected"
	}
	return "unknown"
}

const verifyTimeout = 10 * time.Second

// VerifyKey asks the service whether key works: GET VerifyURL with
// "Authorization: Bearer <key>". The reason describes the answer for
// people (host and status, never the response body or the key).
func VerifyKey(ctx context.Context, hc *http.Client, s Service, key string) (Verdict, string) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u, err := url.Parse(s.VerifyURL())
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return KeyUnknown, fmt.Sprintf("verification URL for %s is not an http(s) URL", s.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return KeyUnknown, "could not build the verification request"
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return KeyUnknown, fmt.Sprintf("%s did not answer", u.Host)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return KeyValid, fmt.Sprintf("%s accepted the key (HTTP %d)", u.Host, resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return KeyRejected, fmt.Sprintf("%s rejected the key (HTTP %d)", u.Host, resp.StatusCode)
	case resp.StatusCode == http.StatusTooManyRequests:
		return KeyUnknown, fmt.Sprintf("%s is rate limiting (HTTP 429)", u.Host)
	}
	return KeyUnknown, fmt.Sprintf("%s answered HTTP %d", u.Host, resp.StatusCode)
}

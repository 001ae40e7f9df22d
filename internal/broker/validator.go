package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// Identity is what the session backend says about a bearer.
type Identity struct {
	Wallet    agentkeys.Wallet
	Kind      string           // "master" or "agent"
	Scope     *agentkeys.Scope // nil: unrestricted (a master)
	ExpiresAt time.Time
}

// SessionValidator resolves a bearer token to the session's identity. It
// returns an *UnauthorizedError when the backend rejects the token, and any
// other error when the backend could not answer. Error text must never
// contain the token.
type SessionValidator interface {
	Validate(ctx context.Context, token string) (Identity, error)
}

// UnauthorizedError means the backend rejected the session.
type UnauthorizedError struct {
	Reason string // safe for clients: "session not found", "session revoked", ...
}

func (e *UnauthorizedError) Error() string { return e.Reason }

// BackendError means the backend could not answer. Detail is for logs and
// the audit ledger only.
type BackendError struct{ Detail string }

func (e *BackendError) Error() string { return "session backend: " + e.Detail }

// knownReasons are the backend 401 messages passed on to clients; anything
// else becomes "session not valid".
var knownReasons = map[string]bool{
	"session not found": true, "session revoked": true, "session expired": true,
	"missing Authorization header": true,
}

// HTTPValidator asks the backend's GET /session/validate.
type HTTPValidator struct {
	url    string
	client *http.Client
}

// NewHTTPValidator validates against the backend at baseURL; timeout bounds
// each call.
func NewHTTPValidator(baseURL string, timeout time.Duration) *HTTPValidator {
	return &HTTPValidator{
		url: strings.TrimRight(baseURL, "/") + "/session/validate",
		client: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				Proxy:               nil, // a bearer must not wander through an ambient proxy
				DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 5 * time.Second,
				ForceAttemptHTTP2:   true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// maxValidateBody bounds the backend's answer.
const maxValidateBody = 64 << 10

type validateResponse struct {
	Wallet    string           `json:"wallet"`
	Kind      string           `json:"kind"`
	Scope     *agentkeys.Scope `json:"scope"`
	ExpiresAt int64            `json:"expires_at"`
}

// Validate implements SessionValidator.
func (v *HTTPValidator) Validate(ctx context.Context, token string) (Identity, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return Identity{}, &BackendError{Detail: "build request: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return Identity{}, &BackendError{Detail: "request failed: " + transportCause(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxValidateBody))
	if err != nil {
		return Identity{}, &BackendError{Detail: "read response: " + transportCause(err)}
	}
	return parseValidateResponse(resp.StatusCode, body)
}

// parseValidateResponse interprets the backend's answer (untrusted input).
func parseValidateResponse(status int, body []byte) (Identity, error) {
	switch {
	case status == http.StatusUnauthorized:
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &e)
		if !knownReasons[e.Message] {
			e.Message = "session not valid"
		}
		return Identity{}, &UnauthorizedError{Reason: e.Message}
	case status != http.StatusOK:
		return Identity{}, &BackendError{Detail: fmt.Sprintf("backend returned %d %s", status, http.StatusText(status))}
	}
	var vr validateResponse
	if err := json.Unmarshal(body, &vr); err != nil {
		return Identity{}, &BackendError{Detail: "validate response is not JSON"}
	}
	w, err := agentkeys.ParseWallet(vr.Wallet)
	if err != nil {
		return Identity{}, &BackendError{Detail: "validate response has no valid wallet"}
	}
	if vr.Kind != "" && vr.Kind != "master" && vr.Kind != "agent" {
		return Identity{}, &BackendError{Detail: "validate response has unknown kind"}
	}
	scope, err := vr.Scope.Normalize()
	if err != nil {
		return Identity{}, &BackendError{Detail: "validate response has a malformed scope"}
	}
	id := Identity{Wallet: w, Kind: vr.Kind, Scope: scope}
	if vr.ExpiresAt > 0 {
		id.ExpiresAt = time.Unix(vr.ExpiresAt, 0)
	}
	return id, nil
}

// transportCause names what went wrong without the URL, which
// (*url.Error).Error would include.
func transportCause(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// Health checks the backend's GET /health.
func (v *HTTPValidator) Health(ctx context.Context) error {
	u := strings.TrimSuffix(v.url, "/session/validate") + "/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return errors.New("backend unreachable: " + transportCause(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("backend /health returned %d", resp.StatusCode)
	}
	return nil
}

// cachingValidator reuses successful validations for a few seconds, keyed
// by token hash, so a burst of mints costs one backend round trip. Failures
// are never cached; an entry never outlives its session.
type cachingValidator struct {
	inner SessionValidator
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[agentkeys.TokenHash]cacheEntry
}

type cacheEntry struct {
	id      Identity
	expires time.Time
}

const maxCacheEntries = 10_000

func newCachingValidator(inner SessionValidator, ttl time.Duration, now func() time.Time) SessionValidator {
	if ttl <= 0 {
		return inner
	}
	return &cachingValidator{inner: inner, ttl: ttl, now: now, entries: map[agentkeys.TokenHash]cacheEntry{}}
}

func (c *cachingValidator) Validate(ctx context.Context, token string) (Identity, error) {
	key := agentkeys.HashSecret(token)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.id, nil
	}
	id, err := c.inner.Validate(ctx, token)
	if err != nil {
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
		return id, err
	}
	exp := now.Add(c.ttl)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(exp) {
		exp = id.ExpiresAt
	}
	c.mu.Lock()
	if len(c.entries) >= maxCacheEntries {
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry{id: id, expires: exp}
	c.mu.Unlock()
	return id, nil
}

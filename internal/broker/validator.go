package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// Identity is what the session backend says about a bearer.
type Identity struct {
	Wallet    agentkeys.Wallet
	Kind      string           // "master" or "agent"
	Scope     *agentkeys.Scope // nil: unrestricted (a master)
	ExpiresAt time.Time
	// Epoch is the backend's revocation epoch read before it validated
	// (HasEpoch false: the backend did not say, and the answer must not be
	// cached).
	Epoch    int64
	HasEpoch bool
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
	url      string
	epochURL string
	client   *http.Client
}

// NewHTTPValidator validates against the backend at baseURL; timeout bounds
// each call.
func NewHTTPValidator(baseURL string, timeout time.Duration) *HTTPValidator {
	return &HTTPValidator{
		url:      strings.TrimRight(baseURL, "/") + "/session/validate",
		epochURL: strings.TrimRight(baseURL, "/") + "/session/epoch",
		client: &http.Client{
			Timeout:       timeout,
			Transport:     jsonhttp.NewTransport(2*time.Second, 256),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// maxValidateBody bounds the backend's answer.
const maxValidateBody = 64 << 10

// validateResponse is the backend's answer, with the epoch a pointer so
// that a backend without revocation epochs is told from epoch 0.
type validateResponse struct {
	api.ValidateResponse
	Epoch *int64 `json:"epoch"`
	// Scope shadows the embedded field: the original backend sends the
	// scope as a JSON string holding the scope object, ours as the object.
	Scope json.RawMessage `json:"scope"`
}

// parseScope reads a scope given as an object, as a string holding one
// (the original backend's shape), or as null / "" (unrestricted).
func parseScope(raw json.RawMessage) (*agentkeys.Scope, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var inner string
		if err := json.Unmarshal(raw, &inner); err != nil {
			return nil, err
		}
		raw = bytes.TrimSpace([]byte(inner))
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, errors.New("scope is not an object")
	}
	var sc agentkeys.Scope
	if err := json.Unmarshal(raw, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
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
		return Identity{}, &BackendError{Detail: "request failed: " + jsonhttp.TransportCause(err).Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxValidateBody))
	if err != nil {
		return Identity{}, &BackendError{Detail: "read response: " + jsonhttp.TransportCause(err).Error()}
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
	w, err := agentkeys.ParseWallet(string(vr.Wallet))
	if err != nil {
		return Identity{}, &BackendError{Detail: "validate response has no valid wallet"}
	}
	if vr.Kind != "" && vr.Kind != "master" && vr.Kind != "agent" {
		return Identity{}, &BackendError{Detail: "validate response has unknown kind"}
	}
	raw, err := parseScope(vr.Scope)
	if err != nil {
		return Identity{}, &BackendError{Detail: "validate response has a malformed scope"}
	}
	scope, err := raw.Normalize()
	if err != nil {
		return Identity{}, &BackendError{Detail: "validate response has a malformed scope"}
	}
	id := Identity{Wallet: w, Kind: vr.Kind, Scope: scope}
	if vr.ExpiresAt > 0 {
		id.ExpiresAt = time.Unix(vr.ExpiresAt, 0)
	}
	if vr.Epoch != nil && *vr.Epoch >= 0 {
		id.Epoch, id.HasEpoch = *vr.Epoch, true
	}
	return id, nil
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
		return errors.New("backend unreachable: " + jsonhttp.TransportCause(err).Error())
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("backend /health returned %d", resp.StatusCode)
	}
	return nil
}

// ErrEpochUnsupported means the backend does not serve GET /session/epoch
// (an older backend): every mint must then be validated with it.
var ErrEpochUnsupported = errors.New("backend has no revocation epoch")

// EpochSource reports the backend's current revocation epoch.
type EpochSource interface {
	Epoch(ctx context.Context) (int64, error)
}

// Epoch asks the backend's GET /session/epoch.
func (v *HTTPValidator) Epoch(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.epochURL, nil)
	if err != nil {
		return 0, &BackendError{Detail: "build request: " + err.Error()}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, &BackendError{Detail: "epoch request failed: " + jsonhttp.TransportCause(err).Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, &BackendError{Detail: "read epoch response: " + jsonhttp.TransportCause(err).Error()}
	}
	return parseEpochResponse(resp.StatusCode, body)
}

// parseEpochResponse interprets the backend's epoch answer (untrusted).
func parseEpochResponse(status int, body []byte) (int64, error) {
	switch {
	case status == http.StatusNotFound:
		return 0, ErrEpochUnsupported
	case status != http.StatusOK:
		return 0, &BackendError{Detail: fmt.Sprintf("epoch: backend returned %d %s", status, http.StatusText(status))}
	}
	var er struct {
		Epoch *int64 `json:"epoch"`
	}
	if err := json.Unmarshal(body, &er); err != nil || er.Epoch == nil || *er.Epoch < 0 {
		return 0, &BackendError{Detail: "epoch response is malformed"}
	}
	return *er.Epoch, nil
}

// epochCache reuses a successful validation only while the backend's
// revocation epoch is the one the validation was made at. Every lookup
// first obtains a fresh epoch: one that the backend read after the mint
// request arrived, so a revocation whose answer a client has seen before
// it sent the mint always shows (the backend bumps the epoch in the
// revoking transaction). Concurrent lookups share one epoch call (see
// epochGroup), so a burst costs one small round trip, not one validation
// per mint. Failures are never cached, an entry never outlives its
// session nor ttl, and a backend that cannot say its epoch fails the mint.
type epochCache struct {
	inner  SessionValidator
	epochs *epochGroup
	ttl    time.Duration
	now    func() time.Time

	mu          sync.Mutex
	entries     map[agentkeys.TokenHash]cacheEntry
	unsupported time.Time // the backend answered 404 to /session/epoch; until then, validate every time
}

type cacheEntry struct {
	id      Identity
	expires time.Time
}

const (
	maxCacheEntries = 10_000
	// unsupportedRecheck is how long a backend without /session/epoch is
	// believed before it is asked again.
	unsupportedRecheck = time.Minute
	// epochTimeout bounds one shared epoch call.
	epochTimeout = 5 * time.Second
)

// newCachingValidator wraps inner in an epoch-checked cache when ttl > 0
// and inner can report the epoch; otherwise every mint is validated.
func newCachingValidator(inner SessionValidator, ttl time.Duration, now func() time.Time) SessionValidator {
	src, ok := inner.(EpochSource)
	if ttl <= 0 || !ok {
		return inner
	}
	return &epochCache{inner: inner, epochs: newEpochGroup(src.Epoch, epochTimeout), ttl: ttl, now: now,
		entries: map[agentkeys.TokenHash]cacheEntry{}}
}

func (c *epochCache) Validate(ctx context.Context, token string) (Identity, error) {
	c.mu.Lock()
	skip := c.now().Before(c.unsupported)
	c.mu.Unlock()
	if skip {
		return c.inner.Validate(ctx, token)
	}
	epoch, err := c.epochs.get(ctx)
	if errors.Is(err, ErrEpochUnsupported) {
		c.mu.Lock()
		c.unsupported = c.now().Add(unsupportedRecheck)
		clear(c.entries)
		c.mu.Unlock()
		return c.inner.Validate(ctx, token)
	}
	if err != nil {
		var be *BackendError
		if !errors.As(err, &be) {
			err = &BackendError{Detail: "epoch: " + jsonhttp.TransportCause(err).Error()}
		}
		return Identity{}, err
	}
	key := agentkeys.HashSecret(token)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.id.Epoch == epoch && now.Before(e.expires) {
		return e.id, nil
	}
	id, err := c.inner.Validate(ctx, token)
	if err != nil || !id.HasEpoch {
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
			if !now.Before(v.expires) || v.id.Epoch != epoch {
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

// epochGroup coalesces epoch calls like a group commit: a caller joins the
// call that has not started yet, or starts one; it never joins a call that
// was already on the wire when it arrived (that answer could predate a
// revocation the caller has seen). At most one call runs and one waits.
type epochGroup struct {
	fetch   func(context.Context) (int64, error)
	timeout time.Duration

	mu      sync.Mutex
	running bool
	queued  *epochFlight // not started yet: joinable
}

type epochFlight struct {
	done    chan struct{}
	waiters int // callers sharing it (for tests and metrics)
	epoch   int64
	err     error
}

func newEpochGroup(fetch func(context.Context) (int64, error), timeout time.Duration) *epochGroup {
	return &epochGroup{fetch: fetch, timeout: timeout}
}

// get returns an epoch read by a call that started after get was called.
func (g *epochGroup) get(ctx context.Context) (int64, error) {
	g.mu.Lock()
	f := g.queued
	if f == nil {
		f = &epochFlight{done: make(chan struct{})}
		g.queued = f
	}
	f.waiters++
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.epoch, f.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run starts queued calls one after the other until none is queued.
func (g *epochGroup) run() {
	for {
		g.mu.Lock()
		f := g.queued
		g.queued = nil
		if f == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
		f.epoch, f.err = g.fetch(ctx)
		cancel()
		close(f.done)
	}
}

// Tree asks the backend's GET /session/tree which wallets the bearer may
// see: its own and every one below it. Errors are *UnauthorizedError or
// *BackendError, as for Validate.
func (v *HTTPValidator) Tree(ctx context.Context, token string) ([]agentkeys.Wallet, error) {
	u := strings.TrimSuffix(v.url, "/session/validate") + "/session/tree"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &BackendError{Detail: "build request: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, &BackendError{Detail: "request failed: " + jsonhttp.TransportCause(err).Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTreeBody))
	if err != nil {
		return nil, &BackendError{Detail: "read response: " + jsonhttp.TransportCause(err).Error()}
	}
	return parseTreeResponse(resp.StatusCode, body)
}

// maxTreeBody bounds the backend's tree answer (5,000 wallets fit).
const maxTreeBody = 512 << 10

// parseTreeResponse interprets the backend's answer (untrusted input).
func parseTreeResponse(status int, body []byte) ([]agentkeys.Wallet, error) {
	if status != http.StatusOK {
		if _, err := parseValidateResponse(status, body); err != nil {
			return nil, err
		}
		return nil, &BackendError{Detail: fmt.Sprintf("backend returned %d %s", status, http.StatusText(status))}
	}
	var tr api.SessionTreeResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, &BackendError{Detail: "tree response is not JSON"}
	}
	out := make([]agentkeys.Wallet, 0, len(tr.Wallets))
	for _, w := range tr.Wallets {
		pw, err := agentkeys.ParseWallet(string(w))
		if err != nil {
			return nil, &BackendError{Detail: "tree response has an invalid wallet"}
		}
		out = append(out, pw)
	}
	if len(out) == 0 {
		return nil, &BackendError{Detail: "tree response names no wallet"}
	}
	return out, nil
}

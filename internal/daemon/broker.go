package daemon

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/ecscreds"
	"github.com/agentkeys/agentkeys/internal/hardening"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// AWSCredentials and OIDCToken are the broker's answers.
type (
	AWSCredentials = brokerclient.AWSCredentials
	OIDCToken      = brokerclient.OIDCToken
)

// BrokerClient calls agentkeys-broker's mint endpoints, mapping failures to
// the daemon's error codes. The broker never receives the daemon's session:
// only short-lived broker tokens the backend (d) derives from it.
type BrokerClient struct {
	c *brokerclient.Client
}

// NewBrokerClient returns a client for the broker at baseURL whose bearers
// are derived from the session by d, the backend that issued it.
func NewBrokerClient(baseURL string, hc *http.Client, d brokerclient.Deriver) (*BrokerClient, error) {
	c, err := brokerclient.New(baseURL, hc, d)
	if err != nil {
		return nil, err
	}
	return &BrokerClient{c: c}, nil
}

// URL is the broker's base URL.
func (b *BrokerClient) URL() string { return b.c.URL() }

// Forget drops the cached broker token.
func (b *BrokerClient) Forget() { b.c.Forget() }

// MintAWS asks the broker for temporary AWS credentials.
func (b *BrokerClient) MintAWS(ctx context.Context, tok agentkeys.Token) (AWSCredentials, error) {
	c, err := b.c.MintAWS(ctx, tok)
	return c, brokerError(err)
}

// MintOIDC asks the broker for a web-identity JWT.
func (b *BrokerClient) MintOIDC(ctx context.Context, tok agentkeys.Token) (OIDCToken, error) {
	t, err := b.c.MintOIDC(ctx, tok)
	return t, brokerError(err)
}

// brokerError maps a brokerclient error to the daemon's stable codes.
func brokerError(err error) error {
	if err == nil {
		return nil
	}
	var be *brokerclient.Error
	if errors.As(err, &be) {
		switch be.Status {
		case http.StatusUnauthorized:
			return errorf(CodeAuthFailed, "%s: broker refused the daemon's session (%s)", be.Op, be.Kind)
		case http.StatusForbidden:
			return errorf(CodeDenied, "%s: broker denied the request (%s)", be.Op, be.Kind)
		case http.StatusTooManyRequests:
			return errorf(CodeRateLimited, "%s: broker rate limit; retry later", be.Op)
		}
		return errorf(CodeBrokerError, "%s: broker answered %d %s", be.Op, be.Status, be.Kind)
	}
	var de *brokerclient.DeriveError
	if errors.As(err, &de) {
		switch {
		case errors.Is(err, brokerclient.ErrNoBrokerTokens):
			return errorf(CodeBrokerError, "%s", de.Error())
		case errors.Is(err, backendclient.ErrUnauthorized):
			return errorf(CodeAuthFailed, "%s: the backend refused the daemon's session (revoked or expired)", de.Op)
		case errors.Is(err, backendclient.ErrRateLimited):
			return errorf(CodeRateLimited, "%s: backend rate limit; retry later", de.Op)
		}
		var tr *jsonhttp.TransportError
		if errors.As(err, &tr) {
			return errorf(CodeUnreachable, "%s", de.Error())
		}
		return errorf(CodeBrokerError, "%s: the backend could not derive a broker token", de.Op)
	}
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		return errorf(CodeUnreachable, "%s", te.Error())
	}
	return errorf(CodeBrokerError, "broker call failed")
}

// refreshAt is when a broker credential should be replaced
// (ecscreds.RefreshAt: a fifth of its lifetime before expiry, within 10 s
// and 5 minutes).
func refreshAt(now, exp time.Time) time.Time { return ecscreds.RefreshAt(now, exp) }

// mintCache caches one broker credential until shortly before expiry, as
// JSON in secret memory, and coalesces concurrent mints.
type mintCache struct {
	mu      sync.Mutex
	buf     *hardening.Buffer
	fresh   time.Time // refresh after this
	exp     time.Time
	lastUse time.Time
	flight  chan struct{}
	now     func() time.Time
}

// get returns the cached JSON (a copy the caller must clear) or mints.
// usable says whether a cached value may be served now (the session is
// confirmed valid); it is asked under the cache's lock, so a value dropped
// by a revocation is never served after.
func (c *mintCache) get(ctx context.Context, usable func() bool, mint func(context.Context) ([]byte, time.Time, error)) ([]byte, time.Time, error) {
	for {
		c.mu.Lock()
		now := c.now()
		if c.buf != nil && now.Before(c.fresh) && usable() {
			out := bytes.Clone(c.buf.Bytes())
			c.lastUse = now
			exp := c.exp
			c.mu.Unlock()
			return out, exp, nil
		}
		if c.flight != nil {
			ch := c.flight
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, time.Time{}, errorf(CodeUnreachable, "canceled while waiting for the broker")
			}
		}
		ch := make(chan struct{})
		c.flight = ch
		c.mu.Unlock()

		data, exp, err := mint(ctx)
		c.mu.Lock()
		c.flight = nil
		close(ch)
		if err != nil {
			c.mu.Unlock()
			return nil, time.Time{}, err
		}
		if !usable() {
			// Not confirmed (or revoked while minting): hand the fresh
			// credential to this caller only, keep nothing.
			c.dropLocked()
			c.mu.Unlock()
			return data, exp, nil
		}
		c.dropLocked()
		c.buf = hardening.Copy(data)
		c.exp, c.fresh, c.lastUse = exp, refreshAt(c.now(), exp), c.now()
		c.mu.Unlock()
		return data, exp, nil
	}
}

func (c *mintCache) dropLocked() {
	if c.buf != nil {
		c.buf.Destroy()
		c.buf = nil
	}
}

// evictIdle drops the cached value if unused since before cutoff or
// expired.
func (c *mintCache) evictIdle(cutoff time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf != nil && (c.lastUse.Before(cutoff) || !c.now().Before(c.exp)) {
		c.dropLocked()
		return true
	}
	return false
}

func (c *mintCache) clear() {
	c.mu.Lock()
	c.dropLocked()
	c.mu.Unlock()
}

package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/hardening"
)

// AWSCredentials are temporary AWS credentials minted by the broker.
type AWSCredentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"-"`
	Wallet          string    `json:"wallet"`
}

// OIDCToken is a web-identity JWT minted by the broker.
type OIDCToken struct {
	JWT        string    `json:"jwt"`
	Wallet     string    `json:"wallet"`
	Expiration time.Time `json:"-"`
}

// BrokerClient calls agentkeys-broker's mint endpoints (SPEC §2) with the
// daemon's session as bearer.
type BrokerClient struct {
	base string
	http *http.Client
}

// NewBrokerClient returns a client for the broker at baseURL.
func NewBrokerClient(baseURL string, hc *http.Client) (*BrokerClient, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("broker URL must look like http://127.0.0.1:8091, got %q", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}, Timeout: 20 * time.Second}
	}
	return &BrokerClient{base: u.String(), http: hc}, nil
}

// URL is the broker's base URL.
func (b *BrokerClient) URL() string { return b.base }

// flexTime accepts unix seconds (the broker's wire form) or RFC 3339.
type flexTime struct{ t time.Time }

func (f *flexTime) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			f.t = time.Unix(n, 0)
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		f.t = t
		return err
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	f.t = time.Unix(int64(n), 0)
	return nil
}

func (b *BrokerClient) post(ctx context.Context, op, path string, tok agentkeys.Token, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+path, bytes.NewReader(nil))
	if err != nil {
		return errorf(CodeInternal, "%s: build request", op)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return errorf(CodeUnreachable, "%s: broker did not answer in time", op)
		}
		return errorf(CodeUnreachable, "%s: broker unreachable: %v", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return errorf(CodeUnreachable, "%s: reading broker answer failed", op)
	}
	defer clear(raw)
	if resp.StatusCode != http.StatusOK {
		var env struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &env)
		kind := env.Error
		if kind == "" {
			kind = http.StatusText(resp.StatusCode)
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			return errorf(CodeAuthFailed, "%s: broker refused the daemon's session (%s)", op, kind)
		case http.StatusForbidden:
			return errorf(CodeDenied, "%s: broker denied the request (%s)", op, kind)
		case http.StatusTooManyRequests:
			return errorf(CodeRateLimited, "%s: broker rate limit; retry later", op)
		}
		return errorf(CodeBrokerError, "%s: broker answered %d %s", op, resp.StatusCode, kind)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return errorf(CodeBrokerError, "%s: malformed broker answer", op)
	}
	return nil
}

// MintAWS asks the broker for temporary AWS credentials.
func (b *BrokerClient) MintAWS(ctx context.Context, tok agentkeys.Token) (AWSCredentials, error) {
	var out struct {
		AWSCredentials
		Expiration flexTime `json:"expiration"`
	}
	if err := b.post(ctx, "mint AWS credentials", "/v1/mint-aws-creds", tok, &out); err != nil {
		return AWSCredentials{}, err
	}
	c := out.AWSCredentials
	c.Expiration = out.Expiration.t
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Expiration.IsZero() {
		return AWSCredentials{}, errorf(CodeBrokerError, "mint AWS credentials: broker answer lacks credentials or expiration")
	}
	return c, nil
}

// MintOIDC asks the broker for a web-identity JWT.
func (b *BrokerClient) MintOIDC(ctx context.Context, tok agentkeys.Token) (OIDCToken, error) {
	var out struct {
		OIDCToken
		Expiration flexTime `json:"expiration"`
	}
	if err := b.post(ctx, "mint OIDC token", "/v1/mint-oidc-jwt", tok, &out); err != nil {
		return OIDCToken{}, err
	}
	t := out.OIDCToken
	t.Expiration = out.Expiration.t
	if t.JWT == "" || t.Expiration.IsZero() {
		return OIDCToken{}, errorf(CodeBrokerError, "mint OIDC token: broker answer lacks jwt or expiration")
	}
	return t, nil
}

// refreshAt is when a credential valid from now until exp should be
// replaced: a fifth of its lifetime before expiry, at least 10 s and at
// most 5 minutes before.
func refreshAt(now, exp time.Time) time.Time {
	margin := exp.Sub(now) / 5
	margin = max(margin, 10*time.Second)
	margin = min(margin, 5*time.Minute)
	return exp.Add(-margin)
}

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
func (c *mintCache) get(ctx context.Context, mint func(context.Context) ([]byte, time.Time, error)) ([]byte, time.Time, error) {
	for {
		c.mu.Lock()
		now := c.now()
		if c.buf != nil && now.Before(c.fresh) {
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

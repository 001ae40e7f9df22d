// Package brokerclient is the typed Go client of agentkeys-broker's mint
// endpoints, used by the daemon and the CLI. Its errors never carry the
// bearer, the minted credential or the broker's URL.
//
// The broker never sees a session: for each session the client asks the
// backend that issued it (a Deriver) for a broker token — minutes long,
// accepted by the backend only at GET /session/validate, dead with the
// session — and sends only that. A backend that cannot issue one is an
// error; the client never falls back to sending the session.
package brokerclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// AWSCredentials are temporary AWS credentials minted by the broker. They
// redact themselves in fmt and slog output.
type AWSCredentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"-"`
	Wallet          string    `json:"wallet"`
}

func (c AWSCredentials) String() string {
	return fmt.Sprintf("AWSCredentials{AccessKeyID: %s, SecretAccessKey: [redacted], SessionToken: [redacted], Expiration: %s}", c.AccessKeyID, c.Expiration.Format(time.RFC3339))
}

// LogValue keeps the secret parts out of slog.
func (c AWSCredentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Env renders the credentials as the environment stock AWS tooling reads;
// region, when known, is set as AWS_REGION and AWS_DEFAULT_REGION.
func (c AWSCredentials) Env(region string) []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + c.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + c.SecretAccessKey,
		"AWS_SESSION_TOKEN=" + c.SessionToken,
	}
	if region != "" {
		env = append(env, "AWS_REGION="+region, "AWS_DEFAULT_REGION="+region)
	}
	return env
}

// OIDCToken is a web-identity JWT minted by the broker.
type OIDCToken struct {
	JWT        string    `json:"jwt"`
	Wallet     string    `json:"wallet"`
	Expiration time.Time `json:"-"`
}

// Error is an error answered by the broker: its status and error kind
// (unauthorized, forbidden, rate_limited, audit_error, …).
type Error struct {
	Op      string
	Status  int
	Kind    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: broker answered %d %s: %s", e.Op, e.Status, e.Kind, e.Message)
}

// transportError is a failure to reach the broker (at url, "" if unknown)
// or to read its answer.
func transportError(op, url string, err error) error {
	return &jsonhttp.TransportError{Op: op, Server: "broker", URL: url, Err: err}
}

// Deriver obtains from the backend that issued session a short-lived token
// for the broker's audience (ttl 0: the backend's default).
// *backendclient.Client is one.
type Deriver interface {
	BrokerToken(ctx context.Context, session agentkeys.Token, ttl time.Duration) (agentkeys.Token, time.Time, error)
}

// ErrNoBrokerTokens means the backend does not issue broker tokens (it
// predates them). The client then refuses rather than send the session.
var ErrNoBrokerTokens = errors.New("the backend does not issue broker tokens (it predates them); upgrade the backend — the session itself is never sent to the broker")

// DeriveError is a failure to obtain a broker token from the backend. It
// unwraps to the backend client's error, so errors.Is matches its
// sentinels (unauthorized: the session is invalid, expired or revoked).
type DeriveError struct {
	Op  string
	Err error
}

func (e *DeriveError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *DeriveError) Unwrap() error { return e.Err }

// Client calls one broker.
type Client struct {
	base   string
	http   *http.Client
	derive Deriver
	now    func() time.Time

	sem    chan struct{} // one derivation at a time
	mu     sync.Mutex
	cached cachedToken
}

type cachedToken struct {
	session agentkeys.TokenHash
	token   agentkeys.Token
	refresh time.Time
}

// DefaultTimeout bounds each mint.
const DefaultTimeout = 20 * time.Second

// ParseURL checks and normalises a broker URL (no trailing slash).
func ParseURL(baseURL string) (string, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("broker URL must look like http://127.0.0.1:8091, got %q", baseURL)
	}
	return u.String(), nil
}

// New returns a client for the broker at baseURL that derives its bearers
// through d (required); hc nil means a default client with DefaultTimeout
// and no proxy.
func New(baseURL string, hc *http.Client, d Deriver) (*Client, error) {
	base, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, errors.New("brokerclient: a Deriver is required (the broker is sent only derived tokens)")
	}
	if hc == nil {
		hc = &http.Client{Transport: jsonhttp.NewTransport(5*time.Second, 8), Timeout: DefaultTimeout}
	}
	return &Client{base: base, http: hc, derive: d, now: time.Now, sem: make(chan struct{}, 1)}, nil
}

// bearer returns a broker token for session: the cached one until a
// minute (or a fifth of its life) before it expires, else a fresh one.
func (b *Client) bearer(ctx context.Context, op string, session agentkeys.Token, fresh bool) (tok agentkeys.Token, cached bool, err error) {
	h := session.Hash()
	if !fresh {
		if tok, ok := b.fromCache(h); ok {
			return tok, true, nil
		}
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return "", false, &DeriveError{Op: op, Err: errors.New("cancelled while deriving a broker token")}
	}
	defer func() { <-b.sem }()
	if !fresh {
		if tok, ok := b.fromCache(h); ok { // derived while we waited
			return tok, true, nil
		}
	}
	start := b.now()
	tok, exp, err := b.derive.BrokerToken(ctx, session, 0)
	if err != nil {
		if errors.Is(err, backendclient.ErrNotFound) {
			err = ErrNoBrokerTokens
		}
		return "", false, &DeriveError{Op: op, Err: err}
	}
	margin := min(exp.Sub(start)/5, time.Minute)
	b.mu.Lock()
	b.cached = cachedToken{session: h, token: tok, refresh: exp.Add(-margin)}
	b.mu.Unlock()
	return tok, false, nil
}

func (b *Client) fromCache(h agentkeys.TokenHash) (agentkeys.Token, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cached
	if c.token != "" && c.session.Equal(h) && b.now().Before(c.refresh) {
		return c.token, true
	}
	return "", false
}

// Forget drops the cached broker token (its session was revoked).
func (b *Client) Forget() {
	b.mu.Lock()
	b.cached = cachedToken{}
	b.mu.Unlock()
}

// URL is the broker's base URL.
func (b *Client) URL() string { return b.base }

// flexTime accepts unix seconds (the broker's wire form, api's Expiration)
// or RFC 3339.
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

// post sends a mint for session with a broker token derived from it. A
// cached token the broker refuses (401) is replaced once: it may have been
// swept, or the backend restarted.
func (b *Client) post(ctx context.Context, op, path string, session agentkeys.Token, out any) error {
	return b.call(ctx, op, http.MethodPost, path, session, out)
}

// call is post with any method (path may carry a query).
func (b *Client) call(ctx context.Context, op, method, path string, session agentkeys.Token, out any) error {
	tok, cached, err := b.bearer(ctx, op, session, false)
	if err != nil {
		return err
	}
	err = b.callBearer(ctx, op, method, path, tok, out)
	var be *Error
	if cached && errors.As(err, &be) && be.Status == http.StatusUnauthorized {
		if tok, _, err = b.bearer(ctx, op, session, true); err != nil {
			return err
		}
		err = b.callBearer(ctx, op, method, path, tok, out)
	}
	return err
}

func (b *Client) callBearer(ctx context.Context, op, method, path string, tok agentkeys.Token, out any) error {
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		return transportError(op, b.base, errors.New("build request"))
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return transportError(op, b.base, jsonhttp.TransportCause(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return transportError(op, b.base, errors.New("reading the broker's answer failed"))
	}
	defer clear(raw)
	if resp.StatusCode != http.StatusOK {
		kind, msg := jsonhttp.ParseError(resp.StatusCode, raw)
		return &Error{Op: op, Status: resp.StatusCode, Kind: kind, Message: msg}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return transportError(op, b.base, errors.New("malformed broker answer"))
	}
	return nil
}

// MintAWS asks the broker for temporary AWS credentials for the wallet of
// session (sending only a token derived from it).
func (b *Client) MintAWS(ctx context.Context, tok agentkeys.Token) (AWSCredentials, error) {
	var out struct {
		api.MintAWSResponse
		Expiration flexTime `json:"expiration"`
	}
	if err := b.post(ctx, "mint AWS credentials", "/v1/mint-aws-creds", tok, &out); err != nil {
		return AWSCredentials{}, err
	}
	c := AWSCredentials{AccessKeyID: out.AccessKeyID, SecretAccessKey: out.SecretAccessKey, SessionToken: out.SessionToken,
		Expiration: out.Expiration.t, Wallet: out.Wallet}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Expiration.IsZero() {
		return AWSCredentials{}, transportError("mint AWS credentials", "", errors.New("broker answer lacks credentials or expiration"))
	}
	return c, nil
}

// MintOIDC asks the broker for a web-identity JWT for the wallet of
// session (sending only a token derived from it).
func (b *Client) MintOIDC(ctx context.Context, tok agentkeys.Token) (OIDCToken, error) {
	var out struct {
		api.MintJWTResponse
		Expiration flexTime `json:"expiration"`
	}
	if err := b.post(ctx, "mint OIDC token", "/v1/mint-oidc-jwt", tok, &out); err != nil {
		return OIDCToken{}, err
	}
	t := OIDCToken{JWT: out.JWT, Wallet: out.Wallet, Expiration: out.Expiration.t}
	if t.JWT == "" || t.Expiration.IsZero() {
		return OIDCToken{}, transportError("mint OIDC token", "", errors.New("broker answer lacks jwt or expiration"))
	}
	return t, nil
}

// AuditFilter selects rows of the broker's audit view (GET /v1/audit).
type AuditFilter struct {
	Since, Until time.Time // zero: unbounded
	Outcome      string    // "" = any
	Kind         string    // "" = both, api.MintKindJWT or api.MintKindAWS
	Wallet       string    // "" = every wallet the caller may see
	Limit        int       // 0 = the broker's default
	Cursor       string    // next_cursor of an earlier page
}

// Audit reads the broker's ledger rows for the wallet of session and the
// wallets below it, newest first (sending only a token derived from it).
func (b *Client) Audit(ctx context.Context, session agentkeys.Token, f AuditFilter) (api.BrokerAuditPage, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", strconv.FormatInt(f.Since.Unix(), 10))
	}
	if !f.Until.IsZero() {
		q.Set("until", strconv.FormatInt(f.Until.Unix(), 10))
	}
	if f.Outcome != "" {
		q.Set("outcome", f.Outcome)
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Wallet != "" {
		q.Set("wallet", f.Wallet)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	path := api.PathBrokerAudit
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page api.BrokerAuditPage
	if err := b.call(ctx, "read the broker's audit log", http.MethodGet, path, session, &page); err != nil {
		return api.BrokerAuditPage{}, err
	}
	return page, nil
}

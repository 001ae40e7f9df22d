// Package backendclient is the typed Go client of agentkeys-backend, used by
// the CLI, the daemon and the broker. Every call has a deadline, and no
// error it returns contains a token or a credential: server messages are
// the backend's own (which never echo secrets) and transport errors name
// only the operation and the cause.
package backendclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// DefaultTimeout bounds each request when the caller's context has no
// earlier deadline.
const DefaultTimeout = 10 * time.Second

// Client talks to one backend.
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (e.g. for TLS settings).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTimeout sets the per-request timeout.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for the backend at baseURL (http or https).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend URL must look like http://127.0.0.1:8090, got %q", baseURL)
	}
	c := &Client{base: u, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: defaultTransport}
	}
	return c, nil
}

var defaultTransport = jsonhttp.NewTransport(5*time.Second, 64)

// BaseURL returns the backend's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is an error answered by the backend.
type Error struct {
	Status  int
	Kind    string
	Message string
	Op      string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: backend answered %d %s: %s", e.Op, e.Status, e.Kind, e.Message)
}

// Sentinel errors matched by errors.Is on *Error.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrDenied       = errors.New("denied")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrExpired      = errors.New("expired")
	ErrRateLimited  = errors.New("rate limited")
	ErrBadRequest   = errors.New("bad request")
)

// sentinelStatus is the HTTP status each sentinel error stands for.
var sentinelStatus = map[error]int{
	ErrUnauthorized: http.StatusUnauthorized,
	ErrDenied:       http.StatusForbidden,
	ErrNotFound:     http.StatusNotFound,
	ErrConflict:     http.StatusConflict,
	ErrExpired:      http.StatusGone,
	ErrRateLimited:  http.StatusTooManyRequests,
	ErrBadRequest:   http.StatusBadRequest,
}

// Is maps HTTP statuses to the sentinel errors.
func (e *Error) Is(target error) bool {
	status, ok := sentinelStatus[target]
	return ok && e.Status == status
}

// transportError is a failure to reach the backend (at url, "" if unknown)
// or to read its answer.
func transportError(op, url string, err error) error {
	return &jsonhttp.TransportError{Op: op, Server: "backend", URL: url, Err: err}
}

// do sends a request and decodes a 200 answer into out.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, tok agentkeys.Token, in, out any) error {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return transportError(op, "", errors.New("encode request"))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return transportError(op, "", errors.New("build request"))
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(op, c.origin(), jsonhttp.TransportCause(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return transportError(op, c.origin(), jsonhttp.TransportCause(err))
	}
	if resp.StatusCode != http.StatusOK {
		kind, msg := jsonhttp.ParseError(resp.StatusCode, raw)
		return &Error{Status: resp.StatusCode, Kind: kind, Message: msg, Op: op}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return transportError(op, "", errors.New("malformed response from backend"))
		}
	}
	return nil
}

// origin is the backend's scheme and host, for messages.
func (c *Client) origin() string { return c.base.Scheme + "://" + c.base.Host }

// Session is a session the backend issued.
type Session struct {
	Token     agentkeys.Token
	Wallet    agentkeys.Wallet
	ExpiresAt time.Time
}

func sessionFrom(op string, s api.SessionResponse) (Session, error) {
	tok, err := agentkeys.ParseToken(s.Session)
	if err != nil {
		return Session{}, transportError(op, "", errors.New("backend returned a malformed session token"))
	}
	w, err := agentkeys.ParseWallet(string(s.Wallet))
	if err != nil {
		return Session{}, transportError(op, "", errors.New("backend returned a malformed wallet"))
	}
	return Session{Token: tok, Wallet: w, ExpiresAt: time.Unix(s.ExpiresAt, 0)}, nil
}

// Health checks that the backend and its database answer.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, "health", http.MethodGet, "/health", nil, "", nil, nil)
}

// CreateSession logs a master in with an identity assertion.
func (c *Client) CreateSession(ctx context.Context, authToken string) (Session, error) {
	var out api.SessionResponse
	if err := c.do(ctx, "create session", http.MethodPost, "/session/create", nil, "", api.CreateSessionRequest{AuthToken: &authToken}, &out); err != nil {
		return Session{}, err
	}
	return sessionFrom("create session", out)
}

// Identity is what the backend knows of a session's holder. Audience is
// "broker" when the token is a broker token (then ExpiresAt is its
// session's expiry and TokenExpiresAt its own); "" for a session.
type Identity = api.ValidateResponse

// Validate returns the holder of tok.
func (c *Client) Validate(ctx context.Context, tok agentkeys.Token) (Identity, error) {
	var out Identity
	err := c.do(ctx, "validate session", http.MethodGet, "/session/validate", nil, tok, nil, &out)
	return out, err
}

// BrokerToken asks the backend that issued session tok for a short-lived
// token derived from it for the broker's audience: the broker accepts it,
// every other backend route refuses it, and it dies with the session. ttl 0
// means the backend's default (minutes). A backend that predates broker
// tokens answers 404 (errors.Is(err, ErrNotFound)).
func (c *Client) BrokerToken(ctx context.Context, tok agentkeys.Token, ttl time.Duration) (agentkeys.Token, time.Time, error) {
	const op = "derive broker token"
	in := api.BrokerTokenRequest{Audience: api.AudienceBroker}
	if ttl > 0 {
		in.TTLSeconds = int64(ttl / time.Second)
	}
	var out api.BrokerTokenResponse
	if err := c.do(ctx, op, http.MethodPost, "/session/broker-token", nil, tok, in, &out); err != nil {
		return "", time.Time{}, err
	}
	bt, err := agentkeys.ParseToken(out.Token)
	if err != nil || out.ExpiresAt <= 0 {
		return "", time.Time{}, transportError(op, "", errors.New("backend returned a malformed broker token"))
	}
	return bt, time.Unix(out.ExpiresAt, 0), nil
}

// CreateChild creates an agent wallet under the caller with scope. ttl 0
// means the server's default (never beyond the caller's own expiry).
func (c *Client) CreateChild(ctx context.Context, tok agentkeys.Token, scope agentkeys.Scope, ttl time.Duration) (Session, error) {
	return c.CreateNamedChild(ctx, tok, "", scope, ttl)
}

// RevokeSession revokes target and every session minted from it.
func (c *Client) RevokeSession(ctx context.Context, tok, target agentkeys.Token) (int, error) {
	var out api.RevokeResponse
	err := c.do(ctx, "revoke session", http.MethodPost, "/session/revoke", nil, tok, api.RevokeRequest{TargetSession: target.Reveal()}, &out)
	return out.SessionsRevoked, err
}

// RevokeWallet revokes every session of a wallet and its descendants.
func (c *Client) RevokeWallet(ctx context.Context, tok agentkeys.Token, target agentkeys.Wallet) (int, error) {
	var out api.RevokeResponse
	err := c.do(ctx, "revoke wallet", http.MethodPost, "/session/revoke", nil, tok, api.RevokeRequest{TargetWallet: string(target)}, &out)
	return out.SessionsRevoked, err
}

// GetScope returns a wallet's effective scope; nil means unrestricted.
func (c *Client) GetScope(ctx context.Context, tok agentkeys.Token, w agentkeys.Wallet) (*agentkeys.Scope, error) {
	var out api.ScopeResponse
	q := url.Values{}
	if w != "" {
		q.Set("wallet", string(w))
	}
	if err := c.do(ctx, "get scope", http.MethodGet, "/session/scope", q, tok, nil, &out); err != nil {
		return nil, err
	}
	if out.Services == nil {
		return nil, nil
	}
	return &agentkeys.Scope{Services: out.Services, ReadOnly: out.ReadOnly}, nil
}

// SetScope replaces a descendant wallet's scope.
func (c *Client) SetScope(ctx context.Context, tok agentkeys.Token, w agentkeys.Wallet, scope agentkeys.Scope) error {
	return c.do(ctx, "set scope", http.MethodPut, "/session/scope", nil, tok, api.SetScopeRequest{TargetWallet: string(w), Scope: &scope}, nil)
}

// StoreCredential stores value as agent's credential for service.
func (c *Client) StoreCredential(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, service string, value []byte) error {
	in := api.StoreCredentialRequest{AgentID: string(agent), Service: service, Ciphertext: base64.StdEncoding.EncodeToString(value)}
	return c.do(ctx, "store credential", http.MethodPost, "/credential/store", nil, tok, in, nil)
}

// ReadCredential returns agent's credential for service.
func (c *Client) ReadCredential(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, service string) ([]byte, error) {
	var out api.ReadCredentialResponse
	q := url.Values{"agent_id": {string(agent)}, "service": {service}}
	if err := c.do(ctx, "read credential", http.MethodGet, "/credential/read", q, tok, nil, &out); err != nil {
		return nil, err
	}
	v, err := base64.StdEncoding.DecodeString(out.Ciphertext)
	if err != nil {
		return nil, transportError("read credential", "", errors.New("malformed response from backend"))
	}
	return v, nil
}

// Credentials is what ReadCredentials returns: the agent's effective
// scope (nil when unrestricted), its values by service, and RevokedAt,
// set (and Values empty) when the agent's sessions were revoked and none
// granted since.
type Credentials struct {
	Scope     *agentkeys.Scope
	Values    map[string][]byte
	RevokedAt time.Time
}

// ReadCredentials returns, in one audited round trip, every credential
// agent holds within its scope plus the services named.
func (c *Client) ReadCredentials(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, services []string) (*Credentials, error) {
	res, _, err := c.readBatch(ctx, tok, api.ReadCredentialsRequest{AgentID: string(agent), Services: services})
	return res, err
}

// ReadAgentCredentials is ReadCredentials for an <agent> argument (a name,
// alias, e-mail or 0x wallet), resolved by the backend in the same round
// trip; it also returns the wallet and name the argument resolved to. An
// argument naming no agent of the caller's tree is the backend's 404.
func (c *Client) ReadAgentCredentials(ctx context.Context, tok agentkeys.Token, agent string, services []string) (*Credentials, agentkeys.Wallet, string, error) {
	res, out, err := c.readBatch(ctx, tok, api.ReadCredentialsRequest{Agent: agent, Services: services})
	if err != nil {
		return nil, "", "", err
	}
	if out.Agent == nil || out.Agent.Wallet == "" {
		res.clear()
		return nil, "", "", transportError("read credentials", "", errors.New("malformed response from backend"))
	}
	return res, out.Agent.Wallet, out.Agent.Name, nil
}

// clear zeroes the values.
func (r *Credentials) clear() {
	for _, v := range r.Values {
		clear(v)
	}
}

// readBatch posts in to /credential/read-batch and decodes the values.
func (c *Client) readBatch(ctx context.Context, tok agentkeys.Token, in api.ReadCredentialsRequest) (*Credentials, *api.ReadCredentialsResponse, error) {
	var out api.ReadCredentialsResponse
	if err := c.do(ctx, "read credentials", http.MethodPost, "/credential/read-batch", nil, tok, in, &out); err != nil {
		return nil, nil, err
	}
	res := &Credentials{Values: make(map[string][]byte, len(out.Credentials))}
	if out.Scope.Services != nil {
		res.Scope = &agentkeys.Scope{Services: out.Scope.Services, ReadOnly: out.Scope.ReadOnly}
	}
	if out.RevokedAt != 0 {
		res.RevokedAt = time.Unix(out.RevokedAt, 0)
	}
	for _, cr := range out.Credentials {
		v, err := base64.StdEncoding.DecodeString(cr.Ciphertext)
		if err != nil {
			res.clear()
			return nil, nil, transportError("read credentials", "", errors.New("malformed response from backend"))
		}
		res.Values[cr.Service] = v
	}
	return res, &out, nil
}

// ListCredentials lists the services agent holds that the caller may see.
func (c *Client) ListCredentials(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet) ([]string, error) {
	var out api.ListCredentialsResponse
	err := c.do(ctx, "list credentials", http.MethodGet, "/credential/list", url.Values{"agent_id": {string(agent)}}, tok, nil, &out)
	return out.Services, err
}

// CredentialVersion is one credential's version (no value).
type CredentialVersion = api.CredentialVersion

// CredentialVersions returns the versions of agent's credentials that the
// caller may see. The backend audits nothing for it: it is for polling.
func (c *Client) CredentialVersions(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet) ([]CredentialVersion, error) {
	var out api.CredentialVersionsResponse
	err := c.do(ctx, "credential versions", http.MethodGet, "/credential/versions", url.Values{"agent_id": {string(agent)}}, tok, nil, &out)
	return out.Versions, err
}

// TeardownResult says what a teardown removed.
type TeardownResult = api.TeardownResponse

// Teardown removes agent and its descendants.
func (c *Client) Teardown(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet) (TeardownResult, error) {
	var out TeardownResult
	err := c.do(ctx, "teardown", http.MethodDelete, "/credential/teardown", nil, tok, api.TeardownRequest{AgentID: string(agent)}, &out)
	return out, err
}

// AuditFilter selects audit events; zero fields match anything.
type AuditFilter struct {
	Owner, Agent            agentkeys.Wallet
	Service, Action, Result string
	Since, Until            time.Time
	Limit                   int
	Cursor                  string
}

// AuditEvent is one audit row.
type AuditEvent = api.AuditEvent

// AuditPage is one page of audit events, newest first.
type AuditPage = api.AuditPage

// QueryAudit returns one page of the audit events visible to the caller.
func (c *Client) QueryAudit(ctx context.Context, tok agentkeys.Token, f AuditFilter) (AuditPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("owner", string(f.Owner))
	set("agent", string(f.Agent))
	set("service", f.Service)
	set("action", f.Action)
	set("result", f.Result)
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	set("cursor", f.Cursor)
	var out AuditPage
	err := c.do(ctx, "query audit", http.MethodGet, "/audit/query", q, tok, nil, &out)
	return out, err
}

// AuditProvision records the outcome of a provisioner run for agent:
// result is "ok" or the run's error code; detail is short and secret-free.
func (c *Client) AuditProvision(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, service, result, detail string) error {
	return c.do(ctx, "audit provision", http.MethodPost, "/audit/provision", nil, tok,
		api.AuditProvisionRequest{AgentID: string(agent), Service: service, Result: result, Detail: detail}, nil)
}

// RevocationEpoch returns the backend's revocation epoch: it goes up with
// every change that takes access away (revoke, teardown, scope change).
func (c *Client) RevocationEpoch(ctx context.Context) (int64, error) {
	var out api.EpochResponse
	if err := c.do(ctx, "revocation epoch", http.MethodGet, "/session/epoch", nil, "", nil, &out); err != nil {
		return 0, err
	}
	if out.Epoch == nil || *out.Epoch < 0 {
		return 0, transportError("revocation epoch", "", errors.New("malformed response from backend"))
	}
	return *out.Epoch, nil
}

// WatchSession long-polls until tok's session stops being valid (an error
// matching ErrUnauthorized or ErrExpired) or the backend's window ends (nil
// and the current epoch). ctx should allow longer than the backend's await
// window (25 s by default).
func (c *Client) WatchSession(ctx context.Context, tok agentkeys.Token) (int64, error) {
	var out api.WatchResponse
	if err := c.do(ctx, "watch session", http.MethodGet, "/session/watch", nil, tok, nil, &out); err != nil {
		return 0, err
	}
	if !out.Valid {
		return 0, transportError("watch session", "", errors.New("malformed response from backend"))
	}
	return out.Epoch, nil
}

// AuditGateway stores a batch of the calls a gateway handled for agent
// ("" = the caller itself) (POST /audit/gateway): all of them or, on
// error, none.
func (c *Client) AuditGateway(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, calls []api.GatewayCall) error {
	return c.do(ctx, "audit gateway", http.MethodPost, "/audit/gateway", nil, tok, api.AuditGatewayRequest{AgentID: string(agent), Calls: calls}, nil)
}

// AuditCachedRead records that the caller is about to serve the values of
// services from its own cache for agent; it must not serve them unless
// this returns nil.
func (c *Client) AuditCachedRead(ctx context.Context, tok agentkeys.Token, agent agentkeys.Wallet, services []string) error {
	return c.do(ctx, "audit cached read", http.MethodPost, "/audit/cached-read", nil, tok,
		api.AuditCachedReadRequest{AgentID: string(agent), Services: services}, nil)
}

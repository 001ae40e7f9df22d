package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/hardening"
)

// Session is the agent session the daemon holds.
type Session struct {
	Token     agentkeys.Token
	Wallet    agentkeys.Wallet
	Backend   string
	Broker    string           // the broker the session is bound to ("" = none)
	ExpiresAt time.Time        // zero when unknown
	Scope     *agentkeys.Scope // from /session/validate; nil = unknown or unrestricted
	StoreID   string           // keychain / file-store id ("daemon-<wallet>")
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Backend *backendclient.Client
	Broker  *BrokerClient // nil: broker methods answer BROKER_NOT_CONFIGURED
	Session Session
	Log     *slog.Logger
	// CacheTTL > 0 keeps credential values in secret memory for that long.
	// A read served from it is still audited first (POST
	// /audit/cached-read, which also refuses a revoked or narrowed
	// session). 0 (the default) reads through to the backend every time.
	CacheTTL time.Duration
	// IdleEvict forgets cached values (credentials and broker credentials)
	// unused for this long. 0 means 5 minutes.
	IdleEvict time.Duration
	// DisableGet is secret-free mode (--no-get-credential): no stored
	// credential value leaves the daemon, neither through
	// agentkeys.get_credential nor through the socket's read method.
	// run_with_credential and the broker's short-lived credentials
	// (aws_credentials, oidc_token) still work.
	DisableGet bool
	// Child confines run_with_credential commands (another uid, Landlock).
	Child ChildOptions
	// Gateway, when set, is the credential gateway a socket run with
	// gateway on points commands at (nil: such runs are refused).
	Gateway     GatewayFunc
	Region      string // AWS region passed along with broker credentials
	Hardening   hardening.Report
	Provisioner Provisioner
	Now         func() time.Time
}

// Service is what the socket and MCP front ends call.
type Service struct {
	o    ServiceOptions
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	vals map[string]*cachedValue

	aws, oidc mintCache

	authMu      sync.Mutex
	dead        bool      // the session is dead: nothing is served any more
	watching    bool      // StartWatch was called: cached values need its confirmation
	watchOpen   bool      // a watch long-poll is open on the backend
	confirmedAt time.Time // the backend last confirmed the session

	tokenFile   string   // the web identity token file KeepTokenFile writes
	awsEndpoint []string // the ECS endpoint's variables (--aws-server)
	scopeReqs   map[string]*scopeReq

	revoked chan struct{} // closed by kill
	gw      http.Handler  // the gateway behind HTTPRequest (under mu)
}

type cachedValue struct {
	buf     *hardening.Buffer
	fetched time.Time
	lastUse time.Time
}

// NewService returns a Service.
func NewService(o ServiceOptions) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleEvict <= 0 {
		o.IdleEvict = 5 * time.Minute
	}
	s := &Service{o: o, log: o.Log, now: o.Now, vals: map[string]*cachedValue{}, revoked: make(chan struct{})}
	s.aws.now, s.oidc.now = o.Now, o.Now
	return s
}

// Session returns the session the service acts with.
func (s *Service) Session() Session { return s.o.Session }

func (s *Service) noteErr(op string, err error) *Error {
	e := classify(err)
	// Only the backend's own 401/410 kills the session here: a broker can
	// refuse a mint for other reasons (too little session lifetime left
	// for the credential asked), and the watch hears of a real revocation
	// within milliseconds anyway.
	var be *backendclient.Error
	if e.Code == CodeAuthFailed && errors.As(err, &be) {
		s.kill(op + " refused: " + be.Message)
	}
	return e
}

// errSecretFree is what every surface that would return a stored value
// answers in secret-free mode.
func errSecretFree() *Error {
	return errorf(CodeDisabled, "the master started this daemon secret-free (--no-get-credential): stored credential values are never returned; use %s, which runs a command with the credential in its environment and returns only masked output", ToolRunWithCredential)
}

// ReadValue returns a stored credential value to a caller outside the
// daemon (the socket's read, agentkeys.get_credential). In secret-free
// mode it refuses before contacting the backend.
func (s *Service) ReadValue(ctx context.Context, service string) ([]byte, error) {
	if s.o.DisableGet {
		return nil, errSecretFree()
	}
	return s.Read(ctx, service)
}

// Read returns the credential value for service for use inside the daemon
// (run_with_credential); front ends that hand the value out use ReadValue.
// The caller owns the returned slice and should clear it when done.
func (s *Service) Read(ctx context.Context, service string) ([]byte, error) {
	if err := agentkeys.ValidateService(service); err != nil {
		return nil, &Error{Code: CodeInvalidParams, Message: err.Error()}
	}
	if err := s.alive(); err != nil {
		return nil, err
	}
	if s.o.CacheTTL > 0 && s.cacheUsable() {
		out, served, err := s.readCached(ctx, service)
		if served || err != nil {
			return out, err
		}
	}
	val, err := s.o.Backend.ReadCredential(ctx, s.o.Session.Token, s.o.Session.Wallet, service)
	if err != nil {
		return nil, s.noteErr("read", err)
	}
	if s.o.CacheTTL > 0 && s.alive() == nil {
		now := s.now()
		s.mu.Lock()
		if old, ok := s.vals[service]; ok {
			old.buf.Destroy()
		}
		s.vals[service] = &cachedValue{buf: hardening.Copy(val), fetched: now, lastUse: now}
		s.mu.Unlock()
	}
	return val, nil
}

// readCached serves service from the cache after the backend has audited
// the read (and so confirmed the session and its scope). served is false
// when there is no fresh cached value or the audit call could not be made
// (the caller then reads through the backend).
func (s *Service) readCached(ctx context.Context, service string) (out []byte, served bool, err error) {
	s.mu.Lock()
	v, ok := s.vals[service]
	if ok && s.now().Sub(v.fetched) >= s.o.CacheTTL {
		v.buf.Destroy()
		delete(s.vals, service)
		ok = false
	}
	s.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	if err := s.o.Backend.AuditCachedRead(ctx, s.o.Session.Token, s.o.Session.Wallet, []string{service}); err != nil {
		e := s.noteErr("cached read", err)
		switch e.Code {
		case CodeAuthFailed:
			return nil, false, errRevoked
		case CodeDenied:
			s.drop(service) // the scope no longer allows it
			return nil, false, e
		case CodeNotFound:
			// A backend without /audit/cached-read: read through it
			// (audited there) and keep nothing that would skip it.
			s.drop(service)
		}
		return nil, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.alive() != nil {
		return nil, false, errRevoked
	}
	v, ok = s.vals[service]
	if !ok {
		return nil, false, nil // dropped meanwhile; read through (audited again)
	}
	v.lastUse = s.now()
	return bytes.Clone(v.buf.Bytes()), true, nil
}

// drop forgets one cached credential value.
func (s *Service) drop(service string) {
	s.mu.Lock()
	if v, ok := s.vals[service]; ok {
		v.buf.Destroy()
		delete(s.vals, service)
	}
	s.mu.Unlock()
}

// List returns the services whose credentials the agent may read.
func (s *Service) List(ctx context.Context) ([]string, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	list, err := s.o.Backend.ListCredentials(ctx, s.o.Session.Token, s.o.Session.Wallet)
	if err != nil {
		return nil, s.noteErr("list", err)
	}
	if list == nil {
		list = []string{}
	}
	slices.Sort(list)
	return list, nil
}

// Status is what the status method reports. It holds no secret.
type Status struct {
	Wallet     agentkeys.Wallet `json:"wallet"`
	Scope      *agentkeys.Scope `json:"scope"`
	ExpiresAt  string           `json:"expires_at,omitempty"`
	Backend    string           `json:"backend"`
	Broker     string           `json:"broker,omitempty"`
	SessionID  string           `json:"session_id,omitempty"`
	GetEnabled bool             `json:"get_credential_enabled"`
	SessionOK  bool             `json:"session_ok"`
	Hardening  string           `json:"hardening,omitempty"`
}

// Status reports the daemon's session (no backend call).
func (s *Service) Status() Status {
	st := Status{Wallet: s.o.Session.Wallet, Scope: s.o.Session.Scope, Backend: s.o.Session.Backend,
		SessionID: s.o.Session.StoreID, GetEnabled: !s.o.DisableGet, Hardening: s.o.Hardening.String()}
	if !s.o.Session.ExpiresAt.IsZero() {
		st.ExpiresAt = s.o.Session.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if s.o.Broker != nil {
		st.Broker = s.o.Broker.URL()
	}
	st.SessionOK = s.alive() == nil
	return st
}

// AWSResult is the JSON the aws_credentials method returns.
type AWSResult struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Expiration      string `json:"expiration"` // RFC 3339
	Wallet          string `json:"wallet,omitempty"`
	Region          string `json:"region,omitempty"`
}

// OIDCResult is the JSON the oidc_token method returns.
type OIDCResult struct {
	JWT        string `json:"jwt"`
	Expiration string `json:"expiration"` // RFC 3339
	Wallet     string `json:"wallet,omitempty"`
}

// AWSCredentialsJSON returns an AWSResult document (cached until shortly
// before expiry). The caller should clear the returned slice.
func (s *Service) AWSCredentialsJSON(ctx context.Context) ([]byte, error) {
	if s.o.Broker == nil {
		return nil, errorf(CodeNoBroker, "no broker configured: start the daemon with --broker-url or AGENTKEYS_BROKER_URL")
	}
	if err := s.alive(); err != nil {
		return nil, err
	}
	b, _, err := s.aws.get(ctx, s.cacheUsable, func(ctx context.Context) ([]byte, time.Time, error) {
		c, err := s.o.Broker.MintAWS(ctx, s.o.Session.Token)
		if err != nil {
			return nil, time.Time{}, s.noteErr("mint aws", err)
		}
		out, err := json.Marshal(AWSResult{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
			Expiration: c.Expiration.UTC().Format(time.RFC3339), Wallet: c.Wallet, Region: s.o.Region})
		return out, c.Expiration, err
	})
	return b, err
}

// OIDCTokenJSON returns an OIDCResult document (cached until shortly
// before expiry). The caller should clear the returned slice.
func (s *Service) OIDCTokenJSON(ctx context.Context) ([]byte, time.Time, error) {
	if s.o.Broker == nil {
		return nil, time.Time{}, errorf(CodeNoBroker, "no broker configured: start the daemon with --broker-url or AGENTKEYS_BROKER_URL")
	}
	if err := s.alive(); err != nil {
		return nil, time.Time{}, err
	}
	return s.oidc.get(ctx, s.cacheUsable, func(ctx context.Context) ([]byte, time.Time, error) {
		t, err := s.o.Broker.MintOIDC(ctx, s.o.Session.Token)
		if err != nil {
			return nil, time.Time{}, s.noteErr("mint oidc", err)
		}
		out, err := json.Marshal(OIDCResult{JWT: t.JWT, Expiration: t.Expiration.UTC().Format(time.RFC3339), Wallet: t.Wallet})
		return out, t.Expiration, err
	})
}

// EvictIdle forgets cached values unused for IdleEvict (or stale) and
// zeroes their memory. It returns how many it dropped.
func (s *Service) EvictIdle() int {
	now := s.now()
	cutoff := now.Add(-s.o.IdleEvict)
	n := 0
	s.mu.Lock()
	for k, v := range s.vals {
		if v.lastUse.Before(cutoff) || now.Sub(v.fetched) >= s.o.CacheTTL {
			v.buf.Destroy()
			delete(s.vals, k)
			n++
		}
	}
	s.mu.Unlock()
	if s.aws.evictIdle(cutoff) {
		n++
	}
	if s.oidc.evictIdle(cutoff) {
		n++
	}
	return n
}

// RunEviction calls EvictIdle periodically until ctx ends, then drops
// everything.
func (s *Service) RunEviction(ctx context.Context) {
	every := min(s.o.IdleEvict/4, time.Minute)
	every = max(every, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Close()
			return
		case <-t.C:
			if n := s.EvictIdle(); n > 0 {
				s.log.Debug("evicted idle cached secrets", "count", n)
			}
		}
	}
}

// Close zeroes every cached secret.
func (s *Service) Close() {
	s.mu.Lock()
	for k, v := range s.vals {
		v.buf.Destroy()
		delete(s.vals, k)
	}
	s.mu.Unlock()
	s.aws.clear()
	s.oidc.clear()
}

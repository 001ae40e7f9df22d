// Package backend is agentkeys-backend: the server that holds wallets,
// sessions, scopes, sealed credentials and the audit log, and that every
// other AgentKeys component talks to over HTTP+JSON.
//
// Rules the server enforces on every route:
//   - session tokens are stored only as SHA-256 and expire; revocation
//     cascades to every session minted from the revoked one, and revoking
//     or tearing down a wallet reaches its whole subtree;
//   - a caller may act on its own wallet or a descendant's, and only within
//     its effective scope (the intersection of its own scope and every
//     ancestor's); read_only scopes cannot write; a child is never wider
//     than its parent;
//   - credentials are sealed (seal package) before they touch the store;
//   - every grant, read, denial, revoke and teardown is audited, and a
//     credential is returned only after its read has been recorded.
package backend

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Error kinds of the backend's error envelope (the original's spellings).
const (
	KindUnauthorized     = "UNAUTHORIZED"
	KindDenied           = "DENIED"
	KindNotFound         = "NOT_FOUND"
	KindBadRequest       = "BAD_REQUEST"
	KindConflict         = "ALREADY_CONSUMED"
	KindExpired          = "EXPIRED"
	KindInternal         = "INTERNAL_ERROR"
	KindRateLimited      = "RATE_LIMITED"
	KindMethodNotAllowed = "METHOD_NOT_ALLOWED"
)

// Defaults.
const (
	DefaultSessionTTL    = 30 * 24 * time.Hour
	DefaultSweepInterval = time.Minute
	// DefaultBrokerTokenTTL is the lifetime of a broker token unless the
	// client asks for less; MaxBrokerTokenTTL bounds what it may ask for.
	DefaultBrokerTokenTTL = 5 * time.Minute
	MaxBrokerTokenTTL     = 15 * time.Minute
	// MaxSecretSize bounds one credential value.
	MaxSecretSize = 64 << 10
)

// Options configure a Server. Store, Sealer and Login are required.
type Options struct {
	Store  store.Store
	Sealer *seal.Sealer
	Logger *slog.Logger
	// SessionTTL is the lifetime of a master session (default 30 days).
	// Child sessions never outlive the session that minted them.
	SessionTTL time.Duration
	// BrokerTokenTTL is the default lifetime of a broker token (default
	// 5 minutes, at most MaxBrokerTokenTTL); it never outlives its session.
	BrokerTokenTTL time.Duration
	// LoginRate limits POST /session/create per client IP (per second;
	// default 5, burst 20). Negative disables.
	LoginRate float64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AuthRequestTTL is how long a pair/recover request stays approvable
	// (default 5 minutes).
	AuthRequestTTL time.Duration
	// AwaitWindow is the longest one await long-poll lasts (default 25 s).
	AwaitWindow time.Duration
	// MockInbox serves /mock/inbox/* (dev and tests only: its deliver
	// route is unauthenticated). EmailDomain names its addresses.
	MockInbox   bool
	EmailDomain string
	// Login verifies master identity assertions. Required: MockLogin{} only
	// for development and tests, OIDCLogin otherwise.
	Login LoginVerifier
	// Frontdoor: trusted proxies, public name, per-wallet limit, quotas.
	Frontdoor Frontdoor
	// EpochPoll is how often the revocation epoch is read while daemons
	// watch their sessions, and the pairing epoch while openers await a
	// decision (default DefaultEpochPoll).
	EpochPoll time.Duration
}

// Server serves the backend API.
type Server struct {
	store  store.Store
	sealer *seal.Sealer
	log    *slog.Logger
	ttl    time.Duration
	now    func() time.Time
	login  *ratelimit.Limiter
	mux    *http.ServeMux

	authTTL       time.Duration
	awaitWindow   time.Duration
	openLimit     *ratelimit.Limiter // unauthenticated pairing routes, per IP
	approveLimit  *ratelimit.Limiter // fetch/approve, per session
	brokerLimit   *ratelimit.Limiter // broker-token issuance, per session
	brokerTTL     time.Duration
	mockInbox     bool
	emailDomain   string
	loginVerifier LoginVerifier
	fd            frontdoor

	waitMu  sync.Mutex
	waiters map[string][]chan struct{}

	// signKey signs approvals (authreq.Approval); it is derived from the
	// seal key, so replicas sharing that key sign alike. signKID is its
	// RFC 7638 thumbprint.
	signKey ed25519.PrivateKey
	signKID string

	epochs *epochHub
	// sessions caches resolved sessions for the current revocation epoch.
	sessions sessionCache

	healthMu sync.Mutex
	healthOK time.Time // last successful write probe (wall clock)

	// pairings wakes openers' long polls when a decision is made on any
	// replica (the pairing epoch moved); awaiters caps them per client
	// address; parentOpenLimit bounds opens naming one master.
	pairings        *epochHub
	awaiters        *awaiterCap
	parentOpenLimit *ratelimit.Limiter
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Sealer == nil {
		return nil, errors.New("backend: Store and Sealer are required")
	}
	if o.Login == nil {
		return nil, errors.New("backend: Login is required (an OIDCLogin; MockLogin{} only for development and tests)")
	}
	s := &Server{store: o.Store, sealer: o.Sealer, log: o.Logger, ttl: o.SessionTTL, now: o.Now}
	seed, err := o.Sealer.DeriveKey(authreq.SigningKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	s.signKey = ed25519.NewKeyFromSeed(seed)
	clear(seed)
	s.signKID = authreq.KeyID(s.signKey.Public().(ed25519.PublicKey))
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.ttl <= 0 {
		s.ttl = DefaultSessionTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	rate := o.LoginRate
	if rate == 0 {
		rate = 5
	}
	s.login = ratelimit.New(rate, 20)
	s.openLimit = ratelimit.New(rate*2, 40)
	s.approveLimit = ratelimit.New(rate, 10)
	s.brokerLimit = ratelimit.New(rate, 20)
	s.brokerTTL = min(o.BrokerTokenTTL, MaxBrokerTokenTTL)
	if s.brokerTTL <= 0 {
		s.brokerTTL = DefaultBrokerTokenTTL
	}
	s.authTTL, s.awaitWindow = o.AuthRequestTTL, o.AwaitWindow
	if s.authTTL <= 0 {
		s.authTTL = DefaultAuthRequestTTL
	}
	if s.awaitWindow <= 0 {
		s.awaitWindow = DefaultAwaitWindow
	}
	s.mockInbox, s.emailDomain = o.MockInbox, o.EmailDomain
	if s.emailDomain == "" {
		s.emailDomain = "agentkeys-email.io"
	}
	s.waiters = map[string][]chan struct{}{}
	s.loginVerifier = o.Login
	fd, err := newFrontdoor(o.Frontdoor)
	if err != nil {
		return nil, err
	}
	s.fd = fd
	poll := o.EpochPoll
	if poll <= 0 {
		poll = DefaultEpochPoll
	}
	s.epochs = newEpochHub(s.store.RevocationEpoch, poll, func(msg string, err error) { s.log.Warn(msg, "err", err) })
	s.pairings = newEpochHub(s.store.PairingEpoch, poll, func(_ string, err error) { s.log.Warn("pairing epoch poll failed", "err", err) })
	s.awaiters = newAwaiterCap(fd.maxAwaiters)
	s.parentOpenLimit = fd.parentOpen
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /health", s.health)

	m.Handle("POST /session/create", s.public(s.createSession))
	m.Handle("GET /session/validate", s.public(s.validateSession))
	m.Handle("GET /session/epoch", s.public(s.sessionEpoch))
	m.Handle("GET /session/watch", s.public(s.watchSession))
	m.Handle("GET /session/tree", s.public(s.sessionTree))
	m.Handle("POST /session/broker-token", s.authed(s.createBrokerToken))
	m.Handle("POST /session/child", s.authed(s.createChild))
	m.Handle("POST /session/revoke", s.authed(s.revoke))
	m.Handle("GET /session/scope", s.authed(s.getScope))
	m.Handle("PUT /session/scope", s.authed(s.putScope))

	m.Handle("POST /credential/store", s.authed(s.storeCredential))
	m.Handle("GET /credential/read", s.authed(s.readCredential))
	m.Handle("POST /credential/read-batch", s.authed(s.readCredentials))
	m.Handle("GET /credential/list", s.authed(s.listCredentials))
	m.Handle("GET /credential/versions", s.authed(s.credentialVersions))
	m.Handle("DELETE /credential/teardown", s.authed(s.teardown))

	m.Handle("GET /audit/query", s.authed(s.queryAudit))
	m.Handle("POST /audit/provision", s.authed(s.auditProvision))
	m.Handle("POST /audit/cached-read", s.authed(s.auditCachedRead))
	m.Handle("POST /audit/gateway", s.authed(s.auditGateway))

	m.Handle("POST /session/recover", s.public(s.recoverSession))
	m.Handle("POST /auth-request/open", s.public(s.openAuthRequest))
	m.Handle("GET /auth-request/fetch", s.authed(s.fetchAuthRequest))
	m.Handle("GET /auth-request/pending", s.authed(s.listPendingAuthRequests))
	m.Handle("POST /auth-request/approve", s.authed(s.approveAuthRequest))
	m.Handle("POST /auth-request/deny", s.authed(s.denyAuthRequest))
	m.Handle("GET /auth-request/await", s.public(s.awaitAuthDecision))
	m.Handle("GET "+PairingKeysPath, s.public(s.pairingKeys))
	m.Handle("POST /rendezvous/register", s.public(s.registerRendezvous))
	m.Handle("GET /rendezvous/poll", s.public(s.pollRendezvous))
	m.Handle("POST /rendezvous/deliver", s.authed(s.deliverRendezvous))
	m.Handle("POST /identity/link", s.authed(s.linkIdentity))
	m.Handle("GET /identity/resolve", s.public(s.resolveIdentityRoute))
	m.Handle("GET /agent/list", s.authed(s.listAgents))
	m.Handle("GET /agent/resolve", s.authed(s.resolveAgentRoute))
	m.Handle("POST /agent/name", s.authed(s.nameAgent))

	if s.mockInbox {
		m.Handle("POST /mock/inbox/provision", s.authed(s.provisionInbox))
		m.Handle("GET /mock/inbox/list", s.authed(s.listInboxes))
		m.Handle("GET /mock/inbox/messages", s.authed(s.inboxMessages))
		m.Handle("POST /mock/inbox/deliver", s.public(s.deliverMail))
	}
	s.mux = m
}

// Handler returns the HTTP handler: the shared plumbing (request ids, panic
// recovery to the JSON envelope, one access line per request) around the
// routes, with JSON errors for unrouted requests.
func (s *Server) Handler() http.Handler {
	return jsonhttp.Middleware(jsonhttp.Fallback(s.mux, KindNotFound, KindMethodNotAllowed), jsonhttp.MiddlewareOptions{
		Logger: s.log, InternalKind: KindInternal,
		// brokers ask the epoch for every burst of mints
		Quiet:          func(p string) bool { return p == "/health" || p == "/session/epoch" },
		TrustedProxies: s.fd.trusted, Hosts: s.fd.hosts,
	})
}

// healthCache is how long a successful write probe is reused; failures are
// re-checked on every request.
const healthCache = 2 * time.Second

// writeProber is a store that can prove it takes writes (sqlstore.Store).
type writeProber interface {
	ProbeWrite(ctx context.Context) error
}

// health reports whether the database answers and takes writes: a store
// that reads fine on a full disk fails every store and login, so /health
// says "not_writable" then.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	unavailable := func(state string, err error) {
		s.log.Error("health: database check failed", "database", state, "err", err)
		jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": state})
	}
	if err := s.store.Ping(ctx); err != nil {
		unavailable("unreachable", err)
		return
	}
	if p, ok := s.store.(writeProber); ok {
		s.healthMu.Lock()
		fresh := !s.healthOK.IsZero() && time.Since(s.healthOK) < healthCache
		s.healthMu.Unlock()
		if !fresh {
			if err := p.ProbeWrite(ctx); err != nil {
				unavailable("not_writable", err)
				return
			}
			s.healthMu.Lock()
			s.healthOK = time.Now()
			s.healthMu.Unlock()
		}
	}
	jsonhttp.Write(w, http.StatusOK, map[string]string{"status": "ok", "database": "ok"})
}

// handler is the shape of every API handler: it returns the 200 body or an
// error. *jsonhttp.Error values go to the client as they are; any other
// error is logged and answered with a generic 500.
type handler func(r *http.Request) (any, error)

type authedHandler func(r *http.Request, c *caller) (any, error)

func (s *Server) public(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.respond(w, r, h)
	})
}

func (s *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.respond(w, r, func(r *http.Request) (any, error) {
			c, err := s.authenticate(r)
			if err != nil {
				return nil, err
			}
			if err := s.limitWallet(c); err != nil {
				return nil, err
			}
			return h(r, c)
		})
	})
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request, h handler) {
	r = r.WithContext(context.WithValue(r.Context(), writerKey{}, w))
	var body any
	err := checkQuery(r)
	if err == nil {
		body, err = h(r)
	}
	if err != nil {
		var apiErr *jsonhttp.Error
		if !errors.As(err, &apiErr) {
			// Store errors never carry argument values, but keep the
			// client's view generic all the same.
			s.log.ErrorContext(r.Context(), "request failed", "route", r.Pattern, "err", err)
			apiErr = jsonhttp.Errorf(http.StatusInternalServerError, KindInternal, "internal error")
		}
		jsonhttp.WriteError(w, apiErr)
		return
	}
	jsonhttp.Write(w, http.StatusOK, body)
}

// writerKey carries a request's ResponseWriter from respond to decode, so a
// body over its limit closes the connection.
type writerKey struct{}

// decode strict-decodes the JSON body, mapping decode failures to the
// backend's kinds.
func decode(r *http.Request, v any, limit int64) error {
	w, _ := r.Context().Value(writerKey{}).(http.ResponseWriter)
	if err := jsonhttp.Decode(w, r, v, limit); err != nil {
		if err.Kind == jsonhttp.KindBadRequest {
			err.Kind = KindBadRequest
		}
		return err
	}
	if err := checkBody(v); err != nil {
		return err
	}
	if v, ok := v.(api.Validator); ok {
		if err := v.Validate(); err != nil {
			return badRequest("%s", err.Error())
		}
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, format, args...)
}

func denied(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusForbidden, KindDenied, format, args...)
}

func notFound(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusNotFound, KindNotFound, format, args...)
}

func unauthorized(msg string) error {
	return jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized, "%s", msg)
}

// audit appends one event. Callers that hand out data must treat an error as
// fatal for the request.
func (s *Server) audit(ctx context.Context, q store.Queries, owner, agent agentkeys.Wallet, service, action, result string) error {
	_, err := q.AppendAudit(ctx, agentkeys.AuditEvent{
		Time: s.now(), Owner: owner, Agent: agent, Service: service, Action: action, Result: result,
		ClientIP: clientip.FromContext(ctx),
	})
	return err
}

// auditDenial records a refused attempt; a failure to record is logged but
// does not change the (already negative) answer.
func (s *Server) auditDenial(ctx context.Context, owner, agent agentkeys.Wallet, service, action, result string) {
	if err := s.audit(ctx, s.store, owner, agent, service, action, result); err != nil {
		s.log.ErrorContext(ctx, "audit append failed for a denial", "action", action, "result", result, "err", err)
	}
}

func conflict(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusConflict, KindConflict, format, args...)
}

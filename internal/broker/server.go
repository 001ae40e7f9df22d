// Package broker is agentkeys-broker: it validates a session bearer against
// the backend and then either signs a short-lived OIDC ID token for the
// wallet (POST /v1/mint-oidc-jwt) or assumes the data role in AWS STS with
// the wallet's session tags (POST /v1/mint-aws-creds). Every mint attempt is
// written to the hash-chained audit ledger before the response; when that
// write fails or misses its deadline the caller gets 500 audit_error and no
// credential. A minted credential never outlives the caller's session: the
// JWT's exp and the STS DurationSeconds are capped to the session's remaining
// lifetime, and a session too close to its end is refused (401, audited as
// session_expiring). Both credentials carry agentkeys_access = read | write
// (read for a read-only agent) for IAM policies to deny writes. The broker
// also serves the issuer's discovery document and JWKS, /healthz, /readyz,
// /metrics, and GET /v1/audit: the ledger's rows of the bearer's own wallet
// tree (asked of the backend), read-only, for `agentkeys usage`.
package broker

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/sts"
)

// Error kinds: the original broker's, plus the ones this broker adds.
const (
	KindUnauthorized       = "unauthorized"        // 401
	KindBackendUnreachable = "backend_unreachable" // 502
	KindSTSError           = "sts_error"           // 502
	KindAuditError         = "audit_error"         // 500
	KindInternal           = "internal"            // 500
	KindBadRequest         = "bad_request"         // 400, 413, 415
	KindRateLimited        = "rate_limited"        // 429
	KindForbidden          = "forbidden"           // 403
	KindNotFound           = "not_found"           // 404
	KindMethodNotAllowed   = "method_not_allowed"  // 405
)

// Endpoints.
const (
	PathMintJWT  = "/v1/mint-oidc-jwt"
	PathMintAWS  = "/v1/mint-aws-creds"
	PathHealthz  = "/healthz"
	PathReadyz   = "/readyz"
	PathMetrics  = "/metrics"
	endpointJWT  = "oidc_jwt"
	endpointAWS  = "aws_creds"
	outcomeAudit = "audit_error"
)

// MaxBodyBytes bounds mint request bodies (which carry nothing yet).
const MaxBodyBytes = 4 << 10

// maxAuthHeader bounds the Authorization header the broker looks at.
const maxAuthHeader = 512

// unauthenticatedSession is the session name recorded before a wallet is known.
const unauthenticatedSession = "(unauthenticated)"

// JWTMinter signs ID tokens (implemented by *oidc.Issuer).
type JWTMinter interface {
	Mint(s oidc.Subject) (oidc.Token, error)
	TTL() time.Duration
	DiscoveryHandler() http.Handler
	JWKSHandler() http.Handler
	Ready() error
}

// AWSMinter assumes the data role (implemented by *sts.Client).
type AWSMinter interface {
	AssumeRole(ctx context.Context, req sts.AssumeRequest) (sts.Credentials, error)
	CallerIdentity(ctx context.Context) (sts.Identity, error)
}

// HealthChecker probes a dependency for /readyz.
type HealthChecker func(ctx context.Context) error

// Deps are the broker's collaborators.
type Deps struct {
	Validator     SessionValidator
	BackendHealth HealthChecker // nil: not checked
	Issuer        JWTMinter
	AWS           AWSMinter // nil: /v1/mint-aws-creds disabled
	// Tree answers which wallets a bearer may see in GET /v1/audit (nil:
	// the audit view is disabled; so it is when Audit cannot be queried).
	Tree   TreeSource
	Audit  audit.Sink
	Logger *slog.Logger
	Now    func() time.Time
}

// Server is the broker's HTTP handler.
type Server struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	now   func() time.Time
	valid SessionValidator

	bearerLimit *ratelimit.Limiter
	ipLimit     *ratelimit.Limiter
	walletLimit *ratelimit.Limiter // same rate as per bearer: many bearers of one wallet share it
	m           *metrics
	handler     http.Handler

	noExpiryOnce sync.Once // warns once about a backend without session expiry

	stsMu    sync.Mutex
	stsOKAt  time.Time // last successful readiness probe of STS
	stsCache time.Duration
}

// NewServer builds the handler. cfg must have passed Validate.
func NewServer(cfg Config, deps Deps) *Server {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.AuditTimeout <= 0 {
		cfg.AuditTimeout = DefaultAuditTimeout
	}
	if cfg.STSTimeout <= 0 {
		cfg.STSTimeout = DefaultSTSTimeout
	}
	s := &Server{
		cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now,
		valid:       newCachingValidator(deps.Validator, cfg.ValidateCache, deps.Now),
		bearerLimit: ratelimit.New(cfg.RatePerBearer, cfg.BurstPerBearer),
		ipLimit:     ratelimit.New(cfg.RatePerIP, cfg.BurstPerIP),
		walletLimit: ratelimit.New(cfg.RatePerBearer, cfg.BurstPerBearer),
		m:           newMetrics(),
		stsCache:    time.Minute,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealthz, s.healthz)
	mux.HandleFunc("GET "+PathReadyz, s.readyz)
	mux.Handle("GET "+PathMetrics, s.m.handler())
	mux.Handle("GET "+oidc.DiscoveryPath, deps.Issuer.DiscoveryHandler())
	mux.Handle("GET "+oidc.JWKSPath, deps.Issuer.JWKSHandler())
	mux.HandleFunc("POST "+PathMintJWT, s.mintJWT)
	mux.HandleFunc("POST "+PathMintAWS, s.mintAWS)
	mux.HandleFunc("GET "+api.PathBrokerAudit, s.auditView)
	s.handler = s.middleware(jsonhttp.Fallback(mux, KindNotFound, KindMethodNotAllowed))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// KeyReloaded counts a key set reload in the metrics.
func (s *Server) KeyReloaded() { s.m.keyReloads.Inc() }

// middleware is the shared plumbing (request id, panic recovery to the
// JSON envelope, access log); probes and metrics scrapes log at debug.
func (s *Server) middleware(next http.Handler) http.Handler {
	trusted, _ := clientip.Parse(s.cfg.TrustedProxies) // checked by Validate
	var hosts *jsonhttp.HostPolicy
	if s.cfg.hostCheck {
		hosts, _ = jsonhttp.NewHostPolicy(s.cfg.Issuer) // checked by Validate
	}
	return jsonhttp.Middleware(next, jsonhttp.MiddlewareOptions{
		Logger: s.log, InternalKind: KindInternal,
		Quiet:          func(p string) bool { return p == PathHealthz || p == PathMetrics || p == PathReadyz },
		TrustedProxies: trusted, Hosts: hosts,
	})
}

func requestID(ctx context.Context) string { return jsonhttp.RequestID(ctx) }

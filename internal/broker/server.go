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
// also serves the issuer's discovery document and JWKS, /healthz, /readyz and
// /metrics.
package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/sts"
)

// Error kinds (reference/broker.md §1.1, plus the ones this broker adds).
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
	Audit         audit.Sink
	Logger        *slog.Logger
	Now           func() time.Time
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

// --- probes -----------------------------------------------------------

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok")
}

// probeTimeout bounds each readiness check.
const probeTimeout = 2 * time.Second

type readiness struct {
	Status    string   `json:"status"`
	BackendOK bool     `json:"backend_ok"`
	AuditOK   bool     `json:"audit_ok"`
	KeysOK    bool     `json:"keys_ok"`
	STSOK     *bool    `json:"sts_ok,omitempty"` // absent when AWS minting is off
	Failed    []string `json:"failed,omitempty"`
	// Hint says what to do when the only failed check is STS: the broker
	// serves discovery and OIDC tokens, only /v1/mint-aws-creds needs AWS.
	Hint string `json:"hint,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	checks := map[string]func(context.Context) error{
		"audit": s.deps.Audit.Ping,
		"keys":  func(context.Context) error { return s.deps.Issuer.Ready() },
	}
	if s.deps.BackendHealth != nil {
		checks["backend"] = s.deps.BackendHealth
	}
	if s.deps.AWS != nil {
		checks["sts"] = s.stsReady
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() { results <- result{name, runBounded(ctx, check)} }()
	}
	rd := readiness{Status: "ready", BackendOK: true, AuditOK: true, KeysOK: true}
	if s.deps.AWS != nil {
		ok := true
		rd.STSOK = &ok
	}
	for range checks {
		res := <-results
		if res.err == nil {
			continue
		}
		s.log.Warn("readiness check failed", "check", res.name, "err", res.err)
		rd.Failed = append(rd.Failed, res.name)
		switch res.name {
		case "backend":
			rd.BackendOK = false
		case "audit":
			rd.AuditOK = false
		case "keys":
			rd.KeysOK = false
		case "sts":
			f := false
			rd.STSOK = &f
		}
	}
	if len(rd.Failed) > 0 {
		rd.Status = "not_ready"
		if len(rd.Failed) == 1 && rd.Failed[0] == "sts" {
			rd.Hint = "only AWS STS is unreachable: discovery and /v1/mint-oidc-jwt work, /v1/mint-aws-creds fails until the broker's AWS principal (instance profile, AWS_PROFILE or DAEMON_ACCESS_KEY_ID/DAEMON_SECRET_ACCESS_KEY) and BROKER_AWS_REGION/BROKER_STS_ENDPOINT reach STS"
		}
		jsonhttp.Write(w, http.StatusServiceUnavailable, rd)
		return
	}
	jsonhttp.Write(w, http.StatusOK, rd)
}

// stsReady calls GetCallerIdentity at most once a minute while it succeeds
// (probes must not cost an STS call each); failures are re-checked at once.
func (s *Server) stsReady(ctx context.Context) error {
	s.stsMu.Lock()
	fresh := !s.stsOKAt.IsZero() && s.now().Sub(s.stsOKAt) < s.stsCache
	s.stsMu.Unlock()
	if fresh {
		return nil
	}
	if _, err := s.deps.AWS.CallerIdentity(ctx); err != nil {
		return err
	}
	s.stsMu.Lock()
	s.stsOKAt = s.now()
	s.stsMu.Unlock()
	return nil
}

// runBounded runs check but returns by ctx's deadline even if check ignores
// its context.
func runBounded(ctx context.Context, check func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- check(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// --- mints ------------------------------------------------------------

// minted is what a mint produced: the response body and what the audit row
// records about it.
type minted struct {
	body         any
	sessionName  string
	credentialID string
	expires      time.Time
	duration     time.Duration // the lifetime asked for, after the session cap
}

// failure is a refused mint: the client's error and the audit outcome and
// detail (which may say more than the client sees, never a secret).
type failure struct {
	err     *jsonhttp.Error
	outcome string
	detail  string
	// unrecorded is the ledger's error when the attempt row could not be
	// written: the mint is refused as an audit failure without trying the
	// ledger again.
	unrecorded error
}

func (s *Server) mintJWT(w http.ResponseWriter, r *http.Request) {
	ttl := s.deps.Issuer.TTL()
	s.mint(w, r, endpointJWT, audit.RoleOIDCJWT, ttl, func(ctx context.Context, id Identity, _ recordAttempt) (minted, *failure) {
		life, f := s.credentialLifetime(id, ttl, MinJWTTTL, "OIDC tokens")
		if f != nil {
			return minted{}, f
		}
		tok, err := s.deps.Issuer.Mint(oidc.Subject{Wallet: string(id.Wallet), Access: accessLevel(id), NotAfter: id.ExpiresAt})
		if errors.Is(err, oidc.ErrExpired) { // the session ended between the check and the signature
			return minted{}, s.expiring(0, MinJWTTTL, "OIDC tokens")
		}
		if err != nil {
			return minted{}, &failure{
				err:     jsonhttp.Errorf(http.StatusInternalServerError, KindInternal, "internal: could not sign the token"),
				outcome: audit.OutcomeInternal, detail: err.Error(),
			}
		}
		return minted{
			body:        api.MintJWTResponse{JWT: tok.JWT, Wallet: string(id.Wallet), Expiration: tok.Expires.Unix()},
			sessionName: tok.KID, credentialID: tok.ID, expires: tok.Expires, duration: life,
		}, nil
	})
}

func (s *Server) mintAWS(w http.ResponseWriter, r *http.Request) {
	if s.deps.AWS == nil {
		jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusNotFound, KindNotFound,
			"not found: AWS credential minting is not configured on this broker (set BROKER_DATA_ROLE_ARN); use /v1/mint-oidc-jwt"))
		return
	}
	s.mint(w, r, endpointAWS, s.cfg.DataRoleARN, s.cfg.SessionDuration, func(ctx context.Context, id Identity, attempt recordAttempt) (minted, *failure) {
		life, f := s.credentialLifetime(id, s.cfg.SessionDuration, sts.MinDuration, "AWS credentials")
		if f != nil {
			return minted{}, f
		}
		name := sts.SessionName(string(id.Wallet))
		// STS issues the credentials whatever happens next, so the call is
		// recorded before it is made.
		if f := attempt(ctx, name, life); f != nil {
			return minted{sessionName: name, duration: life}, f
		}
		ctx, cancel := context.WithTimeout(ctx, s.cfg.STSTimeout)
		defer cancel()
		start := time.Now()
		creds, err := s.deps.AWS.AssumeRole(ctx, sts.AssumeRequest{
			RoleARN: s.cfg.DataRoleARN, SessionName: name, Duration: life,
			Wallet: string(id.Wallet), Kind: id.Kind, Access: accessLevel(id),
		})
		s.m.stsSecs.Observe(time.Since(start).Seconds())
		if err != nil {
			return minted{sessionName: name, duration: life}, &failure{
				err:     jsonhttp.Errorf(http.StatusBadGateway, KindSTSError, "sts error: AWS STS refused or failed the AssumeRole call (see the broker's audit log)"),
				outcome: audit.OutcomeSTSError, detail: err.Error(),
			}
		}
		return minted{
			body: api.MintAWSResponse{
				AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken,
				Expiration: creds.Expiration.Unix(), Wallet: string(id.Wallet),
			},
			sessionName: name, credentialID: creds.AccessKeyID, expires: creds.Expiration, duration: life,
		}, nil
	})
}

// accessLevel is what credentials minted for the session may do: "read"
// for a read-only agent, "write" for any other session (a master has no
// scope and may write).
func accessLevel(id Identity) string {
	if id.Scope.CanWrite() {
		return oidc.AccessWrite
	}
	return oidc.AccessRead
}

// credentialLifetime caps a credential's lifetime to what is left of the
// caller's session, rounded down to the second. When less than floor is
// left (the shortest credential the endpoint may issue: 60 s for a JWT,
// STS's 900 s for AWS credentials) the mint is refused: a credential must
// not outlive the session it was minted for, and the client has to log in
// again (or re-pair) either way. A session whose end the backend did not
// state is refused as a backend fault.
func (s *Server) credentialLifetime(id Identity, configured, floor time.Duration, what string) (time.Duration, *failure) {
	if id.ExpiresAt.IsZero() {
		return 0, &failure{
			err:     jsonhttp.Errorf(http.StatusBadGateway, KindBackendUnreachable, "backend unreachable: the session backend could not validate the bearer"),
			outcome: audit.OutcomeBackendError, detail: "validate response has no session expiry",
		}
	}
	left := id.ExpiresAt.Sub(s.now()).Truncate(time.Second)
	if left >= configured {
		return configured, nil
	}
	if left < floor {
		return 0, s.expiring(left, floor, what)
	}
	return left, nil
}

// expiring is the refusal of a mint for a session that ends in left.
func (s *Server) expiring(left, floor time.Duration, what string) *failure {
	secs := max(int64(left/time.Second), 0)
	return &failure{
		err: jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized,
			"unauthorized: session expires in %d s; %s last at least %d s and never outlive their session, so none were issued; log in again (or re-pair the agent)",
			secs, what, int64(floor/time.Second)),
		outcome: audit.OutcomeSessionExpiring,
		detail:  fmt.Sprintf("session expires in %d s, %s need at least %d s", secs, what, int64(floor/time.Second)),
	}
}

// mint runs the steps every mint shares: limits, bearer, body, session,
// scope, the endpoint's own work, then the audit row, then the response.
func (s *Server) mint(w http.ResponseWriter, r *http.Request, endpoint, role string, dur time.Duration,
	produce func(ctx context.Context, id Identity, attempt recordAttempt) (minted, *failure)) {
	start := time.Now()
	ctx := r.Context()
	ip := ratelimit.ClientIP(r)
	if ok, wait := s.ipLimit.Allow(ip); !ok {
		s.rateLimited(w, r, endpoint, "ip", wait)
		return
	}
	rec := audit.Record{
		Time: s.now(), ClientIP: ip, RequestID: requestID(ctx),
		RequestedRole: role, DurationSeconds: int64(dur / time.Second),
		RequesterWallet: audit.UnknownWallet, STSSessionName: unauthenticatedSession,
	}
	finish := func(status int, body any, f *failure) {
		outcome := audit.OutcomeOK
		if f != nil {
			outcome, rec.Outcome, rec.Detail = f.outcome, f.outcome, f.detail
		} else {
			rec.Outcome = audit.OutcomeOK
		}
		var err error
		if f != nil && f.unrecorded != nil {
			err = f.unrecorded
		} else {
			err = s.appendAudit(ctx, rec)
		}
		if err != nil {
			s.m.auditErrors.Inc()
			s.m.mints.WithLabelValues(endpoint, outcomeAudit).Inc()
			s.log.Error("audit write failed; mint refused", "endpoint", endpoint, "request_id", rec.RequestID,
				"intended_outcome", outcome, "wallet", rec.RequesterWallet, "err", err)
			jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusInternalServerError, KindAuditError, "audit error: the mint could not be recorded, so nothing was issued"))
			s.m.mintSeconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
			return
		}
		s.m.mints.WithLabelValues(endpoint, outcome).Inc()
		s.m.mintSeconds.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		if f != nil {
			if f.detail != "" && f.outcome != audit.OutcomeAuthFailed && f.outcome != audit.OutcomeBadRequest && f.outcome != audit.OutcomeSessionExpiring {
				s.log.Warn("mint failed", "endpoint", endpoint, "request_id", rec.RequestID, "outcome", f.outcome,
					"wallet", rec.RequesterWallet, "detail", f.detail)
			}
			jsonhttp.WriteError(w, f.err)
			return
		}
		jsonhttp.Write(w, status, body)
	}

	token, tokenHash, berr := bearer(r)
	rec.RequesterTokenHash = tokenHash
	if berr != "" {
		finish(0, nil, &failure{
			err:     jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized, "unauthorized: %s", berr),
			outcome: audit.OutcomeAuthFailed, detail: berr,
		})
		return
	}
	if ok, wait := s.bearerLimit.Allow(tokenHash); !ok {
		s.rateLimited(w, r, endpoint, "bearer", wait)
		return
	}
	if e := decodeMintBody(r); e != nil {
		finish(0, nil, &failure{err: e, outcome: audit.OutcomeBadRequest, detail: e.Message})
		return
	}

	vstart := time.Now()
	id, err := s.valid.Validate(ctx, token)
	s.m.validSecs.Observe(time.Since(vstart).Seconds())
	if err != nil {
		var ue *UnauthorizedError
		if errors.As(err, &ue) {
			finish(0, nil, &failure{
				err:     jsonhttp.Errorf(http.StatusUnauthorized, KindUnauthorized, "unauthorized: %s", ue.Reason),
				outcome: audit.OutcomeAuthFailed, detail: "backend: " + ue.Reason,
			})
			return
		}
		finish(0, nil, &failure{
			err:     jsonhttp.Errorf(http.StatusBadGateway, KindBackendUnreachable, "backend unreachable: the session backend could not validate the bearer"),
			outcome: audit.OutcomeBackendError, detail: err.Error(),
		})
		return
	}
	rec.RequesterWallet = string(id.Wallet)
	if ok, wait := s.walletLimit.Allow(rec.RequesterWallet); !ok {
		s.rateLimited(w, r, endpoint, "wallet", wait)
		return
	}
	if s.cfg.ScopeService != "" && id.Scope != nil && !id.Scope.Allows(s.cfg.ScopeService) {
		finish(0, nil, &failure{
			err: jsonhttp.Errorf(http.StatusForbidden, KindForbidden,
				"forbidden: this session's scope does not include %q; ask the master to grant it", s.cfg.ScopeService),
			outcome: audit.OutcomeScopeDenied, detail: fmt.Sprintf("scope lacks %q", s.cfg.ScopeService),
		})
		return
	}

	out, f := produce(ctx, id, func(ctx context.Context, sessionName string, life time.Duration) *failure {
		return s.recordAttempt(ctx, rec, sessionName, life)
	})
	if out.sessionName != "" {
		rec.STSSessionName = out.sessionName
	}
	if out.duration > 0 {
		rec.DurationSeconds = int64(out.duration / time.Second)
	}
	if f != nil {
		finish(0, nil, f)
		return
	}
	rec.CredentialID = out.credentialID
	rec.CredentialExpiresAt = out.expires.Unix()
	finish(http.StatusOK, out.body, nil)
}

func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request, endpoint, limit string, wait time.Duration) {
	s.m.rateLimited.WithLabelValues(endpoint, limit).Inc()
	e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "rate limited: too many mint requests; retry later")
	e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
	jsonhttp.WriteError(w, e)
}

// recordAttempt writes the row of a mint about to call an external issuer
// (STS): the credentials it returns exist whether or not the outcome row
// can be written afterwards. A failure refuses the mint before the call.
type recordAttempt func(ctx context.Context, sessionName string, life time.Duration) *failure

func (s *Server) recordAttempt(ctx context.Context, rec audit.Record, sessionName string, life time.Duration) *failure {
	rec.Outcome, rec.Detail = audit.OutcomeAttempt, "calling STS AssumeRole"
	rec.STSSessionName, rec.DurationSeconds = sessionName, int64(life/time.Second)
	if err := s.appendAudit(ctx, rec); err != nil {
		return &failure{outcome: outcomeAudit, unrecorded: fmt.Errorf("recording the attempt before calling STS (STS not called): %w", err)}
	}
	return nil
}

// appendAudit writes rec within the audit deadline, and a client hanging
// up does not cut the write short. A sink that decides its appends
// (audit.SQL: an error means the row was not and will not be written) is
// waited for, so the caller's answer always matches the ledger; any other
// sink is abandoned at the deadline even if it ignores its context.
func (s *Server) appendAudit(ctx context.Context, rec audit.Record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AuditTimeout)
	defer cancel()
	start := time.Now()
	var err error
	if d, ok := s.deps.Audit.(audit.Decider); ok && d.DecidesAppends() {
		err = s.deps.Audit.Append(ctx, rec)
	} else {
		done := make(chan error, 1)
		go func() { done <- s.deps.Audit.Append(ctx, rec) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("audit deadline of %v exceeded: %w", s.cfg.AuditTimeout, ctx.Err())
		}
	}
	s.m.auditSecs.Observe(time.Since(start).Seconds())
	return err
}

// bearer extracts the session token. On failure it returns a reason safe
// for the client; the hash is of whatever credential was presented ("" when
// none), so failed attempts can be correlated without storing them.
func bearer(r *http.Request) (token string, hash string, reason string) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", "", "missing Authorization header"
	}
	if len(vals) > 1 {
		return "", "", "more than one Authorization header"
	}
	h := vals[0]
	if len(h) > maxAuthHeader {
		return "", string(agentkeys.HashSecret(h)), "Authorization header too long"
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", string(agentkeys.HashSecret(h)), "Authorization header must be \"Bearer <session token>\""
	}
	raw := strings.TrimSpace(rest)
	hash = string(agentkeys.HashSecret(raw))
	tok, err := agentkeys.ParseToken(raw)
	if err != nil {
		return "", hash, "malformed bearer token"
	}
	return tok.Reveal(), hash, ""
}

// decodeMintBody accepts an empty body or "{}"; anything else must decode
// strictly (unknown fields rejected) within MaxBodyBytes.
func decodeMintBody(r *http.Request) *jsonhttp.Error {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "bad request: could not read the request body")
	}
	if len(body) > MaxBodyBytes {
		return jsonhttp.Errorf(http.StatusRequestEntityTooLarge, KindBadRequest, "bad request: request body exceeds %d bytes", MaxBodyBytes)
	}
	return decodeMintBytes(body, r.Header.Get("Content-Type"))
}

func decodeMintBytes(body []byte, contentType string) *jsonhttp.Error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil
	}
	if string(trimmed) == "null" {
		return jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "bad request: request body must be a JSON object")
	}
	req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	var m api.MintRequest
	if e := jsonhttp.Decode(nil, req, &m, MaxBodyBytes); e != nil {
		return jsonhttp.Errorf(e.Status, KindBadRequest, "bad request: %s", e.Message)
	}
	return nil
}

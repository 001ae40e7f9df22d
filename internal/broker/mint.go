package broker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/oidc"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
	"github.com/agentkeys/agentkeys/internal/sts"
)

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
				err:     jsonhttp.Errorf(http.StatusBadGateway, KindSTSError, "%s", stsFailureMessage(ctx, err, s.cfg.STSTimeout)),
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
// again (or re-pair) either way. A backend that does not state the
// session's end (the original backend's /session/validate answers only
// wallet and scope) gets the configured lifetime: there is nothing to cap
// to, and the broker must keep working against it; a warning says so once.
func (s *Server) credentialLifetime(id Identity, configured, floor time.Duration, what string) (time.Duration, *failure) {
	if id.ExpiresAt.IsZero() {
		s.noExpiryOnce.Do(func() {
			s.log.Warn("the session backend does not state session expiry (an older backend?); minted credentials get their configured lifetime instead of being capped to the session")
		})
		return configured, nil
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
	e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "rate limited: too many requests; retry later")
	e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
	jsonhttp.WriteError(w, e)
}

// stsCode is what an AWS error code looks like; anything else is not
// passed on.
var stsCode = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]{0,63}$`) })

// stsFailureMessage tells the client what STS said — its error code (a
// fixed AWS token such as AccessDenied, never its free text, which names
// accounts and roles) and what it usually means — or that it did not
// answer. The full error is in the audit row.
func stsFailureMessage(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Sprintf("sts error: AWS STS did not answer AssumeRole within %s (BROKER_STS_TIMEOUT); details in the broker's audit log", timeout)
	}
	code := sts.ErrorCode(err)
	if !stsCode().MatchString(code) {
		return "sts error: AWS STS refused or failed the AssumeRole call; details in the broker's audit log"
	}
	why := ""
	switch code {
	case "AccessDenied":
		why = ": the broker's AWS principal may not assume the data role, or the role's trust policy or session tags refuse it"
	case "ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException":
		why = ": the broker's own AWS credentials are invalid or expired"
	case "RegionDisabledException":
		why = ": STS is not enabled in the broker's region (BROKER_AWS_REGION)"
	case "Throttling", "ThrottlingException":
		why = ": STS is rate limiting the broker; retry shortly"
	}
	return fmt.Sprintf("sts error: AWS STS answered %s to AssumeRole%s; details in the broker's audit log", code, why)
}

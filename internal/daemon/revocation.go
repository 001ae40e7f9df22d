package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
)

// Revocation watch.
//
// The daemon keeps a GET /session/watch long-poll open on the backend. The
// backend answers 401 as soon as the session is revoked (directly, through
// an ancestor, by a teardown) or expires; the daemon then marks the session
// dead, zeroes and drops every cached secret (credential values, AWS
// credentials, OIDC tokens, the broker token), removes the web-identity
// token file, and every
// surface answers AUTH_FAILED "session revoked" from then on.
//
// Cached values are served only while validity is confirmed: a watch is
// open (or the backend confirmed the session less than watchGrace ago).
// While the backend cannot be reached, every request goes to the backend
// (or broker) instead, and so fails or succeeds on their answer.

// watchGrace is how long after the last confirmation (a validate, a watch
// answered 200, a watch opened after a successful validate) cached values
// may still be served when the watch is broken.
const watchGrace = 2 * time.Second

// watchTimeout bounds one watch request (the backend answers after its
// await window, 25 s by default).
const watchTimeout = 90 * time.Second

// errRevoked is what every surface answers once the session is dead.
var errRevoked = &Error{Code: CodeAuthFailed,
	Message: "session revoked: the daemon's session was revoked or has expired; pair again (agentkeys-daemon --pair) or recover (--recover)"}

// alive returns errRevoked once the session is known to be dead.
func (s *Service) alive() error {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.dead {
		return errRevoked
	}
	return nil
}

// cacheUsable reports whether cached values may be served now: always
// when no watcher runs (a Service used on its own), else only while the
// watcher confirms the session.
func (s *Service) cacheUsable() bool {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.dead {
		return false
	}
	if !s.watching {
		return true
	}
	return s.watchOpen || s.now().Sub(s.confirmedAt) < watchGrace
}

func (s *Service) setWatch(open, confirmed bool) {
	s.authMu.Lock()
	s.watchOpen = open
	if confirmed {
		s.confirmedAt = s.now()
	}
	s.authMu.Unlock()
}

// kill marks the session dead and zeroes every cached secret.
func (s *Service) kill(reason string) {
	s.authMu.Lock()
	first := !s.dead
	s.dead = true
	s.watchOpen = false
	tokenFile := s.tokenFile
	s.authMu.Unlock()
	if first {
		close(s.revoked)
	}
	s.Close()
	if s.o.Broker != nil {
		s.o.Broker.Forget()
	}
	if tokenFile != "" {
		if err := os.Remove(tokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("could not remove the web identity token file", "path", tokenFile, "err", err.Error())
		}
	}
	if first {
		s.log.Error("the daemon's session was refused: it was revoked or expired; every cached secret was dropped; pair again (agentkeys-daemon --pair) or recover (--recover)",
			"reason", reason, "wallet", s.o.Session.Wallet)
	}
}

// Revoked is closed once the session is known to be dead (revoked or
// expired): the gateway cuts its requests in flight on it.
func (s *Service) Revoked() <-chan struct{} { return s.revoked }

// StartWatch starts watching the daemon's session in the background
// until ctx ends or the session dies. From then on, nothing is served from
// cache unless the watch confirms the session.
func (s *Service) StartWatch(ctx context.Context) {
	if s.o.Backend == nil {
		return
	}
	s.authMu.Lock()
	s.watching = true
	s.authMu.Unlock()
	go s.runWatch(ctx)
}

func (s *Service) runWatch(ctx context.Context) {
	tok := s.o.Session.Token
	failures := 0
	needValidate := true
	for ctx.Err() == nil {
		if needValidate {
			vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := s.o.Backend.Validate(vctx, tok)
			cancel()
			if s.watchFailed(err) {
				return
			}
			if err != nil {
				failures++
				if !sleepCtx(ctx, backoff(failures, 250*time.Millisecond, 5*time.Second)) {
					return
				}
				continue
			}
			failures, needValidate = 0, false
			s.setWatch(false, true)
		}
		s.setWatch(true, false)
		wctx, cancel := context.WithTimeout(ctx, watchTimeout)
		_, err := s.o.Backend.WatchSession(wctx, tok)
		cancel()
		s.setWatch(false, err == nil)
		if s.watchFailed(err) {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		var be *backendclient.Error
		if errors.As(err, &be) && (be.Status == http.StatusNotFound || be.Status == http.StatusMethodNotAllowed) {
			// A backend without /session/watch: validate every second.
			s.log.Warn("the backend has no session watch; validating the session every second instead")
			s.pollValidate(ctx)
			return
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		needValidate = true
		s.log.Warn("session watch failed; cached secrets are not served until the backend confirms the session again", "err", classify(err).Message)
		if !sleepCtx(ctx, backoff(failures, 250*time.Millisecond, 5*time.Second)) {
			return
		}
	}
}

// watchFailed kills the session on a 401/410 answer and says so.
func (s *Service) watchFailed(err error) bool {
	if err != nil && (errors.Is(err, backendclient.ErrUnauthorized) || errors.Is(err, backendclient.ErrExpired)) {
		var be *backendclient.Error
		reason := "session refused"
		if errors.As(err, &be) {
			reason = be.Message
		}
		s.kill(reason)
		return true
	}
	return false
}

// pollValidate is the watch for backends that cannot long-poll.
func (s *Service) pollValidate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.o.Backend.Validate(vctx, s.o.Session.Token)
		cancel()
		if s.watchFailed(err) {
			return
		}
		s.setWatch(false, err == nil)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

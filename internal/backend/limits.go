package backend

import (
	"net/http"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
)

// limit spends one of key's tokens in l; when there is none it answers 429
// RATE_LIMITED with msg and a Retry-After of the wait for the next one.
func limit(l *ratelimit.Limiter, key, msg string) error {
	if ok, wait := l.Allow(key); !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "%s", msg)
		e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
		return e
	}
	return nil
}

func (s *Server) limitIP(r *http.Request, l *ratelimit.Limiter) error {
	return limit(l, ratelimit.ClientIP(r), "too many requests; retry later")
}

func (s *Server) limitCaller(c *caller, l *ratelimit.Limiter) error {
	return limit(l, string(c.session.TokenHash), "too many attempts; retry later")
}

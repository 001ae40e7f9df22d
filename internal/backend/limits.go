package backend

import (
	"net/http"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
)

func (s *Server) limitIP(r *http.Request, l *ratelimit.Limiter) error {
	if ok, wait := l.Allow(ratelimit.ClientIP(r)); !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many requests; retry later")
		e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
		return e
	}
	return nil
}

func (s *Server) limitCaller(c *caller, l *ratelimit.Limiter) error {
	if ok, wait := l.Allow(string(c.session.TokenHash)); !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many attempts; retry later")
		e.RetryAfter = ratelimit.RetryAfterSeconds(wait)
		return e
	}
	return nil
}

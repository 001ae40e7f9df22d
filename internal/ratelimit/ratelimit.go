// Package ratelimit keeps one token bucket per key (a bearer hash, a client
// IP) so that abuse from one caller cannot starve the others. Idle buckets
// are forgotten, keeping memory bounded by the number of active callers.
package ratelimit

import (
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentkeys/agentkeys/internal/clientip"
)

// Limiter allows Rate events per second per key with bursts of Burst.
type Limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	lastGC  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxIdle is how long a bucket may sit unused before it is dropped. By then
// it has refilled in any sensible configuration.
const maxIdle = 10 * time.Minute

// New returns a limiter; perSecond <= 0 disables limiting.
func New(perSecond float64, burst int) *Limiter {
	burst = max(burst, 1)
	l := rate.Limit(perSecond)
	if perSecond <= 0 {
		l = rate.Inf
	}
	return &Limiter{rate: l, burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes one token for key. When none is left it returns false and how
// long until one will be.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.rate == rate.Inf {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastGC) > maxIdle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > maxIdle {
				delete(l.buckets, k)
			}
		}
		l.lastGC = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// RetryAfterSeconds rounds a wait up to whole seconds for a Retry-After header.
func RetryAfterSeconds(d time.Duration) int {
	return int(math.Max(1, math.Ceil(d.Seconds())))
}

// ClientIP returns the request's client address (without port): the one
// the shared middleware resolved, which honours forwarding headers from
// configured trusted proxies only (see package clientip), or else the
// connecting peer's.
func ClientIP(r *http.Request) string { return clientip.Of(r) }

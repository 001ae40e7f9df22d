package backend

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Long polls of openers (GET /auth-request/await, GET /rendezvous/poll).
//
// A waiting opener costs no database work of its own: it reads its request
// once (a plain read, no transaction), then sleeps until
//   - the in-process wake-up fires (the decision was made on this replica),
//   - the pairing epoch moves (a decision was made on any replica: one
//     shared poller per process reads that single-row counter every
//     EpochPoll while anyone waits), or
//   - its request expires or the await window ends,
// and only then reads again. Collecting an approved session or a delivered
// payload (once) is the only step in a transaction.
//
// Each client address may hold at most MaxAwaitersPerIP such long polls at
// once; beyond that it is answered 429.

// Defaults of the opener limits.
const (
	// DefaultMaxAwaitersPerIP bounds the concurrent long polls (await and
	// rendezvous poll together) one client address may hold.
	DefaultMaxAwaitersPerIP = 20
	// DefaultParentOpenRate and DefaultParentOpenBurst bound, per named
	// master, the auth requests opened with parent_wallet (each writes a
	// row into that master's audit log on behalf of an unauthenticated
	// caller).
	DefaultParentOpenRate  = 1.0
	DefaultParentOpenBurst = 5
)

// awaiterCap counts the long polls each client address holds.
type awaiterCap struct {
	max int // <= 0: unlimited
	mu  sync.Mutex
	n   map[string]int
}

func newAwaiterCap(max int) *awaiterCap {
	return &awaiterCap{max: max, n: map[string]int{}}
}

// acquire takes one of key's places; the returned func gives it back.
func (a *awaiterCap) acquire(key string) (func(), bool) {
	if a.max <= 0 {
		return func() {}, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] >= a.max {
		return nil, false
	}
	a.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.n[key]--; a.n[key] <= 0 {
				delete(a.n, key)
			}
		})
	}, true
}

// startLongPoll admits one long poll of r's client and registers it with
// the pairing-epoch poller; the returned func ends both.
func (s *Server) startLongPoll(r *http.Request) (func(), error) {
	release, ok := s.awaiters.acquire(clientip.Of(r))
	if !ok {
		e := jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many pending long polls from this address (at most %d); retry later", s.awaiters.max)
		e.RetryAfter = 1
		return nil, e
	}
	leave := s.pairings.join()
	return func() { leave(); release() }, nil
}

// limitParent spends one of the named master's tokens for an
// unauthenticated open that writes into its audit log.
func (s *Server) limitParent(parent string) error {
	if s.parentOpenLimit == nil {
		return nil
	}
	return limit(s.parentOpenLimit, parent, "too many requests opened for this master; retry later")
}

// bumpPairing bumps the pairing epoch inside the caller's transaction and
// remembers the new value in *out, for s.pairings.observe after the commit.
func bumpPairing(ctx context.Context, q store.Queries, out *int64) error {
	n, err := q.BumpPairingEpoch(ctx)
	if err != nil {
		return err
	}
	*out = n
	return nil
}

// waiter registers interest in a request's decision on this replica.
// Replicas that do not see the approval fall back to polling.
func (s *Server) waiter(id string) chan struct{} {
	ch := make(chan struct{})
	s.waitMu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.waitMu.Unlock()
	return ch
}

func (s *Server) unwait(id string, ch chan struct{}) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	list := s.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = list
	}
}

func (s *Server) notify(id string) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	for _, ch := range s.waiters[id] {
		close(ch)
	}
	delete(s.waiters, id)
}

// pollLook is one look of a long poll at its state: done ends the poll
// with out; otherwise key names the in-process wake-up to wait on (when
// not known before the look) and left is how long the state stays as it
// is at most.
type pollLook struct {
	out  any
	done bool
	key  string
	left time.Duration
}

// longPoll holds an opener's request (admitted by startLongPoll) until
// look ends it, the await window passes (answered with timeout) or the
// client leaves. Between looks it sleeps until the in-process wake-up
// fires, the pairing epoch moves or the state's own time is up. A wake-up
// key known up front (key != "") is subscribed before each look, so a
// change committed after the read still wakes the poll; otherwise the key
// comes from the look and is subscribed after it, a change in between
// being caught by the pairing epoch (taken before the look).
func (s *Server) longPoll(r *http.Request, key string, timeout any, look func() (pollLook, error)) (any, error) {
	ctx := r.Context()
	done, err := s.startLongPoll(r)
	if err != nil {
		return nil, err
	}
	defer done()
	deadline := time.NewTimer(s.awaitWindow)
	defer deadline.Stop()
	for {
		_, moved := s.pairings.since()
		k := key
		var wake chan struct{}
		if k != "" {
			wake = s.waiter(k)
		}
		l, err := look()
		if err != nil || l.done {
			if wake != nil {
				s.unwait(k, wake)
			}
			return l.out, err
		}
		if wake == nil {
			k = l.key
			wake = s.waiter(k)
		}
		expiry := time.NewTimer(l.left)
		select {
		case <-wake:
		case <-moved:
		case <-expiry.C:
		case <-deadline.C:
			expiry.Stop()
			s.unwait(k, wake)
			return timeout, nil
		case <-ctx.Done():
			expiry.Stop()
			s.unwait(k, wake)
			return nil, ctx.Err()
		}
		expiry.Stop()
		s.unwait(k, wake)
	}
}

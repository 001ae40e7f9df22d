package backend

import (
	"context"
	"sync"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// maxCachedSessions bounds the session cache; when it is full it starts
// over empty.
const maxCachedSessions = 8192

// sessionCache remembers resolved sessions (session, wallet, effective
// scope) for one revocation epoch. Every change that takes access away or
// changes a scope (revoke, teardown, scope update or approval) bumps the
// epoch in its own transaction, on whichever replica made it, and the
// epoch is read from the store on every request before the cache is
// consulted: an entry made at an earlier epoch is never used, so a
// revocation applies to the very next request, as without the cache. What
// the cache saves is the session row and the wallet lineage (two
// statements, one of them recursive) for every request of a session that
// was seen since the last revocation. Expiry is checked on every use.
type sessionCache struct {
	mu    sync.Mutex
	epoch int64
	m     map[agentkeys.TokenHash]caller
}

// get returns the caller resolved for hash at epoch, without its token.
func (sc *sessionCache) get(epoch int64, hash agentkeys.TokenHash) (caller, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if epoch != sc.epoch {
		return caller{}, false
	}
	c, ok := sc.m[hash]
	return c, ok
}

// put records c, resolved after epoch was read. An entry for an epoch
// older than the cache's is dropped; a newer epoch empties the cache.
func (sc *sessionCache) put(epoch int64, hash agentkeys.TokenHash, c caller) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if epoch < sc.epoch {
		return
	}
	if epoch > sc.epoch || sc.m == nil || len(sc.m) >= maxCachedSessions {
		sc.epoch = epoch
		sc.m = make(map[agentkeys.TokenHash]caller)
	}
	c.token = ""
	sc.m[hash] = c
}

// resolveCurrent resolves tok outside a transaction: from the cache when
// it was resolved at the current revocation epoch and has not expired
// since, else from the store (and then cached). It writes nothing.
func (s *Server) resolveCurrent(ctx context.Context, tok agentkeys.Token) (*caller, error) {
	// The epoch is read before the session, so an entry is never credited
	// to an epoch later than the one its resolution saw.
	epoch, err := s.store.RevocationEpoch(ctx)
	if err != nil {
		return nil, err
	}
	hash := tok.Hash()
	if c, ok := s.sessions.get(epoch, hash); ok && c.session.TokenHash.Equal(hash) && s.now().Before(c.session.ExpiresAt) {
		c.token = tok
		return &c, nil
	}
	c, err := s.resolveSession(ctx, s.store, tok)
	if err != nil {
		return nil, err
	}
	s.sessions.put(epoch, hash, *c)
	return c, nil
}

package backend

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Quota defaults (per master; a negative setting means unlimited).
const (
	DefaultMaxAgentDepth               = 16
	DefaultMaxAgentsPerMaster          = 1000
	DefaultMaxCredentialsPerMaster     = 10000
	DefaultMaxPendingRequestsPerMaster = 20
)

// Quotas bound what one master's tree may hold. Zero fields take the
// defaults; negative fields are unlimited.
type Quotas struct {
	MaxDepth           int
	MaxAgents          int
	MaxCredentials     int
	MaxPendingRequests int
}

func (q Quotas) withDefaults() Quotas {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&q.MaxDepth, DefaultMaxAgentDepth)
	def(&q.MaxAgents, DefaultMaxAgentsPerMaster)
	def(&q.MaxCredentials, DefaultMaxCredentialsPerMaster)
	def(&q.MaxPendingRequests, DefaultMaxPendingRequestsPerMaster)
	return q
}

// KindQuotaExceeded is the error kind of a refused insert: 403, since the
// request is well-formed and retrying it cannot help until the master
// removes something (or the operator raises the limit).
const KindQuotaExceeded = "QUOTA_EXCEEDED"

func quotaExceeded(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusForbidden, KindQuotaExceeded, format, args...)
}

// rootOf returns the lineage of w (w first) and its master.
func rootOf(ctx context.Context, q store.Queries, w agentkeys.Wallet) ([]store.Wallet, agentkeys.Wallet, error) {
	lineage, err := q.Lineage(ctx, w)
	if err != nil {
		return nil, "", err
	}
	return lineage, lineage[len(lineage)-1].Address, nil
}

// checkChildQuota runs inside the transaction that inserts a new agent
// under parent: the new agent's depth and the master's agent count.
func (s *Server) checkChildQuota(ctx context.Context, q store.Queries, parent agentkeys.Wallet) error {
	lineage, root, err := rootOf(ctx, q, parent)
	if err != nil {
		return err
	}
	// A master is depth 0, its agents depth 1: the new agent's depth is
	// the parent's lineage length.
	if max := s.fd.quotas.MaxDepth; max > 0 && len(lineage) > max {
		return quotaExceeded("quota exceeded: agents may be nested at most %d deep under a master", max)
	}
	return s.checkTreeQuota(ctx, q, root, s.fd.quotas.MaxAgents, func(u store.TreeUsage) int { return u.Agents },
		"quota exceeded: a master may have at most %d agents; tear some down first")
}

// checkTreeQuota refuses, with format (given max), when count of what the
// tree of master root holds has reached max; max <= 0 is unlimited.
func (s *Server) checkTreeQuota(ctx context.Context, q store.Queries, root agentkeys.Wallet, max int, count func(store.TreeUsage) int, format string) error {
	if max <= 0 {
		return nil
	}
	u, err := q.TreeUsage(ctx, root, s.now())
	if err != nil {
		return err
	}
	if count(u) >= max {
		return quotaExceeded(format, max)
	}
	return nil
}

// checkCredentialQuota runs inside the transaction that stores service
// for wallet w: only a new credential (not a replacement) counts.
func (s *Server) checkCredentialQuota(ctx context.Context, q store.Queries, w agentkeys.Wallet, service string) error {
	max := s.fd.quotas.MaxCredentials
	if max <= 0 {
		return nil
	}
	if _, err := q.Credential(ctx, w, service); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, root, err := rootOf(ctx, q, w)
	if err != nil {
		return err
	}
	return s.checkTreeQuota(ctx, q, root, max, func(u store.TreeUsage) int { return u.Credentials },
		"quota exceeded: a master's agents may hold at most %d credentials together; tear some down first")
}

// checkPendingQuota runs inside the transaction that opens a request bound
// to master: unsolicited requests cannot pile up in its queue.
func (s *Server) checkPendingQuota(ctx context.Context, q store.Queries, master agentkeys.Wallet) error {
	max := s.fd.quotas.MaxPendingRequests
	if max <= 0 || master == "" {
		return nil
	}
	_, root, err := rootOf(ctx, q, master)
	if errors.Is(err, store.ErrNotFound) {
		return nil // an unknown parent is refused elsewhere (or never approved)
	}
	if err != nil {
		return err
	}
	return s.checkTreeQuota(ctx, q, root, max, func(u store.TreeUsage) int { return u.PendingRequests },
		"quota exceeded: this master already has %d requests awaiting a decision; retry after they expire")
}

package sqlstore

import (
	"context"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// TreeUsage counts the root's live agents, the credentials of its live
// tree and the pending, unexpired auth requests bound to it.
func (q *queries) TreeUsage(ctx context.Context, root agentkeys.Wallet, now time.Time) (store.TreeUsage, error) {
	var u store.TreeUsage
	err := q.q.QueryRowContext(ctx, subtreeCTE+`,
		live AS (SELECT s.address, s.depth FROM subtree s JOIN wallets w ON w.address = s.address WHERE w.torn_down = FALSE)
		SELECT
			(SELECT count(*) FROM live WHERE depth > 0),
			(SELECT count(*) FROM credentials c JOIN live l ON c.wallet = l.address),
			(SELECT count(*) FROM auth_requests a WHERE a.parent_wallet = $1 AND a.status = $2 AND a.expires_at > $3)`,
		string(root), string(store.AuthPending), toMS(now)).Scan(&u.Agents, &u.Credentials, &u.PendingRequests)
	return u, classify("tree usage", err)
}

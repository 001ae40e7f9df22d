package store

import (
	"context"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// TreeUsage is what one master's tree holds, for quota checks.
type TreeUsage struct {
	// Agents counts the live (not torn down) wallets below the root.
	Agents int
	// Credentials counts the credentials of the root and its live agents.
	Credentials int
	// PendingRequests counts pair/recover requests bound to the root
	// that are still pending and not expired at the given time.
	PendingRequests int
}

// QuotaQueries are the counts quota checks need; call them inside the Tx
// that does the insert, so the check and the write are one serializable
// step.
type QuotaQueries interface {
	TreeUsage(ctx context.Context, root agentkeys.Wallet, now time.Time) (TreeUsage, error)
}

package store

import (
	"context"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// NameQueries keep the names masters give the wallets of their tree, and
// answer when an agent was last used, for the agent registry.
type NameQueries interface {
	// SetWalletName names addr in root's tree, replacing any name addr had;
	// name "" removes it. ErrConflict if another wallet of root holds name.
	SetWalletName(ctx context.Context, root, addr agentkeys.Wallet, name string, at time.Time) error
	// WalletByName returns the wallet root gave name to, or ErrNotFound.
	WalletByName(ctx context.Context, root agentkeys.Wallet, name string) (agentkeys.Wallet, error)
	// WalletName returns addr's name, "" if it has none.
	WalletName(ctx context.Context, addr agentkeys.Wallet) (string, error)
	// WalletNames returns every name in root's tree, by wallet.
	WalletNames(ctx context.Context, root agentkeys.Wallet) (map[agentkeys.Wallet]string, error)
	// LastUse returns the time of the newest audit row written by addr
	// (owner), or about addr (agent) with one of actions; zero if none.
	LastUse(ctx context.Context, addr agentkeys.Wallet, actions []string) (time.Time, error)
	// SessionExpiry returns the latest expiry of addr's sessions that are
	// neither revoked nor expired at now; zero if there is none.
	SessionExpiry(ctx context.Context, addr agentkeys.Wallet, now time.Time) (time.Time, error)
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// SetWalletName names addr in root's tree (replacing its old name), or
// removes its name when name is "". A name another wallet of root holds
// is store.ErrConflict; giving a wallet the name it has changes nothing.
func (q *queries) SetWalletName(ctx context.Context, root, addr agentkeys.Wallet, name string, at time.Time) error {
	err := q.atomic(ctx, func(q *queries) error {
		if name != "" {
			var holder string
			err := q.q.QueryRowContext(ctx, `SELECT wallet FROM agent_names WHERE root = $1 AND name = $2`,
				string(root), name).Scan(&holder)
			switch {
			case err == nil && holder == string(addr):
				return nil
			case err == nil:
				return fmt.Errorf("held by another wallet: %w", store.ErrConflict)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		if _, err := q.q.ExecContext(ctx, `DELETE FROM agent_names WHERE wallet = $1`, string(addr)); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := q.q.ExecContext(ctx, `INSERT INTO agent_names (root, name, wallet, created_at) VALUES ($1, $2, $3, $4)`,
			string(root), name, string(addr), toMS(at))
		return err
	})
	return classify("set wallet name", err)
}

// WalletByName returns the wallet root named name.
func (q *queries) WalletByName(ctx context.Context, root agentkeys.Wallet, name string) (agentkeys.Wallet, error) {
	var w string
	err := q.q.QueryRowContext(ctx, `SELECT wallet FROM agent_names WHERE root = $1 AND name = $2`,
		string(root), name).Scan(&w)
	if err != nil {
		return "", classify("wallet by name", err)
	}
	return agentkeys.Wallet(w), nil
}

// WalletName returns addr's name, or "".
func (q *queries) WalletName(ctx context.Context, addr agentkeys.Wallet) (string, error) {
	var n string
	err := q.q.QueryRowContext(ctx, `SELECT name FROM agent_names WHERE wallet = $1`, string(addr)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return n, classify("wallet name", err)
}

// WalletNames returns root's names by wallet.
func (q *queries) WalletNames(ctx context.Context, root agentkeys.Wallet) (map[agentkeys.Wallet]string, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT wallet, name FROM agent_names WHERE root = $1`, string(root))
	if err != nil {
		return nil, classify("wallet names", err)
	}
	defer rows.Close()
	out := map[agentkeys.Wallet]string{}
	for rows.Next() {
		var w, n string
		if err := rows.Scan(&w, &n); err != nil {
			return nil, classify("wallet names", err)
		}
		out[agentkeys.Wallet(w)] = n
	}
	return out, classify("wallet names", rows.Err())
}

// LastUse reads the newest matching audit row through the (owner, id)
// and (agent, id) indexes: two index walks from the end, whatever the
// size of the log.
func (q *queries) LastUse(ctx context.Context, addr agentkeys.Wallet, actions []string) (time.Time, error) {
	list, _ := json.Marshal(actions) // []string cannot fail to encode
	if actions == nil {
		list = []byte("[]")
	}
	var latest int64
	for _, st := range []struct {
		query string
		args  []any
	}{
		{`SELECT ts FROM audit_log WHERE owner_wallet = $1 ORDER BY id DESC LIMIT 1`, []any{string(addr)}},
		{`SELECT ts FROM audit_log WHERE agent_wallet = $1 AND action IN (` + q.d.inList("$2") + `) ORDER BY id DESC LIMIT 1`,
			[]any{string(addr), string(list)}},
	} {
		var ts int64
		err := q.q.QueryRowContext(ctx, st.query, st.args...).Scan(&ts)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return time.Time{}, classify("last use", err)
		}
		latest = max(latest, ts)
	}
	if latest == 0 {
		return time.Time{}, nil
	}
	return fromMS(latest), nil
}

// SessionExpiry returns the latest expiry among addr's live sessions.
func (q *queries) SessionExpiry(ctx context.Context, addr agentkeys.Wallet, now time.Time) (time.Time, error) {
	var ms sql.NullInt64
	err := q.q.QueryRowContext(ctx, `SELECT MAX(expires_at) FROM sessions
		WHERE wallet = $1 AND revoked_at IS NULL AND expires_at > $2`, string(addr), toMS(now)).Scan(&ms)
	if err != nil || !ms.Valid {
		return time.Time{}, classify("session expiry", err)
	}
	return fromMS(ms.Int64), nil
}

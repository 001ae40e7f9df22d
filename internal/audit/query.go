package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxQueryWallets bounds the wallets one Query may name.
const MaxQueryWallets = 5000

// Query selects ledger rows for an audit view. Rows come newest first,
// ordered by (time, chain, id) descending, which is stable across chains.
type Query struct {
	Wallets []string  // requester wallets to include (at least one)
	Since   time.Time // zero: no lower bound (inclusive)
	Until   time.Time // zero: no upper bound (exclusive)
	Outcome string    // "" = any
	JWT     *bool     // nil = both; true = JWT mints only; false = AWS mints only
	Before  *Cursor   // continue after this row (from a previous page)
	Limit   int
}

// Cursor is the position of a row in Query's order.
type Cursor struct {
	Time  int64
	Chain string
	ID    int64
}

// String encodes c as "<unix seconds>:<id>:<chain>" (chain names never
// contain ':').
func (c Cursor) String() string {
	return strconv.FormatInt(c.Time, 10) + ":" + strconv.FormatInt(c.ID, 10) + ":" + c.Chain
}

// CursorOf is the cursor that continues after r.
func CursorOf(r Record) Cursor { return Cursor{Time: r.Time.Unix(), Chain: r.Chain, ID: r.ID} }

// ParseCursor reads a cursor made by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	bad := errors.New("cursor is not one this broker issued")
	t, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, bad
	}
	id, chain, ok := strings.Cut(rest, ":")
	if !ok || !ValidChain(chain) {
		return Cursor{}, bad
	}
	c := Cursor{Chain: chain}
	var err error
	if c.Time, err = strconv.ParseInt(t, 10, 64); err != nil || c.Time < 0 {
		return Cursor{}, bad
	}
	if c.ID, err = strconv.ParseInt(id, 10, 64); err != nil || c.ID < 1 {
		return Cursor{}, bad
	}
	return c, nil
}

// Query returns up to q.Limit rows matching q, newest first.
func (s *SQL) Query(ctx context.Context, q Query) ([]Record, error) {
	if len(q.Wallets) == 0 || q.Limit < 1 {
		return nil, nil
	}
	if len(q.Wallets) > MaxQueryWallets {
		return nil, fmt.Errorf("audit: query names %d wallets, at most %d", len(q.Wallets), MaxQueryWallets)
	}
	cols, chain := selectColumns, "chain"
	if s.legacy {
		cols, chain = legacySelectColumns, "'default'"
	}
	var b strings.Builder
	args := make([]any, 0, len(q.Wallets)+8)
	b.WriteString("SELECT " + cols + " FROM mint_log WHERE requester_wallet IN (")
	for i, w := range q.Wallets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
		args = append(args, w)
	}
	b.WriteString(")")
	if !q.Since.IsZero() {
		b.WriteString(" AND minted_at >= ?")
		args = append(args, q.Since.Unix())
	}
	if !q.Until.IsZero() {
		b.WriteString(" AND minted_at < ?")
		args = append(args, q.Until.Unix())
	}
	if q.Outcome != "" {
		b.WriteString(" AND outcome = ?")
		args = append(args, q.Outcome)
	}
	if q.JWT != nil {
		if *q.JWT {
			b.WriteString(" AND requested_role = ?")
		} else {
			b.WriteString(" AND requested_role <> ?")
		}
		args = append(args, RoleOIDCJWT)
	}
	if c := q.Before; c != nil {
		b.WriteString(" AND (minted_at < ? OR (minted_at = ? AND (" + chain + " < ? OR (" + chain + " = ? AND id < ?))))")
		args = append(args, c.Time, c.Time, c.Chain, c.Chain, c.ID)
	}
	if s.legacy {
		b.WriteString(" ORDER BY minted_at DESC, id DESC LIMIT ?") // one chain
	} else {
		b.WriteString(" ORDER BY minted_at DESC, chain DESC, id DESC LIMIT ?")
	}
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, s.rebind(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: query ledger: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("audit: query ledger: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: query ledger: %w", err)
	}
	return out, nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// dialect selects the engine-specific bits of SQL.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// inList returns a subquery yielding the strings of the JSON array bound to
// placeholder ph, for use as "x IN (...)". Binding one JSON text keeps the
// SQL fixed whatever the list's length.
func (d dialect) inList(ph string) string {
	if d == dialectPostgres {
		return "SELECT jsonb_array_elements_text(" + ph + "::jsonb)"
	}
	return "SELECT value FROM json_each(" + ph + ")"
}

// execer is what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries implements store.Queries over a database or a transaction.
type queries struct {
	q     execer
	d     dialect
	outer *Store // the store to open a transaction on; nil inside one
}

var _ store.Queries = (*queries)(nil)

// atomic runs fn in a transaction: the current one, or a new one.
func (q *queries) atomic(ctx context.Context, fn func(q *queries) error) error {
	if q.outer == nil {
		return fn(q)
	}
	return q.outer.Tx(ctx, func(tq store.Queries) error { return fn(tq.(*queries)) })
}

// --- wallets ---

const walletCols = "w.address, w.kind, w.parent, w.login_hash, w.scope_json, w.created_at, w.torn_down"

// InsertWallet stores a new wallet. It returns store.ErrConflict if the
// address or login hash is taken and store.ErrNotFound if the parent does
// not exist.
func (q *queries) InsertWallet(ctx context.Context, w store.Wallet) error {
	scope, err := encodeScope(w.Scope)
	if err != nil {
		return err
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO wallets
		(address, kind, parent, login_hash, scope_json, created_at, torn_down)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		string(w.Address), string(w.Kind), nullable(string(w.Parent)), nullable(w.LoginHash),
		scope, toMS(w.CreatedAt), w.TornDown)
	return classify("insert wallet", err)
}

// Wallet returns the wallet, tombstoned or not, or store.ErrNotFound.
func (q *queries) Wallet(ctx context.Context, addr agentkeys.Wallet) (store.Wallet, error) {
	row := q.q.QueryRowContext(ctx, `SELECT `+walletCols+` FROM wallets w WHERE w.address = $1`, string(addr))
	w, err := scanWallet(row)
	return w, classify("get wallet", err)
}

// WalletByLogin returns the wallet with the login hash or store.ErrNotFound.
func (q *queries) WalletByLogin(ctx context.Context, loginHash string) (store.Wallet, error) {
	if loginHash == "" {
		return store.Wallet{}, fmt.Errorf("sqlstore: get wallet by login: %w", store.ErrNotFound)
	}
	row := q.q.QueryRowContext(ctx, `SELECT `+walletCols+` FROM wallets w WHERE w.login_hash = $1`, loginHash)
	w, err := scanWallet(row)
	return w, classify("get wallet by login", err)
}

// Lineage returns addr followed by its ancestors, nearest first, or
// store.ErrNotFound if addr does not exist.
func (q *queries) Lineage(ctx context.Context, addr agentkeys.Wallet) ([]store.Wallet, error) {
	out, err := queryList(ctx, q.q, "lineage", scanWallet, `WITH RECURSIVE lineage (address, depth) AS (
			SELECT address, 0 FROM wallets WHERE address = $1
			UNION ALL
			SELECT p.parent, l.depth + 1 FROM wallets p JOIN lineage l ON p.address = l.address
			WHERE p.parent IS NOT NULL
		)
		SELECT `+walletCols+` FROM lineage l JOIN wallets w ON w.address = l.address
		ORDER BY l.depth`, string(addr))
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sqlstore: lineage: %w", store.ErrNotFound)
	}
	return out, nil
}

// subtreeCTE defines subtree(address, depth): the wallet bound to $1 and its
// descendants.
const subtreeCTE = `WITH RECURSIVE subtree (address, depth) AS (
		SELECT address, 0 FROM wallets WHERE address = $1
		UNION ALL
		SELECT c.address, s.depth + 1 FROM wallets c JOIN subtree s ON c.parent = s.address
	)`

// Subtree returns addr and all its descendants (addr first, then by depth
// and address), or store.ErrNotFound if addr does not exist.
func (q *queries) Subtree(ctx context.Context, addr agentkeys.Wallet) ([]agentkeys.Wallet, error) {
	out, err := queryList(ctx, q.q, "subtree", func(sc scanner) (agentkeys.Wallet, error) {
		var a string
		err := sc.Scan(&a)
		return agentkeys.Wallet(a), err
	}, subtreeCTE+` SELECT address FROM subtree ORDER BY depth, address`, string(addr))
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sqlstore: subtree: %w", store.ErrNotFound)
	}
	return out, nil
}

// SetScope replaces the wallet's scope (nil = unrestricted) or returns
// store.ErrNotFound.
func (q *queries) SetScope(ctx context.Context, addr agentkeys.Wallet, scope *agentkeys.Scope) error {
	enc, err := encodeScope(scope)
	if err != nil {
		return err
	}
	res, err := q.q.ExecContext(ctx, `UPDATE wallets SET scope_json = $1 WHERE address = $2`, enc, string(addr))
	return updatedOne("set scope", res, err)
}

// TombstoneWallets marks the wallets torn down. Unknown addresses are
// ignored.
func (q *queries) TombstoneWallets(ctx context.Context, addrs []agentkeys.Wallet) error {
	if len(addrs) == 0 {
		return nil
	}
	_, err := q.q.ExecContext(ctx, `UPDATE wallets SET torn_down = TRUE
		WHERE address IN (`+q.d.inList("$1")+`)`, walletList(addrs))
	return classify("tombstone wallets", err)
}

func scanWallet(sc scanner) (store.Wallet, error) {
	var (
		w                        store.Wallet
		addr, kind               string
		parent, login, scopeJSON sql.NullString
		created                  int64
	)
	if err := sc.Scan(&addr, &kind, &parent, &login, &scopeJSON, &created, &w.TornDown); err != nil {
		return store.Wallet{}, err
	}
	w.Address = agentkeys.Wallet(addr)
	w.Kind = store.Kind(kind)
	w.Parent = agentkeys.Wallet(parent.String)
	w.LoginHash = login.String
	w.CreatedAt = fromMS(created)
	if scopeJSON.Valid {
		w.Scope = new(agentkeys.Scope)
		if err := json.Unmarshal([]byte(scopeJSON.String), w.Scope); err != nil {
			return store.Wallet{}, fmt.Errorf("decode scope: %w", err)
		}
	}
	return w, nil
}

// encodeScope returns the scope's JSON, or nil (SQL NULL) for no scope.
func encodeScope(s *agentkeys.Scope) (any, error) {
	if s == nil {
		return nil, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: encode scope: %w", err)
	}
	return string(b), nil
}

// --- sessions ---

// InsertSession stores a new session. It returns store.ErrConflict if the
// hash exists and store.ErrNotFound if the wallet does not.
func (q *queries) InsertSession(ctx context.Context, s store.Session) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO sessions
		(token_hash, wallet, parent_hash, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		string(s.TokenHash), string(s.Wallet), nullable(string(s.ParentHash)),
		toMS(s.CreatedAt), toMS(s.ExpiresAt), nullableMS(s.RevokedAt))
	return classify("insert session", err)
}

// Session returns the session, revoked or expired or not, or
// store.ErrNotFound.
func (q *queries) Session(ctx context.Context, hash agentkeys.TokenHash) (store.Session, error) {
	var (
		s                store.Session
		tokenHash, owner string
		parent           sql.NullString
		created, expires int64
		revoked          sql.NullInt64
	)
	err := q.q.QueryRowContext(ctx, `SELECT token_hash, wallet, parent_hash, created_at, expires_at, revoked_at
		FROM sessions WHERE token_hash = $1`, string(hash)).
		Scan(&tokenHash, &owner, &parent, &created, &expires, &revoked)
	if err != nil {
		return store.Session{}, classify("get session", err)
	}
	s.TokenHash = agentkeys.TokenHash(tokenHash)
	s.Wallet = agentkeys.Wallet(owner)
	s.ParentHash = agentkeys.TokenHash(parent.String)
	s.CreatedAt = fromMS(created)
	s.ExpiresAt = fromMS(expires)
	if revoked.Valid {
		s.RevokedAt = fromMS(revoked.Int64)
	}
	return s, nil
}

// RevokeSessionTree revokes the session and every session minted from it,
// transitively, and returns how many were not yet revoked. Sessions already
// revoked keep their revocation time but are still descended through.
func (q *queries) RevokeSessionTree(ctx context.Context, hash agentkeys.TokenHash, at time.Time) (int, error) {
	res, err := q.q.ExecContext(ctx, `WITH RECURSIVE tree (token_hash) AS (
			SELECT token_hash FROM sessions WHERE token_hash = $1
			UNION
			SELECT s.token_hash FROM sessions s JOIN tree t ON s.parent_hash = t.token_hash
		)
		UPDATE sessions SET revoked_at = $2
		WHERE token_hash IN (SELECT token_hash FROM tree) AND revoked_at IS NULL`,
		string(hash), toMS(at))
	n, err := affected(res, err)
	return n, classify("revoke session tree", err)
}

// RevokeWalletSessions revokes every not yet revoked session of the wallets
// and returns how many it revoked.
func (q *queries) RevokeWalletSessions(ctx context.Context, addrs []agentkeys.Wallet, at time.Time) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	res, err := q.q.ExecContext(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE wallet IN (`+q.d.inList("$2")+`) AND revoked_at IS NULL`,
		toMS(at), walletList(addrs))
	n, err := affected(res, err)
	return n, classify("revoke wallet sessions", err)
}

// BumpRevocationEpoch increments the single-row revocation epoch and
// returns the new value.
func (q *queries) BumpRevocationEpoch(ctx context.Context) (int64, error) {
	return q.epoch(ctx, "revocation", true)
}

// RevocationEpoch returns the current revocation epoch.
func (q *queries) RevocationEpoch(ctx context.Context) (int64, error) {
	return q.epoch(ctx, "revocation", false)
}

// BumpPairingEpoch increments the single-row pairing epoch and returns the
// new value.
func (q *queries) BumpPairingEpoch(ctx context.Context) (int64, error) {
	return q.epoch(ctx, "pairing", true)
}

// PairingEpoch returns the current pairing epoch.
func (q *queries) PairingEpoch(ctx context.Context) (int64, error) {
	return q.epoch(ctx, "pairing", false)
}

// epoch reads the single-row counter in table <name>_epoch, incremented
// first when bump is set. name is one of the constants above, never input.
func (q *queries) epoch(ctx context.Context, name string, bump bool) (int64, error) {
	query, op := `SELECT epoch FROM `+name+`_epoch WHERE id = 1`, name+" epoch"
	if bump {
		query, op = `UPDATE `+name+`_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch`, "bump "+op
	}
	var n int64
	err := q.q.QueryRowContext(ctx, query).Scan(&n)
	return n, classify(op, err)
}

// DeleteExpiredSessions removes sessions whose expiry is before t and
// returns how many it removed.
func (q *queries) DeleteExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < $1`, toMS(t))
	n, err := affected(res, err)
	return n, classify("delete expired sessions", err)
}

// --- broker tokens ---

// InsertBrokerToken stores a derived token. It returns store.ErrNotFound if
// the parent session does not exist and store.ErrConflict if the hash does.
func (q *queries) InsertBrokerToken(ctx context.Context, t store.BrokerToken) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO broker_tokens
		(token_hash, parent_hash, audience, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`,
		string(t.TokenHash), string(t.ParentHash), t.Audience, toMS(t.CreatedAt), toMS(t.ExpiresAt))
	return classify("insert broker token", err)
}

// BrokerToken returns the derived token, expired or not, or
// store.ErrNotFound.
func (q *queries) BrokerToken(ctx context.Context, hash agentkeys.TokenHash) (store.BrokerToken, error) {
	var (
		t                store.BrokerToken
		tokenHash, ph    string
		created, expires int64
	)
	err := q.q.QueryRowContext(ctx, `SELECT token_hash, parent_hash, audience, created_at, expires_at
		FROM broker_tokens WHERE token_hash = $1`, string(hash)).
		Scan(&tokenHash, &ph, &t.Audience, &created, &expires)
	if err != nil {
		return store.BrokerToken{}, classify("get broker token", err)
	}
	t.TokenHash, t.ParentHash = agentkeys.TokenHash(tokenHash), agentkeys.TokenHash(ph)
	t.CreatedAt, t.ExpiresAt = fromMS(created), fromMS(expires)
	return t, nil
}

// DeleteExpiredBrokerTokens removes derived tokens whose expiry is before t
// and returns how many it removed.
func (q *queries) DeleteExpiredBrokerTokens(ctx context.Context, t time.Time) (int, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM broker_tokens WHERE expires_at < $1`, toMS(t))
	n, err := affected(res, err)
	return n, classify("delete expired broker tokens", err)
}

// --- credentials ---

// PutCredential inserts the credential or replaces its sealed value and
// UpdatedAt, keeping the stored CreatedAt. It returns store.ErrNotFound if
// the wallet does not exist.
func (q *queries) PutCredential(ctx context.Context, c store.Credential) error {
	sealed := c.Sealed
	if sealed == nil {
		sealed = []byte{} // the column is NOT NULL
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO credentials (wallet, service, sealed, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (wallet, service) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
		string(c.Wallet), c.Service, sealed, toMS(c.CreatedAt), toMS(c.UpdatedAt))
	return classify("put credential", err)
}

// Credential returns the wallet's credential for service or
// store.ErrNotFound.
func (q *queries) Credential(ctx context.Context, addr agentkeys.Wallet, service string) (store.Credential, error) {
	c := store.Credential{Wallet: addr, Service: service}
	var created, updated int64
	err := q.q.QueryRowContext(ctx, `SELECT sealed, created_at, updated_at FROM credentials
		WHERE wallet = $1 AND service = $2`, string(addr), service).
		Scan(&c.Sealed, &created, &updated)
	if err != nil {
		return store.Credential{}, classify("get credential", err)
	}
	c.CreatedAt = fromMS(created)
	c.UpdatedAt = fromMS(updated)
	return c, nil
}

// Services lists the wallet's credential services in ascending byte order.
func (q *queries) Services(ctx context.Context, addr agentkeys.Wallet) ([]string, error) {
	return queryList(ctx, q.q, "list services", func(sc scanner) (string, error) {
		var s string
		err := sc.Scan(&s)
		return s, err
	}, `SELECT service FROM credentials WHERE wallet = $1 ORDER BY service`, string(addr))
}

// Credentials returns the wallet's credentials in ascending byte order of
// service.
func (q *queries) Credentials(ctx context.Context, addr agentkeys.Wallet) ([]store.Credential, error) {
	return queryList(ctx, q.q, "list credentials", func(sc scanner) (store.Credential, error) {
		c := store.Credential{Wallet: addr}
		var created, updated int64
		err := sc.Scan(&c.Service, &c.Sealed, &created, &updated)
		c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
		return c, err
	}, `SELECT service, sealed, created_at, updated_at FROM credentials
		WHERE wallet = $1 ORDER BY service`, string(addr))
}

// DeleteWalletData removes the credentials, identity links, inboxes and
// inbox messages of the wallets, all or nothing, and returns how many
// credentials it removed.
func (q *queries) DeleteWalletData(ctx context.Context, addrs []agentkeys.Wallet) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	list, in := walletList(addrs), q.d.inList("$1")
	var n int
	err := q.atomic(ctx, func(q *queries) error {
		for _, stmt := range []string{
			`DELETE FROM inbox_messages WHERE address IN (SELECT address FROM inboxes WHERE wallet IN (` + in + `))`,
			`DELETE FROM inboxes WHERE wallet IN (` + in + `)`,
			`DELETE FROM identity_links WHERE wallet IN (` + in + `)`,
			`DELETE FROM agent_names WHERE wallet IN (` + in + `)`,
		} {
			if _, err := q.q.ExecContext(ctx, stmt, list); err != nil {
				return err
			}
		}
		var err error
		n, err = affected(q.q.ExecContext(ctx, `DELETE FROM credentials WHERE wallet IN (`+in+`)`, list))
		return err
	})
	if err != nil {
		return 0, classify("delete wallet data", err)
	}
	return n, nil
}

// --- audit ---

// AppendAudit stores e (its ID is ignored) and returns the new row's id.
func (q *queries) AppendAudit(ctx context.Context, e agentkeys.AuditEvent) (int64, error) {
	var id int64
	err := q.q.QueryRowContext(ctx, `INSERT INTO audit_log
		(ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		toMS(e.Time), string(e.Owner), string(e.Agent), e.Service, e.Action, e.Result, e.Detail, e.ClientIP).Scan(&id)
	if err != nil {
		return 0, classify("append audit", err)
	}
	return id, nil
}

// AppendAudits stores es in one multi-row INSERT (ids in order).
func (q *queries) AppendAudits(ctx context.Context, es []agentkeys.AuditEvent) error {
	if len(es) == 0 {
		return nil
	}
	var sb strings.Builder
	sb.WriteString(`INSERT INTO audit_log (ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip) VALUES `)
	args := make([]any, 0, 8*len(es))
	for i, e := range es {
		if i > 0 {
			sb.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8)
		args = append(args, toMS(e.Time), string(e.Owner), string(e.Agent), e.Service, e.Action, e.Result, e.Detail, e.ClientIP)
	}
	if _, err := uncached(q.q).ExecContext(ctx, sb.String(), args...); err != nil {
		return classify("append audits", err)
	}
	return nil
}

// QueryAudit returns the rows visible to q.Viewer that match the filters,
// newest (highest id) first.
func (q *queries) QueryAudit(ctx context.Context, aq store.AuditQuery) ([]agentkeys.AuditEvent, error) {
	args := []any{string(aq.Viewer)}
	var where []string
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if aq.Owner != "" {
		add("owner_wallet = $%d", string(aq.Owner))
	}
	if aq.Agent != "" {
		add("agent_wallet = $%d", string(aq.Agent))
	}
	if aq.Service != "" {
		add("service = $%d", aq.Service)
	}
	if aq.Action != "" {
		add("action = $%d", aq.Action)
	}
	if aq.Result != "" {
		add("result = $%d", aq.Result)
	}
	if !aq.Since.IsZero() {
		add("ts >= $%d", toMS(aq.Since))
	}
	if !aq.Until.IsZero() {
		add("ts < $%d", toMS(aq.Until))
	}
	if aq.BeforeID > 0 {
		add("id < $%d", aq.BeforeID)
	}
	limit := aq.Limit
	if limit <= 0 {
		limit = store.DefaultAuditLimit
	}
	limit = min(limit, store.MaxAuditLimit)
	args = append(args, limit)
	lim := fmt.Sprintf("$%d", len(args))
	var query string
	unfiltered := aq.Owner == "" && aq.Agent == "" && aq.Service == "" && aq.Action == "" && aq.Result == "" &&
		aq.Since.IsZero() && aq.Until.IsZero()
	if q.d == dialectPostgres && unfiltered {
		// Per wallet of the subtree, the newest rows by owner and by agent
		// (backward index scans on (owner_wallet, id) and (agent_wallet,
		// id)); the page is the newest of those. Its cost follows the
		// subtree's size and the page's, not the log's. (With filters the
		// planner prefers bitmap scans here, which are slower: those keep
		// the plain form.)
		filters := ""
		for _, w := range where {
			filters += " AND " + w
		}
		const cols = "id, ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip"
		newest := func(col string) string {
			return `SELECT x.* FROM subtree s, LATERAL (SELECT ` + cols + ` FROM audit_log WHERE ` + col + ` = s.address` + filters +
				` ORDER BY id DESC LIMIT ` + lim + `) x`
		}
		// UNION (not ALL) drops a row found both by owner and by agent.
		query = subtreeCTE + ` SELECT ` + cols + ` FROM (` + newest("owner_wallet") + ` UNION ` + newest("agent_wallet") + `) u
			ORDER BY id DESC LIMIT ` + lim
	} else {
		where = append([]string{`(owner_wallet IN (SELECT address FROM subtree) OR agent_wallet IN (SELECT address FROM subtree))`}, where...)
		query = subtreeCTE + ` SELECT id, ts, owner_wallet, agent_wallet, service, action, result, detail, client_ip
			FROM audit_log WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ` + lim
	}

	return queryList(ctx, q.q, "query audit", func(sc scanner) (agentkeys.AuditEvent, error) {
		var (
			e             agentkeys.AuditEvent
			ts            int64
			owner, target string
		)
		err := sc.Scan(&e.ID, &ts, &owner, &target, &e.Service, &e.Action, &e.Result, &e.Detail, &e.ClientIP)
		e.Time, e.Owner, e.Agent = fromMS(ts), agentkeys.Wallet(owner), agentkeys.Wallet(target)
		return e, err
	}, query, args...)
}

// --- helpers ---

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// queryList runs query and scans each row with scan, in order: an empty,
// non-nil list when there are none. Errors name op.
func queryList[T any](ctx context.Context, q execer, op string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, classify(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// toMS and fromMS convert between times and stored unix milliseconds.
// The zero time round-trips.
func toMS(t time.Time) int64 { return t.UnixMilli() }

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// nullableMS stores the zero time as NULL.
func nullableMS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return toMS(t)
}

// nullable stores "" as NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// walletList encodes addresses as a JSON array for dialect.inList.
func walletList(addrs []agentkeys.Wallet) string {
	b, _ := json.Marshal(addrs) // []string cannot fail to encode
	return string(b)
}

// affected returns the rows a statement changed.
func affected(res sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

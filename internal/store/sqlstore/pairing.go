package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// Zero values round-trip: optional wallets ("" <-> NULL), times (zero <->
// NULL) and byte strings (nil <-> NULL, empty <-> empty) are nullable
// columns; required byte strings are stored empty when nil and read back
// nil when empty.

// defaultInboxLimit is the page size of InboxMessages when limit <= 0.
const defaultInboxLimit = 100

// --- auth requests ---

const authRequestCols = `id, pair_code, type, details, child_pubkey, parent_wallet,
	identity_type, identity_value, otp_hash, await_hash, status, failed_attempts,
	approver_wallet, result_wallet, sealed_session, created_at, expires_at, decided_at,
	box_pubkey, signature`

// InsertAuthRequest stores a new request. It returns store.ErrConflict if
// the id or the pair code is taken.
func (q *queries) InsertAuthRequest(ctx context.Context, r store.AuthRequest) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO auth_requests (`+authRequestCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		r.ID, r.PairCode, r.Type, requiredBytes(r.Details), requiredBytes(r.ChildPubkey),
		nullable(string(r.ParentWallet)), r.IdentityType, r.IdentityValue, r.OTPHash,
		string(r.AwaitHash), string(r.Status), r.FailedAttempts,
		nullable(string(r.ApproverWallet)), nullable(string(r.ResultWallet)),
		optionalBytes(r.SealedSession), toMS(r.CreatedAt), toMS(r.ExpiresAt), nullableMS(r.DecidedAt),
		optionalBytes(r.BoxPubkey), optionalBytes(r.Signature))
	return classify("insert auth request", err)
}

// AuthRequest returns the request with the id or store.ErrNotFound.
func (q *queries) AuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	row := q.q.QueryRowContext(ctx, `SELECT `+authRequestCols+` FROM auth_requests WHERE id = $1`, id)
	r, err := scanAuthRequest(row)
	return r, classify("get auth request", err)
}

// AuthRequestByPairCode returns the request with the pair code or
// store.ErrNotFound.
func (q *queries) AuthRequestByPairCode(ctx context.Context, code string) (store.AuthRequest, error) {
	row := q.q.QueryRowContext(ctx, `SELECT `+authRequestCols+` FROM auth_requests WHERE pair_code = $1`, code)
	r, err := scanAuthRequest(row)
	return r, classify("get auth request by pair code", err)
}

// UpdateAuthRequest rewrites the mutable fields of the request with r.ID,
// or returns store.ErrNotFound.
func (q *queries) UpdateAuthRequest(ctx context.Context, r store.AuthRequest) error {
	res, err := q.q.ExecContext(ctx, `UPDATE auth_requests SET
		status = $1, failed_attempts = $2, approver_wallet = $3, result_wallet = $4,
		sealed_session = $5, decided_at = $6, signature = $7
		WHERE id = $8`,
		string(r.Status), r.FailedAttempts, nullable(string(r.ApproverWallet)),
		nullable(string(r.ResultWallet)), optionalBytes(r.SealedSession), nullableMS(r.DecidedAt),
		optionalBytes(r.Signature), r.ID)
	return updatedOne("update auth request", res, err)
}

// PendingAuthRequests lists the pending, unexpired requests bound to
// parent, oldest first.
func (q *queries) PendingAuthRequests(ctx context.Context, parent agentkeys.Wallet, now time.Time, limit int) ([]store.AuthRequest, error) {
	return queryList(ctx, q.q, "pending auth requests", scanAuthRequest, `SELECT `+authRequestCols+` FROM auth_requests
		WHERE parent_wallet = $1 AND status = $2 AND expires_at > $3 ORDER BY created_at, id LIMIT $4`,
		string(parent), string(store.AuthPending), toMS(now), limit)
}

// DeleteExpiredAuthRequests removes requests whose expiry is at or before t
// and returns how many it removed.
func (q *queries) DeleteExpiredAuthRequests(ctx context.Context, t time.Time) (int, error) {
	n, err := affected(q.q.ExecContext(ctx, `DELETE FROM auth_requests WHERE expires_at <= $1`, toMS(t)))
	return n, classify("delete expired auth requests", err)
}

func scanAuthRequest(sc scanner) (store.AuthRequest, error) {
	var (
		r                        store.AuthRequest
		awaitHash, status        string
		parent, approver, result sql.NullString
		sealed, box, sig         sql.Null[[]byte]
		created, expires         int64
		decided                  sql.NullInt64
		details, childPubkey     []byte
	)
	err := sc.Scan(&r.ID, &r.PairCode, &r.Type, &details, &childPubkey, &parent,
		&r.IdentityType, &r.IdentityValue, &r.OTPHash, &awaitHash, &status, &r.FailedAttempts,
		&approver, &result, &sealed, &created, &expires, &decided, &box, &sig)
	if err != nil {
		return store.AuthRequest{}, err
	}
	r.Details = fromRequiredBytes(details)
	r.ChildPubkey = fromRequiredBytes(childPubkey)
	r.ParentWallet = agentkeys.Wallet(parent.String)
	r.AwaitHash = agentkeys.TokenHash(awaitHash)
	r.Status = store.AuthRequestStatus(status)
	r.ApproverWallet = agentkeys.Wallet(approver.String)
	r.ResultWallet = agentkeys.Wallet(result.String)
	r.SealedSession = fromOptionalBytes(sealed)
	r.BoxPubkey = fromOptionalBytes(box)
	r.Signature = fromOptionalBytes(sig)
	r.CreatedAt = fromMS(created)
	r.ExpiresAt = fromMS(expires)
	if decided.Valid {
		r.DecidedAt = fromMS(decided.Int64)
	}
	return r, nil
}

// --- identity links ---

// PutIdentityLink inserts the link or, if l.Wallet already holds (l.Type,
// l.Value), sets its CreatedAt to l.CreatedAt. It returns store.ErrConflict
// if another wallet holds the name and store.ErrNotFound if l.Wallet does
// not exist.
func (q *queries) PutIdentityLink(ctx context.Context, l store.IdentityLink) error {
	// The conditional upsert changes no row when another wallet holds the
	// name, in one statement, so it needs no transaction.
	res, err := q.q.ExecContext(ctx, `INSERT INTO identity_links (wallet, identity_type, identity_value, created_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (identity_type, identity_value) DO UPDATE SET created_at = excluded.created_at
		WHERE identity_links.wallet = excluded.wallet`,
		string(l.Wallet), l.Type, l.Value, toMS(l.CreatedAt))
	n, err := affected(res, err)
	if err != nil {
		return classify("put identity link", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: put identity link: held by another wallet: %w", store.ErrConflict)
	}
	return nil
}

// ResolveIdentity returns the link for (typ, value) or store.ErrNotFound.
func (q *queries) ResolveIdentity(ctx context.Context, typ, value string) (store.IdentityLink, error) {
	l := store.IdentityLink{Type: typ, Value: value}
	var (
		wallet  string
		created int64
	)
	err := q.q.QueryRowContext(ctx, `SELECT wallet, created_at FROM identity_links
		WHERE identity_type = $1 AND identity_value = $2`, typ, value).Scan(&wallet, &created)
	if err != nil {
		return store.IdentityLink{}, classify("resolve identity", err)
	}
	l.Wallet = agentkeys.Wallet(wallet)
	l.CreatedAt = fromMS(created)
	return l, nil
}

// IdentityLinks lists the wallet's links, oldest first (ties by type, then
// value). An unknown wallet has none.
func (q *queries) IdentityLinks(ctx context.Context, w agentkeys.Wallet) ([]store.IdentityLink, error) {
	return queryList(ctx, q.q, "list identity links", func(sc scanner) (store.IdentityLink, error) {
		l := store.IdentityLink{Wallet: w}
		var created int64
		err := sc.Scan(&l.Type, &l.Value, &created)
		l.CreatedAt = fromMS(created)
		return l, err
	}, `SELECT identity_type, identity_value, created_at FROM identity_links
		WHERE wallet = $1 ORDER BY created_at, identity_type, identity_value`, string(w))
}

// --- rendezvous ---

const rendezvousCols = `pair_code, token_hash, daemon_pubkey, payload, delivered, consumed, created_at, expires_at`

// InsertRendezvous stores a new slot. It returns store.ErrConflict if the
// pair code or the token hash is taken.
func (q *queries) InsertRendezvous(ctx context.Context, r store.Rendezvous) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO rendezvous (`+rendezvousCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.PairCode, string(r.TokenHash), requiredBytes(r.DaemonPubkey), optionalBytes(r.Payload),
		r.Delivered, r.Consumed, toMS(r.CreatedAt), toMS(r.ExpiresAt))
	return classify("insert rendezvous", err)
}

// Rendezvous returns the slot with the pair code or store.ErrNotFound.
func (q *queries) Rendezvous(ctx context.Context, pairCode string) (store.Rendezvous, error) {
	row := q.q.QueryRowContext(ctx, `SELECT `+rendezvousCols+` FROM rendezvous WHERE pair_code = $1`, pairCode)
	r, err := scanRendezvous(row)
	return r, classify("get rendezvous", err)
}

// RendezvousByToken returns the slot registered with the token hash or
// store.ErrNotFound.
func (q *queries) RendezvousByToken(ctx context.Context, hash agentkeys.TokenHash) (store.Rendezvous, error) {
	row := q.q.QueryRowContext(ctx, `SELECT `+rendezvousCols+` FROM rendezvous WHERE token_hash = $1`, string(hash))
	r, err := scanRendezvous(row)
	return r, classify("get rendezvous by token", err)
}

// UpdateRendezvous rewrites Payload, Delivered and Consumed of the slot
// with r.PairCode, or returns store.ErrNotFound.
func (q *queries) UpdateRendezvous(ctx context.Context, r store.Rendezvous) error {
	res, err := q.q.ExecContext(ctx, `UPDATE rendezvous SET payload = $1, delivered = $2, consumed = $3
		WHERE pair_code = $4`, optionalBytes(r.Payload), r.Delivered, r.Consumed, r.PairCode)
	return updatedOne("update rendezvous", res, err)
}

// DeleteExpiredRendezvous removes slots whose expiry is at or before t and
// returns how many it removed.
func (q *queries) DeleteExpiredRendezvous(ctx context.Context, t time.Time) (int, error) {
	n, err := affected(q.q.ExecContext(ctx, `DELETE FROM rendezvous WHERE expires_at <= $1`, toMS(t)))
	return n, classify("delete expired rendezvous", err)
}

func scanRendezvous(sc scanner) (store.Rendezvous, error) {
	var (
		r                store.Rendezvous
		tokenHash        string
		pubkey           []byte
		payload          sql.Null[[]byte]
		created, expires int64
	)
	err := sc.Scan(&r.PairCode, &tokenHash, &pubkey, &payload, &r.Delivered, &r.Consumed, &created, &expires)
	if err != nil {
		return store.Rendezvous{}, err
	}
	r.TokenHash = agentkeys.TokenHash(tokenHash)
	r.DaemonPubkey = fromRequiredBytes(pubkey)
	r.Payload = fromOptionalBytes(payload)
	r.CreatedAt = fromMS(created)
	r.ExpiresAt = fromMS(expires)
	return r, nil
}

// --- mock inboxes ---

// InsertInbox stores a new inbox. It returns store.ErrConflict if the
// address is taken and store.ErrNotFound if the wallet does not exist.
func (q *queries) InsertInbox(ctx context.Context, in store.Inbox) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO inboxes (address, wallet, created_at) VALUES ($1, $2, $3)`,
		in.Address, string(in.Wallet), toMS(in.CreatedAt))
	return classify("insert inbox", err)
}

// Inbox returns the inbox with the address or store.ErrNotFound.
func (q *queries) Inbox(ctx context.Context, address string) (store.Inbox, error) {
	in := store.Inbox{Address: address}
	var (
		wallet  string
		created int64
	)
	err := q.q.QueryRowContext(ctx, `SELECT wallet, created_at FROM inboxes WHERE address = $1`, address).
		Scan(&wallet, &created)
	if err != nil {
		return store.Inbox{}, classify("get inbox", err)
	}
	in.Wallet = agentkeys.Wallet(wallet)
	in.CreatedAt = fromMS(created)
	return in, nil
}

// Inboxes lists the wallet's inboxes, oldest first (ties by address). An
// unknown wallet has none.
func (q *queries) Inboxes(ctx context.Context, w agentkeys.Wallet) ([]store.Inbox, error) {
	return queryList(ctx, q.q, "list inboxes", func(sc scanner) (store.Inbox, error) {
		in := store.Inbox{Wallet: w}
		var created int64
		err := sc.Scan(&in.Address, &created)
		in.CreatedAt = fromMS(created)
		return in, err
	}, `SELECT address, created_at FROM inboxes
		WHERE wallet = $1 ORDER BY created_at, address`, string(w))
}

// InsertInboxMessage stores a message. It returns store.ErrConflict if the
// id is taken and store.ErrNotFound if the inbox does not exist.
func (q *queries) InsertInboxMessage(ctx context.Context, m store.InboxMessage) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO inbox_messages (msg_id, address, from_addr, subject, body, received_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		m.ID, m.Address, m.From, m.Subject, m.Body, toMS(m.ReceivedAt))
	return classify("insert inbox message", err)
}

// InboxMessages lists the inbox's messages received at or after since,
// newest first (ties by id, descending), at most limit (<= 0: 100). An
// unknown inbox has none.
func (q *queries) InboxMessages(ctx context.Context, address string, since time.Time, limit int) ([]store.InboxMessage, error) {
	if limit <= 0 {
		limit = defaultInboxLimit
	}
	return queryList(ctx, q.q, "list inbox messages", func(sc scanner) (store.InboxMessage, error) {
		m := store.InboxMessage{Address: address}
		var received int64
		err := sc.Scan(&m.ID, &m.From, &m.Subject, &m.Body, &received)
		m.ReceivedAt = fromMS(received)
		return m, err
	}, `SELECT msg_id, from_addr, subject, body, received_at FROM inbox_messages
		WHERE address = $1 AND received_at >= $2
		ORDER BY received_at DESC, msg_id DESC LIMIT $3`, address, toMS(since), limit)
}

// --- helpers ---

// updatedOne checks that an UPDATE by key matched a row.
func updatedOne(op string, res sql.Result, err error) error {
	n, err := affected(res, err)
	if err != nil {
		return classify(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

// requiredBytes binds b to a NOT NULL column: nil becomes empty.
func requiredBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// fromRequiredBytes reads a NOT NULL byte column: empty becomes nil, so a
// nil value round-trips.
func fromRequiredBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// optionalBytes binds b to a nullable column: nil is NULL, anything else
// (empty included) a value.
func optionalBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// fromOptionalBytes reads a nullable byte column: NULL is nil and a value
// is never nil, even when empty (drivers may hand an empty value as nil).
func fromOptionalBytes(n sql.Null[[]byte]) []byte {
	if !n.Valid {
		return nil
	}
	if n.V == nil {
		return []byte{}
	}
	return n.V
}

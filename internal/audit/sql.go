package audit

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/sqldb"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Goose bookkeeping is kept apart from the backend's, so both may share one
// PostgreSQL database.
const (
	gooseTable  = "broker_audit_goose_version"
	gooseLockID = 0x6b2d61756469746d // "k-auditm"
)

// MaxBatch bounds how many appends share one transaction (group commit).
const MaxBatch = 256

// commitTimeout bounds one group-commit transaction. It is independent of
// any caller's deadline, so one impatient caller cannot abort the batch of
// the others.
const commitTimeout = 15 * time.Second

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: sink closed")

type engine int

const (
	engineSQLite engine = iota
	enginePostgres
)

// SQL is a Sink on SQLite or PostgreSQL. Appends from concurrent callers are
// grouped into one transaction (one fsync / one WAL flush) by a single
// writer goroutine; each caller returns only after its batch committed.
type SQL struct {
	db     *sql.DB
	engine engine

	reqs      chan *appendReq
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

type appendReq struct {
	ctx  context.Context
	rec  Record
	done chan error
}

var _ Sink = (*SQL)(nil)

// Open opens (creating if needed) the audit database named by dsn: a
// postgres:// or postgresql:// URL, or a SQLite file path (optionally
// prefixed with "sqlite:" or "file:"). A new SQLite file and its directory
// are created with modes 0600 and 0700; an existing file readable by group
// or others is refused. SQLite runs in WAL mode with synchronous=FULL, so
// every commit is durable before Append returns, and waits up to 10 s for
// another process (audit verify, a second broker on the same file).
func Open(ctx context.Context, dsn string) (*SQL, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("audit: migrations: %w", err)
	}
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{
		Name:       "audit",
		Migrations: sub,
		GooseTable: gooseTable, LockID: gooseLockID,
		SQLiteMaxConns: 4, PostgresMaxConns: 8,
		BusyTimeout: 10 * time.Second,
		CreateDir:   true, PrivateFile: true,
	})
	if err != nil {
		return nil, err
	}
	e := engineSQLite
	if db.Engine == sqldb.Postgres {
		e = enginePostgres
	}
	s := &SQL{
		db:      db.DB,
		engine:  e,
		reqs:    make(chan *appendReq, MaxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool { return sqldb.IsPostgres(dsn) }

// Append implements Sink. It returns when the record's transaction has
// committed, or with ctx's error if ctx ends first (the record may then
// still be committed: fail-closed callers treat it as not written).
func (s *SQL) Append(ctx context.Context, r Record) error {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	req := &appendReq{ctx: ctx, rec: normalize(r), done: make(chan error, 1)}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		// The writer stopped; it may have answered just before.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// writer is the single goroutine that commits batches.
func (s *SQL) writer() {
	defer close(s.done)
	batch := make([]*appendReq, 0, MaxBatch)
	for {
		select {
		case <-s.closing:
			s.failPending(ErrClosed)
			return
		case first := <-s.reqs:
			batch = append(batch[:0], first)
		fill:
			for len(batch) < MaxBatch {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			s.commit(batch)
		}
	}
}

func (s *SQL) failPending(err error) {
	for {
		select {
		case r := <-s.reqs:
			r.done <- err
		default:
			return
		}
	}
}

func (s *SQL) commit(batch []*appendReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // caller gave up before its row was written
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := s.appendTx(ctx, live)
	for _, r := range live {
		r.done <- err
	}
}

func (s *SQL) appendTx(ctx context.Context, batch []*appendReq) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	head := "SELECT last_id, last_hash FROM mint_log_head WHERE singleton = 1"
	if s.engine == enginePostgres {
		head += " FOR UPDATE" // replicas take turns extending the one chain
	}
	var lastID int64
	var lastHash string
	if err := tx.QueryRowContext(ctx, head).Scan(&lastID, &lastHash); err != nil {
		return fmt.Errorf("audit: read chain head: %w", err)
	}
	insert := s.rebind(`INSERT INTO mint_log (id, minted_at, requester_token_hash, requester_wallet,
		requested_role, session_duration_seconds, sts_session_name, outcome, outcome_detail,
		client_ip, request_id, credential_id, credential_expires_at, prev_hash, row_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	for _, req := range batch {
		r := req.rec
		r.ID = lastID + 1
		r.PrevHash = lastHash
		r.RowHash = ComputeHash(r, lastHash)
		var detail any
		if r.Detail != "" {
			detail = r.Detail
		}
		if _, err := tx.ExecContext(ctx, insert, r.ID, r.Time.Unix(), r.RequesterTokenHash, r.RequesterWallet,
			r.RequestedRole, r.DurationSeconds, r.STSSessionName, r.Outcome, detail,
			r.ClientIP, r.RequestID, r.CredentialID, r.CredentialExpiresAt, r.PrevHash, r.RowHash); err != nil {
			return fmt.Errorf("audit: insert: %w", err)
		}
		lastID, lastHash = r.ID, r.RowHash
	}
	if _, err := tx.ExecContext(ctx, s.rebind("UPDATE mint_log_head SET last_id = ?, last_hash = ? WHERE singleton = 1"), lastID, lastHash); err != nil {
		return fmt.Errorf("audit: update chain head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit: commit: %w", err)
	}
	return nil
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (s *SQL) rebind(q string) string {
	if s.engine != enginePostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

const selectColumns = `id, minted_at, requester_token_hash, requester_wallet, requested_role,
	session_duration_seconds, sts_session_name, outcome, COALESCE(outcome_detail, ''),
	client_ip, request_id, credential_id, credential_expires_at, prev_hash, row_hash`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (Record, error) {
	var r Record
	var t int64
	err := sc.Scan(&r.ID, &t, &r.RequesterTokenHash, &r.RequesterWallet, &r.RequestedRole,
		&r.DurationSeconds, &r.STSSessionName, &r.Outcome, &r.Detail,
		&r.ClientIP, &r.RequestID, &r.CredentialID, &r.CredentialExpiresAt, &r.PrevHash, &r.RowHash)
	r.Time = time.Unix(t, 0).UTC()
	return r, err
}

// Verify implements Sink. It reads one consistent snapshot of the ledger.
func (s *SQL) Verify(ctx context.Context) (VerifyReport, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.engine == enginePostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("audit: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT "+selectColumns+" FROM mint_log ORDER BY id")
	if err != nil {
		return VerifyReport{}, fmt.Errorf("audit: read ledger: %w", err)
	}
	defer rows.Close()
	rep := VerifyReport{LastHash: GenesisHash}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return rep, fmt.Errorf("audit: read ledger: %w", err)
		}
		if cerr := checkLink(rep.LastID, rep.LastHash, r); cerr != nil {
			return rep, cerr
		}
		rep.Rows++
		rep.LastID, rep.LastHash = r.ID, r.RowHash
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit: read ledger: %w", err)
	}
	var headID int64
	var headHash string
	if err := tx.QueryRowContext(ctx, "SELECT last_id, last_hash FROM mint_log_head WHERE singleton = 1").Scan(&headID, &headHash); err != nil {
		return rep, fmt.Errorf("audit: read chain head: %w", err)
	}
	switch {
	case headID > rep.LastID:
		return rep, &ChainError{ID: rep.LastID + 1, Reason: fmt.Sprintf("rows %d to %d are missing (deleted from the end of the ledger)", rep.LastID+1, headID)}
	case headID != rep.LastID || headHash != rep.LastHash:
		return rep, &ChainError{ID: 0, Reason: fmt.Sprintf("chain head (row %d) does not match the last row (%d)", headID, rep.LastID)}
	}
	return rep, nil
}

// checkLink checks r against the row before it (prevID, prevHash).
func checkLink(prevID int64, prevHash string, r Record) *ChainError {
	switch {
	case r.ID <= prevID:
		return &ChainError{ID: r.ID, Reason: "row out of order"}
	case r.ID > prevID+1:
		if prevID+1 == r.ID-1 {
			return &ChainError{ID: r.ID, Reason: fmt.Sprintf("row %d is missing (deleted)", prevID+1)}
		}
		return &ChainError{ID: r.ID, Reason: fmt.Sprintf("rows %d to %d are missing (deleted)", prevID+1, r.ID-1)}
	case r.PrevHash != prevHash:
		return &ChainError{ID: r.ID, Reason: fmt.Sprintf("prev_hash does not match row %d's hash (a row was replaced, reordered, or edited with its hash recomputed)", prevID)}
	case ComputeHash(r, r.PrevHash) != r.RowHash:
		return &ChainError{ID: r.ID, Reason: "row hash mismatch (row edited)"}
	}
	return nil
}

// Last returns the newest record, or false when the ledger is empty.
func (s *SQL) Last(ctx context.Context) (Record, bool, error) {
	r, err := scanRecord(s.db.QueryRowContext(ctx, "SELECT "+selectColumns+" FROM mint_log ORDER BY id DESC LIMIT 1"))
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("audit: read ledger: %w", err)
	}
	return r, true, nil
}

// Count returns the number of records.
func (s *SQL) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mint_log").Scan(&n); err != nil {
		return 0, fmt.Errorf("audit: count: %w", err)
	}
	return n, nil
}

// Ping implements Sink: it checks that the database answers and the ledger
// is readable.
func (s *SQL) Ping(ctx context.Context) error {
	var id int64
	if err := s.db.QueryRowContext(ctx, "SELECT last_id FROM mint_log_head WHERE singleton = 1").Scan(&id); err != nil {
		return fmt.Errorf("audit: ping: %w", err)
	}
	return nil
}

// DB exposes the database handle (for tests and tools).
func (s *SQL) DB() *sql.DB { return s.db }

// Close stops the writer (queued appends fail with ErrClosed; a batch in
// flight finishes) and closes the database.
func (s *SQL) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
	return s.db.Close()
}

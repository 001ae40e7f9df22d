package audit

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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
	db       *sql.DB
	engine   engine
	chain    string
	readOnly bool
	legacy   bool // schema before per-replica chains (read-only opens only)
	opts     Options
	path     string // SQLite file

	reqs      chan *appendReq
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	// Owned by the writer goroutine.
	head   Head // this chain's head as last committed by this sink
	lastCk Head // the newest checkpoint of this chain
	lastCt time.Time

	probeMu sync.Mutex
	probeAt time.Time // last successful probe

	reserveMu sync.Mutex
}

type appendReq struct {
	ctx  context.Context
	rec  Record
	done chan error
	// state decides between the caller giving up and the writer committing:
	// the writer claims a request (pending → claimed) once it holds the
	// chain head, just before inserting; a caller whose context ends first
	// abandons it (pending → abandoned) and it is never written. A claimed
	// request's caller waits for the commit, so Append's answer always
	// matches the ledger.
	state atomic.Int32
}

const (
	reqPending int32 = iota
	reqClaimed
	reqAbandoned
)

// claim marks r as about to be written; false if its caller gave up.
func (r *appendReq) claim() bool {
	return r.state.CompareAndSwap(reqPending, reqClaimed) || r.state.Load() == reqClaimed
}

var _ Sink = (*SQL)(nil)

// DecidesAppends implements Decider: an Append error means the record was
// not written and never will be.
func (s *SQL) DecidesAppends() bool { return true }

// Options tune a writable ledger. The zero value appends to DefaultChain
// and writes no checkpoints.
type Options struct {
	// Chain is this writer's chain (default DefaultChain). Give every
	// replica sharing a database its own chain: replicas on one chain take
	// turns holding its head row.
	Chain string
	// Signer signs checkpoints; nil writes none.
	Signer Signer
	// CheckpointEvery and CheckpointInterval: a checkpoint of the chain's
	// head is written after that many new rows, or that long after the
	// previous one if rows were added (defaults 1000 and 1 minute), and on
	// Close.
	CheckpointEvery    int64
	CheckpointInterval time.Duration
	// CheckpointFile, when set, also gets every checkpoint appended as one
	// line of the export format.
	CheckpointFile string
	// ProbeCache is how long a Ping result is reused (default 2 s).
	ProbeCache time.Duration
	// Logger reports checkpoint failures (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Checkpoint defaults.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Minute
	defaultProbeCache         = 2 * time.Second
)

// ErrReadOnly is returned by Append on a ledger opened with OpenReadOnly.
var ErrReadOnly = errors.New("audit: ledger opened read-only")

// Open opens (creating if needed) the audit database named by dsn: a
// postgres:// or postgresql:// URL, or a SQLite file path (optionally
// prefixed with "sqlite:" or "file:"). A new SQLite file and its directory
// are created with modes 0600 and 0700; an existing file readable by group
// or others is refused. SQLite runs in WAL mode with synchronous=FULL, so
// every commit is durable before Append returns, and waits up to 10 s for
// another process (audit verify, a second broker on the same file).
func Open(ctx context.Context, dsn string) (*SQL, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (*SQL, error) {
	if o.Chain == "" {
		o.Chain = DefaultChain
	}
	if !ValidChain(o.Chain) {
		return nil, fmt.Errorf("audit: invalid chain name %q (letters, digits, '.', '_', '-')", o.Chain)
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.ProbeCache <= 0 {
		o.ProbeCache = defaultProbeCache
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("audit: migrations: %w", err)
	}
	var walPages int
	var walLimit int64
	if path, err := sqldb.SQLitePath(dsn); err == nil && !sqldb.IsPostgres(dsn) {
		walPages, walLimit = walBounds(path)
	}
	db, err := sqldb.Open(ctx, dsn, sqldb.Options{
		Name:       "audit",
		Migrations: sub,
		GooseTable: gooseTable, LockID: gooseLockID,
		SQLiteMaxConns: 4, PostgresMaxConns: 8,
		BusyTimeout: 10 * time.Second,
		CreateDir:   true, PrivateFile: true,
		WALAutoCheckpoint: walPages, JournalSizeLimit: walLimit,
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
		chain:   o.Chain,
		opts:    o,
		reqs:    make(chan *appendReq, MaxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if e == engineSQLite {
		s.path, _ = sqldb.SQLitePath(dsn)
		// Shrink a WAL left behind (a crash, or a disk that filled up);
		// on a full volume the reserve makes room for it.
		if err := s.truncateWAL(); err != nil && isDiskFull(err) {
			s.releaseReserve()
		}
		s.ensureReserve()
	}
	if err := s.initChain(ctx); err != nil {
		db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

// initChain creates this chain's head row if needed and loads the newest
// checkpoint.
func (s *SQL) initChain(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, s.rebind("INSERT INTO mint_log_chains (chain, last_id, last_hash) VALUES (?, 0, ?) ON CONFLICT (chain) DO NOTHING"),
		s.chain, GenesisHash); err != nil {
		return fmt.Errorf("audit: create chain head: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, s.rebind("SELECT last_id, last_hash FROM mint_log_chains WHERE chain = ?"), s.chain).Scan(&s.head.ID, &s.head.Hash); err != nil {
		return fmt.Errorf("audit: read chain head: %w", err)
	}
	var ct int64
	err := s.db.QueryRowContext(ctx, s.rebind("SELECT id, row_hash, created_at FROM mint_log_checkpoints WHERE chain = ? ORDER BY id DESC LIMIT 1"), s.chain).Scan(&s.lastCk.ID, &s.lastCk.Hash, &ct)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.lastCt = s.opts.Now()
	case err != nil:
		return fmt.Errorf("audit: read checkpoints: %w", err)
	default:
		s.lastCt = time.Unix(ct, 0)
	}
	return nil
}

// Chain names the chain this sink appends to.
func (s *SQL) Chain() string { return s.chain }

// IsPostgres reports whether dsn names a PostgreSQL database.
func IsPostgres(dsn string) bool { return sqldb.IsPostgres(dsn) }

// Append implements Sink and Decider. It returns nil once the record's
// transaction has committed. If ctx ends first it returns ctx's error and
// the record is never written — unless the writer had already claimed it
// for the transaction in progress, in which case Append waits for that
// commit (at most commitTimeout) and reports its result.
func (s *SQL) Append(ctx context.Context, r Record) error {
	if s.readOnly {
		return ErrReadOnly
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Chain = s.chain
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
		if req.state.CompareAndSwap(reqPending, reqAbandoned) {
			return ctx.Err()
		}
		return <-req.done // claimed: the writer answers
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

// writer is the single goroutine that commits batches and checkpoints.
func (s *SQL) writer() {
	defer close(s.done)
	var tick <-chan time.Time
	if s.opts.Signer != nil {
		t := time.NewTicker(min(s.opts.CheckpointInterval, time.Minute))
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*appendReq, 0, MaxBatch)
	for {
		select {
		case <-s.closing:
			s.failPending(ErrClosed)
			s.checkpoint(true)
			return
		case <-tick:
			s.checkpoint(false)
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
		if r.state.Load() == reqAbandoned {
			continue // its caller has returned
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	head, written, err := s.appendTx(ctx, live)
	if err != nil && isDiskFull(err) && s.releaseReserve() {
		head, written, err = s.appendTx(ctx, live) // once, into the space just freed
	}
	if err == nil && written > 0 {
		s.head = head
		// A due checkpoint is stored before the callers are answered, so
		// "Append returned" also means "its checkpoint, if due, exists".
		s.checkpoint(false)
	}
	for _, r := range live {
		if r.state.Load() == reqClaimed {
			r.done <- err
		}
	}
}

// appendTx writes the batch's requests that are still wanted, claiming
// each once the chain head is held, and reports how many it wrote.
func (s *SQL) appendTx(ctx context.Context, batch []*appendReq) (_ Head, written int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Head{}, 0, fmt.Errorf("audit: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	head := "SELECT last_id, last_hash FROM mint_log_chains WHERE chain = ?"
	if s.engine == enginePostgres {
		// Only this chain's head is locked: replicas on other chains
		// never wait for it.
		head += " FOR UPDATE"
	}
	var lastID int64
	var lastHash string
	if err := tx.QueryRowContext(ctx, s.rebind(head), s.chain).Scan(&lastID, &lastHash); err != nil {
		return Head{}, 0, fmt.Errorf("audit: read chain head: %w", err)
	}
	insert := s.rebind(`INSERT INTO mint_log (chain, id, minted_at, requester_token_hash, requester_wallet,
		requested_role, session_duration_seconds, sts_session_name, outcome, outcome_detail,
		client_ip, request_id, credential_id, credential_expires_at, prev_hash, row_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	for _, req := range batch {
		if !req.claim() {
			continue
		}
		written++
		r := req.rec
		r.ID = lastID + 1
		r.PrevHash = lastHash
		r.RowHash = ComputeHash(r, lastHash)
		var detail any
		if r.Detail != "" {
			detail = r.Detail
		}
		if _, err := tx.ExecContext(ctx, insert, r.Chain, r.ID, r.Time.Unix(), r.RequesterTokenHash, r.RequesterWallet,
			r.RequestedRole, r.DurationSeconds, r.STSSessionName, r.Outcome, detail,
			r.ClientIP, r.RequestID, r.CredentialID, r.CredentialExpiresAt, r.PrevHash, r.RowHash); err != nil {
			return Head{}, 0, fmt.Errorf("audit: insert: %w", err)
		}
		lastID, lastHash = r.ID, r.RowHash
	}
	if written == 0 {
		return Head{}, 0, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, s.rebind("UPDATE mint_log_chains SET last_id = ?, last_hash = ? WHERE chain = ?"), lastID, lastHash, s.chain); err != nil {
		return Head{}, 0, fmt.Errorf("audit: update chain head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Head{}, 0, fmt.Errorf("audit: commit: %w", err)
	}
	return Head{ID: lastID, Hash: lastHash}, written, nil
}

// checkpoint signs and stores this chain's head when it is due: after
// CheckpointEvery rows, after CheckpointInterval if rows were added, or
// (force) whenever rows were added. Failures are logged, never fatal: a
// missing checkpoint weakens tamper evidence but loses no row.
func (s *SQL) checkpoint(force bool) {
	if s.opts.Signer == nil || s.head.ID <= s.lastCk.ID {
		return
	}
	now := s.opts.Now()
	if !force && s.head.ID-s.lastCk.ID < s.opts.CheckpointEvery && now.Sub(s.lastCt) < s.opts.CheckpointInterval {
		return
	}
	c, err := NewCheckpoint(s.opts.Signer, s.chain, s.head.ID, s.head.Hash, now)
	if err != nil {
		s.opts.Logger.Error("audit checkpoint not signed", "chain", s.chain, "id", s.head.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO mint_log_checkpoints (chain, id, row_hash, created_at, kid, signature)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chain, id) DO NOTHING`),
		c.Chain, c.ID, c.RowHash, c.Time.Unix(), c.KID, c.Signature); err != nil {
		s.opts.Logger.Error("audit checkpoint not stored", "chain", s.chain, "id", c.ID, "err", err)
		return
	}
	s.lastCk, s.lastCt = s.head, now
	if s.opts.CheckpointFile != "" {
		if err := appendLine(s.opts.CheckpointFile, c.MarshalLine()); err != nil {
			s.opts.Logger.Error("audit checkpoint not exported", "chain", s.chain, "id", c.ID, "path", s.opts.CheckpointFile, "err", err)
		}
	}
}

// appendLine appends b to the file at path (created 0644: checkpoints are
// public) and syncs it.
func appendLine(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

const selectColumns = `chain, id, minted_at, requester_token_hash, requester_wallet, requested_role,
	session_duration_seconds, sts_session_name, outcome, COALESCE(outcome_detail, ''),
	client_ip, request_id, credential_id, credential_expires_at, prev_hash, row_hash`

// legacySelectColumns reads a ledger that predates chain names.
const legacySelectColumns = `'default', id, minted_at, requester_token_hash, requester_wallet, requested_role,
	session_duration_seconds, sts_session_name, outcome, COALESCE(outcome_detail, ''),
	client_ip, request_id, credential_id, credential_expires_at, prev_hash, row_hash`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (Record, error) {
	var r Record
	var t int64
	err := sc.Scan(&r.Chain, &r.ID, &t, &r.RequesterTokenHash, &r.RequesterWallet, &r.RequestedRole,
		&r.DurationSeconds, &r.STSSessionName, &r.Outcome, &r.Detail,
		&r.ClientIP, &r.RequestID, &r.CredentialID, &r.CredentialExpiresAt, &r.PrevHash, &r.RowHash)
	r.Time = time.Unix(t, 0).UTC()
	return r, err
}

// VerifyOptions add checks that catch a chain rewritten consistently by
// someone who can write the database.
type VerifyOptions struct {
	// Checkpoints must each match the chain: the row exists and has the
	// checkpoint's hash. Their signatures are the caller's to check first.
	Checkpoints []Checkpoint
	// Expect lists head hashes that must still be in the chain.
	Expect []Expectation
}

// Verify implements Sink. It reads one consistent snapshot of the ledger.
func (s *SQL) Verify(ctx context.Context) (VerifyReport, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

// VerifyWith walks every chain, checks every link and head, and then the
// checkpoints and expected heads in o.
func (s *SQL) VerifyWith(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.engine == enginePostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("audit: begin: %w", err)
	}
	defer tx.Rollback()

	type key struct {
		chain string
		id    int64
	}
	cks := make(map[key]string, len(o.Checkpoints))
	for _, c := range o.Checkpoints {
		cks[key{c.Chain, c.ID}] = c.RowHash
	}
	ckSeen := make(map[key]bool, len(cks))
	expSeen := make([]bool, len(o.Expect))
	byHash := make(map[string][]int, len(o.Expect))
	for i, e := range o.Expect {
		byHash[e.Hash] = append(byHash[e.Hash], i)
	}

	q := "SELECT " + selectColumns + " FROM mint_log ORDER BY chain, id"
	if s.legacy {
		q = "SELECT " + legacySelectColumns + " FROM mint_log ORDER BY id"
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("audit: read ledger: %w", err)
	}
	defer rows.Close()
	rep := VerifyReport{Heads: map[string]Head{}}
	var chain string
	cur := Head{Hash: GenesisHash}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return rep, fmt.Errorf("audit: read ledger: %w", err)
		}
		if r.Chain != chain || rep.Rows == 0 {
			if rep.Rows > 0 {
				rep.Heads[chain] = cur
			}
			chain, cur = r.Chain, Head{Hash: GenesisHash}
		}
		if cerr := checkLink(cur.ID, cur.Hash, r); cerr != nil {
			cerr.Chain = r.Chain
			return rep, cerr
		}
		k := key{r.Chain, r.ID}
		if want, ok := cks[k]; ok {
			if want != r.RowHash {
				return rep, &ChainError{Chain: r.Chain, ID: r.ID, Reason: "row hash differs from the signed checkpoint of this row (the chain was rewritten)"}
			}
			ckSeen[k] = true
		}
		for _, i := range byHash[r.RowHash] {
			if o.Expect[i].Chain == "" || o.Expect[i].Chain == r.Chain {
				expSeen[i] = true
			}
		}
		rep.Rows++
		cur = Head{ID: r.ID, Hash: r.RowHash}
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("audit: read ledger: %w", err)
	}
	if rep.Rows > 0 {
		rep.Heads[chain] = cur
	}

	heads, err := s.readHeads(ctx, tx)
	if err != nil {
		return rep, err
	}
	for c, h := range heads {
		got, ok := rep.Heads[c]
		if !ok {
			got = Head{Hash: GenesisHash}
		}
		switch {
		case h.ID > got.ID:
			return rep, &ChainError{Chain: c, ID: got.ID + 1, Reason: fmt.Sprintf("rows %d to %d are missing (deleted from the end of the ledger)", got.ID+1, h.ID)}
		case h != got:
			return rep, &ChainError{Chain: c, ID: 0, Reason: fmt.Sprintf("chain head (row %d) does not match the last row (%d)", h.ID, got.ID)}
		}
	}
	for c, got := range rep.Heads {
		if _, ok := heads[c]; !ok {
			return rep, &ChainError{Chain: c, ID: 0, Reason: fmt.Sprintf("rows up to %d exist but the chain has no head row", got.ID)}
		}
	}
	for _, c := range o.Checkpoints {
		if !ckSeen[key{c.Chain, c.ID}] {
			return rep, &ChainError{Chain: c.Chain, ID: c.ID, Reason: fmt.Sprintf("signed checkpoint row %d is missing (the chain was cut or rewritten before it)", c.ID)}
		}
	}
	rep.Checkpoints = len(ckSeen)
	for i, e := range o.Expect {
		if !expSeen[i] {
			return rep, &ChainError{Chain: e.Chain, ID: 0, Reason: fmt.Sprintf("expected head %s is no longer in the chain (rows were removed or rewritten)", e.Hash)}
		}
		rep.Expected++
	}
	if len(rep.Heads) == 1 {
		for _, h := range rep.Heads {
			rep.LastID, rep.LastHash = h.ID, h.Hash
		}
	} else if len(rep.Heads) == 0 {
		rep.LastHash = GenesisHash
	}
	return rep, nil
}

// readHeads returns every chain's head row that has rows.
func (s *SQL) readHeads(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[string]Head, error) {
	query := "SELECT chain, last_id, last_hash FROM mint_log_chains"
	if s.legacy {
		query = "SELECT 'default', last_id, last_hash FROM mint_log_head WHERE singleton = 1"
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("audit: read chain heads: %w", err)
	}
	defer rows.Close()
	heads := map[string]Head{}
	for rows.Next() {
		var c string
		var h Head
		if err := rows.Scan(&c, &h.ID, &h.Hash); err != nil {
			return nil, fmt.Errorf("audit: read chain heads: %w", err)
		}
		if h.ID == 0 && h.Hash == GenesisHash {
			continue // a chain with no rows yet
		}
		heads[c] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read chain heads: %w", err)
	}
	return heads, nil
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

// Checkpoints returns the checkpoints stored in the ledger, oldest first
// per chain.
func (s *SQL) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	if s.legacy {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, "SELECT chain, id, row_hash, created_at, kid, signature FROM mint_log_checkpoints ORDER BY chain, id")
	if err != nil {
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var c Checkpoint
		var t int64
		if err := rows.Scan(&c.Chain, &c.ID, &c.RowHash, &t, &c.KID, &c.Signature); err != nil {
			return nil, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		c.Time = time.Unix(t, 0).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	return out, nil
}

// Last returns the newest record of this sink's chain, or false when the
// chain is empty.
func (s *SQL) Last(ctx context.Context) (Record, bool, error) {
	q := s.rebind("SELECT " + selectColumns + " FROM mint_log WHERE chain = ? ORDER BY id DESC LIMIT 1")
	args := []any{s.chain}
	if s.legacy {
		q, args = "SELECT "+legacySelectColumns+" FROM mint_log ORDER BY id DESC LIMIT 1", nil
	}
	r, err := scanRecord(s.db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("audit: read ledger: %w", err)
	}
	return r, true, nil
}

// Count returns the number of records (all chains).
func (s *SQL) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mint_log").Scan(&n); err != nil {
		return 0, fmt.Errorf("audit: count: %w", err)
	}
	return n, nil
}

// Ping implements Sink: it checks that the ledger can take a write now. It
// commits a row to mint_log_probe (never to the ledger), so a read-only
// file system, a failing disk or a lock held too long fail the probe the
// way they would fail a mint. That write may fit in space SQLite already
// holds while a new ledger row does not, so a SQLite ledger whose volume
// is too full to restore its space reserve also fails. Successes are reused
// for ProbeCache; failures are re-checked on every call.
func (s *SQL) Ping(ctx context.Context) error {
	if s.readOnly {
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mint_log WHERE 1 = 0").Scan(&n); err != nil {
			return fmt.Errorf("audit: ping: %w", err)
		}
		return nil
	}
	s.ensureReserve()
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	now := s.opts.Now()
	if !s.probeAt.IsZero() && now.Sub(s.probeAt) >= 0 && now.Sub(s.probeAt) < s.opts.ProbeCache {
		return nil
	}
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO mint_log_probe (chain, probed_at) VALUES (?, ?)
		ON CONFLICT (chain) DO UPDATE SET probed_at = excluded.probed_at`), s.chain, now.UnixNano())
	if err != nil {
		err = fmt.Errorf("audit: ledger not writable: %w", err)
	} else {
		err = s.reserveErr()
	}
	if err == nil { // failures are re-checked on every call
		s.probeAt = now
	}
	return err
}

// DB exposes the database handle (for tests and tools).
func (s *SQL) DB() *sql.DB { return s.db }

// Close stops the writer (queued appends fail with ErrClosed; a batch in
// flight finishes; a due checkpoint is written) and closes the database.
func (s *SQL) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
	return s.db.Close()
}

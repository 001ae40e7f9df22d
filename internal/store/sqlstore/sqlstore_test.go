package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/sqldb"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/store"
	"github.com/agentkeys/agentkeys/internal/store/storetest"
)

// engine names a way to make a fresh, empty database and its DSN.
type engine struct {
	name   string
	newDSN func(t testing.TB) string
}

var engines = []engine{
	{"sqlite", sqldbtest.SQLiteDSN},
	{"postgres", sqldbtest.PostgresDSN},
}

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store { return open(t, e.newDSN(t)) })
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dsn := e.newDSN(t)
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			w := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, LoginHash: "login", CreatedAt: time.Now()}
			if err := s.InsertWallet(ctx, w); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = open(t, dsn) // migrations already applied
			if _, err := s.Wallet(ctx, w.Address); err != nil {
				t.Fatalf("wallet after reopen: %v", err)
			}
		})
	}
}

// TestUpgradeFromV1 applies only the first migration, as a deployment made
// before the pairing tables would have, then opens the store: the later
// migrations must apply on top and keep the existing rows.
func TestUpgradeFromV1(t *testing.T) {
	ctx := context.Background()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			dsn := e.newDSN(t)
			driver, gd, dir := "sqlite", goose.DialectSQLite3, "migrations/sqlite"
			if sqldb.IsPostgres(dsn) {
				driver, gd, dir = "pgx", goose.DialectPostgres, "migrations/postgres"
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := fs.Sub(migrations, dir)
			if err != nil {
				t.Fatal(err)
			}
			p, err := goose.NewProvider(gd, db, fsys, goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, 1); err != nil {
				t.Fatal(err)
			}
			w := agentkeys.NewWallet()
			for _, stmt := range []struct {
				query string
				args  []any
			}{
				{`INSERT INTO wallets (address, kind, created_at) VALUES ($1, 'master', 0)`, []any{string(w)}},
				{`INSERT INTO identity_links (wallet, identity_type, identity_value, created_at) VALUES ($1, 'email', 'a@example.com', 0)`, []any{string(w)}},
				{`INSERT INTO inboxes (address, wallet, created_at) VALUES ('box@mock.test', $1, 0)`, []any{string(w)}},
			} {
				if _, err := db.ExecContext(ctx, stmt.query, stmt.args...); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			s := open(t, dsn)
			l, err := s.ResolveIdentity(ctx, "email", "a@example.com")
			if err != nil || l.Wallet != w {
				t.Fatalf("link after upgrade: %+v, %v", l, err)
			}
			if in, err := s.Inbox(ctx, "box@mock.test"); err != nil || in.Wallet != w {
				t.Fatalf("inbox after upgrade: %+v, %v", in, err)
			}
			r := store.AuthRequest{ID: "id", PairCode: "CODE", Status: store.AuthPending, ParentWallet: w, CreatedAt: time.Now(), ExpiresAt: time.Now()}
			if err := s.InsertAuthRequest(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := s.InsertRendezvous(ctx, store.Rendezvous{PairCode: "CODE", TokenHash: "h"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLiteFileMode(t *testing.T) {
	ctx := context.Background()
	path := sqldbtest.SQLiteDSN(t)
	s := open(t, path)
	if err := s.InsertWallet(ctx, store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), mode)
		}
	}
	var journal string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", journal, err)
	}
	var fk, sync int
	if err := s.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

func TestSQLiteDSNForms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite:" + filepath.Join(dir, "a.db"),
		"sqlite://" + filepath.Join(dir, "b.db"),
		"file:" + filepath.Join(dir, "c.db"),
		"file://" + filepath.Join(dir, "d.db"),
	} {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Errorf("Open(%q): %v", dsn, err)
			continue
		}
		s.Close()
	}
	for _, name := range []string{"plain.db", "a.db", "b.db", "c.db", "d.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not created: %v", name, err)
		}
	}
	for _, dsn := range []string{"", "sqlite:", ":memory:", "file::memory:?cache=shared", filepath.Join(dir, "x.db?mode=ro")} {
		if s, err := Open(ctx, dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", dsn)
		}
	}
	if _, err := Open(ctx, filepath.Join(dir, "missing-dir", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// TestSQLiteTwoStores has two stores (as two processes would) write the same
// file concurrently with read-then-write transactions: BEGIN IMMEDIATE and
// busy_timeout must keep SQLITE_BUSY from surfacing.
func TestSQLiteTwoStores(t *testing.T) {
	ctx := context.Background()
	path := sqldbtest.SQLiteDSN(t)
	s1, s2 := open(t, path), open(t, path)
	m := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, CreatedAt: time.Now()}
	if err := s1.InsertWallet(ctx, m); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*rounds)
	for i, s := range []*Store{s1, s2} {
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					errs <- s.Tx(ctx, func(q store.Queries) error {
						if _, err := q.Services(ctx, m.Address); err != nil {
							return err
						}
						svc := fmt.Sprintf("s%d-%d-%d", i, w, r)
						return q.PutCredential(ctx, store.Credential{Wallet: m.Address, Service: svc, Sealed: []byte("x"), CreatedAt: time.Now(), UpdatedAt: time.Now()})
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	svcs, err := s2.Services(ctx, m.Address)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2*workers*rounds {
		t.Errorf("%d services, want %d", len(svcs), 2*workers*rounds)
	}
}

// TestPostgresConcurrentOpen opens one fresh database from several stores at
// once, as several processes starting together would: the migration lock
// must let exactly one apply each migration.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := sqldbtest.PostgresDSN(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Errorf("store %d: %v", i, errs[i])
		}
	}
	if t.Failed() {
		return
	}
	for _, v := range []int{1, 2} {
		if got := count(t, stores[0], `SELECT count(*) FROM goose_db_version WHERE version_id = $1`, v); got != 1 {
			t.Errorf("migration %d recorded %d times, want 1", v, got)
		}
	}
}

func TestPostgresBadURL(t *testing.T) {
	// Port 1 refuses connections; the error must not echo the password.
	_, err := Open(context.Background(), "postgres://u:secret-pw@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "secret-pw") {
		t.Errorf("error leaks the password: %s", msg)
	}
	_, err = Open(context.Background(), "postgres://u:secret-pw@[::1/db")
	if err == nil || strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("malformed URL: err = %v", err)
	}
}

// TestPostgresTxRunInParallel: two replicas' unrelated transactions do not
// wait for each other (no database-wide lock), while conflicting ones are
// still serialized (TxSerialized in the conformance suite).
func TestPostgresTxRunInParallel(t *testing.T) {
	ctx := context.Background()
	dsn := sqldbtest.PostgresDSN(t)
	a, b := open(t, dsn), open(t, dsn) // two replicas
	inA := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Tx(ctx, func(q store.Queries) error {
			w := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, LoginHash: "a-" + agentkeys.NewToken().Reveal(), CreatedAt: time.Now()}
			if err := q.InsertWallet(ctx, w); err != nil {
				return err
			}
			select {
			case <-inA:
			default:
				close(inA)
			}
			<-release
			return nil
		})
	}()
	<-inA
	// While A's transaction is open, B commits an unrelated one.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := b.Tx(bctx, func(q store.Queries) error {
		return q.InsertWallet(bctx, store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, LoginHash: "b-" + agentkeys.NewToken().Reveal(), CreatedAt: time.Now()})
	})
	close(release)
	if err != nil {
		t.Fatalf("an unrelated transaction waited for another replica's: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFrozenPostgresGetsDeadlines: a PostgreSQL server that stops answering
// (SIGSTOP, a partition) keeps its connections open, so without deadlines
// every request hangs for as long as the freeze lasts. Every statement and
// transaction now ends at its deadline, and the store works again after
// the thaw.
func TestFrozenPostgresGetsDeadlines(t *testing.T) {
	proxy, dsn := sqldbtest.NewProxy(t, sqldbtest.PostgresDSN(t))
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.queryTimeout, s.txTimeout = 300*time.Millisecond, 600*time.Millisecond
	s.queries.q = deadlineExecer{s.db, s.queryTimeout}
	if err := s.ProbeWrite(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.Freeze()
	for name, call := range map[string]func(ctx context.Context) error{
		"query": func(ctx context.Context) error { _, err := s.Wallet(ctx, "0xnone"); return err },
		"tx": func(ctx context.Context) error {
			return s.Tx(ctx, func(q store.Queries) error { _, err := q.Wallet(ctx, "0xnone"); return err })
		},
		"write probe": s.ProbeWrite,
		"ping":        s.Ping,
	} {
		start := time.Now()
		err := call(context.Background()) // no deadline from the caller
		if err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s against a frozen server: %v", name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v against a frozen server", name, d)
		}
	}
	proxy.Thaw()
	if err := s.ProbeWrite(context.Background()); err != nil {
		t.Fatalf("after the thaw: %v", err)
	}
}

package audit_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/audit/audittest"
	"github.com/agentkeys/agentkeys/internal/sqldb"
)

// testSigner signs checkpoints with a fresh P-256 key.
type testSigner struct {
	key *ecdsa.PrivateKey
	kid string
}

func newSigner(t testing.TB) *testSigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testSigner{key: k, kid: "test-kid"}
}

func (s *testSigner) SignCheckpoint(msg []byte) (string, []byte, error) {
	sum := sha256.Sum256(msg)
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		return "", nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return s.kid, out, nil
}

func (s *testSigner) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"}}}
}

func openWith(t testing.TB, dsn string, o audit.Options) *audit.SQL {
	t.Helper()
	s, err := audit.OpenWith(context.Background(), dsn, o)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// replicas opens replica-a and replica-b, two replicas with chains of their
// own, on the one ledger at dsn.
func replicas(t testing.TB, dsn string) (a, b *audit.SQL) {
	t.Helper()
	return openWith(t, dsn, audit.Options{Chain: "replica-a"}), openWith(t, dsn, audit.Options{Chain: "replica-b"})
}

// rawDB is a plain read-write connection to the ledger, as an attacker
// with database access has.
func rawDB(t *testing.T, e engine, dsn string) *sql.DB {
	driver := "sqlite"
	if e.pg {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestForgeriesNeedCheckpointsOrExpectedHeads(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, tc := range []struct {
			name           string
			from, keepUpTo int64
		}{
			{"edit and recompute", 3, 0},
			{"truncate and fix the head", 1 << 62, 5},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dsn := e.dsn(t)
				signer := newSigner(t)
				s := openWith(t, dsn, audit.Options{Chain: "replica-a", Signer: signer, CheckpointEvery: 4})
				appendN(t, s, 8)
				s.Close() // the writer has stored its checkpoints
				s, err := audit.OpenReadOnly(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				rep, err := s.Verify(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				oldHead := rep.Heads["replica-a"].Hash
				cks, err := s.Checkpoints(context.Background())
				if err != nil || len(cks) != 2 || cks[0].ID != 4 || cks[1].ID != 8 {
					t.Fatalf("checkpoints = %+v, %v; want rows 4 and 8", cks, err)
				}
				// The exported copy stands for the file kept off the host.
				var exported []audit.Checkpoint
				for _, c := range cks {
					parsed, err := audit.ParseCheckpoints(bytes.NewReader(c.MarshalLine()))
					if err != nil || len(parsed) != 1 || parsed[0].VerifySignature(signer.jwks()) != nil {
						t.Fatalf("exported checkpoint does not round-trip: %v", err)
					}
					exported = append(exported, parsed[0])
				}

				audittest.Forge(t, rawDB(t, e, dsn), e.pg, "replica-a", audittest.Forgery{From: tc.from, KeepUpTo: tc.keepUpTo, Edit: func(r *audit.Record) { r.RequesterWallet = "0xforged" }})

				// The unkeyed chain alone cannot tell.
				if _, err := s.Verify(context.Background()); err != nil {
					t.Fatalf("forgery should pass the plain chain check, got %v", err)
				}
				var ce *audit.ChainError
				_, err = s.VerifyWith(context.Background(), audit.VerifyOptions{Checkpoints: exported})
				if !errors.As(err, &ce) || ce.Chain != "replica-a" {
					t.Fatalf("with checkpoints: %v, want a ChainError", err)
				}
				_, err = s.VerifyWith(context.Background(), audit.VerifyOptions{Expect: []audit.Expectation{{Chain: "replica-a", Hash: oldHead}}})
				if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "no longer in the chain") {
					t.Fatalf("with the expected head: %v, want a ChainError", err)
				}
				_, err = s.VerifyWith(context.Background(), audit.VerifyOptions{Expect: []audit.Expectation{{Hash: oldHead}}})
				if !errors.As(err, &ce) {
					t.Fatalf("with the expected head (any chain): %v, want a ChainError", err)
				}
			})
		}
		t.Run("intact chain passes and later rows are fine", func(t *testing.T) {
			signer := newSigner(t)
			dsn := e.dsn(t)
			s := openWith(t, dsn, audit.Options{Chain: "replica-a", Signer: signer, CheckpointEvery: 2})
			appendN(t, s, 3)
			rep, err := s.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			head := rep.LastHash
			appendN(t, s, 3)
			s.Close()
			s, err = audit.OpenReadOnly(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cks, _ := s.Checkpoints(context.Background())
			rep, err = s.VerifyWith(context.Background(), audit.VerifyOptions{Checkpoints: cks,
				Expect: []audit.Expectation{{Chain: "replica-a", Hash: head}, {Hash: head}}})
			if err != nil || rep.Checkpoints != len(cks) || rep.Expected != 2 || len(cks) != 3 {
				t.Fatalf("VerifyWith = %+v, %v (checkpoints %d)", rep, err, len(cks))
			}
			_, err = s.VerifyWith(context.Background(), audit.VerifyOptions{Expect: []audit.Expectation{{Chain: "other", Hash: head}}})
			if err == nil {
				t.Fatal("a head expected on another chain was found")
			}
		})
	})
}

func TestCheckpointPolicyAndExport(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "checkpoints.jsonl")
	signer := newSigner(t)
	var mu sync.Mutex
	now := time.Unix(1_900_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := audit.OpenWith(context.Background(), filepath.Join(dir, "audit.sqlite"), audit.Options{
		Chain: "h1", Signer: signer, CheckpointEvery: 5, CheckpointInterval: time.Hour, CheckpointFile: file, Now: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 7) // checkpoint at 5 (row count); 6 and 7 not yet due
	cks, _ := s.Checkpoints(context.Background())
	if len(cks) != 1 || cks[0].ID != 5 {
		t.Fatalf("after 7 rows: %+v", cks)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	appendN(t, s, 1) // row 8: interval elapsed
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := audit.ParseCheckpoints(bytes.NewReader(data))
	if err != nil || len(parsed) != 2 || parsed[0].ID != 5 || parsed[1].ID != 8 {
		t.Fatalf("exported file: %v %+v\n%s", err, parsed, data)
	}
	for _, c := range parsed {
		if err := c.VerifySignature(signer.jwks()); err != nil {
			t.Fatalf("signature of %d: %v", c.ID, err)
		}
		bad := c
		bad.RowHash = strings.Repeat("0", 64)
		if bad.VerifySignature(signer.jwks()) == nil {
			t.Fatal("a checkpoint with an altered hash verifies")
		}
		if c.VerifySignature(newSigner(t).jwks()) == nil {
			t.Fatal("a checkpoint verifies under another key")
		}
	}
	// Close writes a final checkpoint when rows were added since the last.
	s2, err := audit.OpenWith(context.Background(), filepath.Join(dir, "audit.sqlite"), audit.Options{Chain: "h1", Signer: signer, CheckpointEvery: 100, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s2, 2)
	s2.Close()
	ro, err := audit.OpenReadOnly(context.Background(), filepath.Join(dir, "audit.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	cks, _ = ro.Checkpoints(context.Background())
	if len(cks) != 3 || cks[2].ID != 10 {
		t.Fatalf("after close: %+v", cks)
	}
}

func TestReplicasKeepSeparateChains(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		dsn := e.dsn(t)
		a, b := replicas(t, dsn)
		var wg sync.WaitGroup
		for i := range 60 {
			s := a
			if i%3 == 0 {
				s = b
			}
			wg.Go(func() {
				if err := s.Append(context.Background(), sample(i)); err != nil {
					t.Errorf("append: %v", err)
				}
			})
		}
		wg.Wait()
		rep, err := a.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != 60 || len(rep.Heads) != 2 || rep.Heads["replica-a"].ID != 40 || rep.Heads["replica-b"].ID != 20 {
			t.Fatalf("report %+v", rep)
		}
		// Moving a row to the other chain is detected: the chain name is
		// hashed.
		exec(t, a.DB(), e.unprotect)
		exec(t, a.DB(), "UPDATE mint_log SET chain = 'replica-b', id = 21 WHERE chain = 'replica-a' AND id = 40")
		exec(t, a.DB(), "UPDATE mint_log_chains SET last_id = 39 WHERE chain = 'replica-a'")
		exec(t, a.DB(), "UPDATE mint_log_chains SET last_id = 21 WHERE chain = 'replica-b'")
		var ce *audit.ChainError
		if _, err := a.Verify(context.Background()); !errors.As(err, &ce) {
			t.Fatalf("moved row: %v", err)
		}
	})
}

// legacyLedger builds a ledger with only the first schema version, as a
// broker before per-replica chains left it, holding n rows.
func legacyLedger(t *testing.T, dsn string, n int) {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, dir := range []string{"sqlite", "postgres"} {
		b, err := os.ReadFile(filepath.Join("migrations", dir, "00001_mint_log.sql"))
		if err != nil {
			t.Fatal(err)
		}
		fsys[dir+"/00001_mint_log.sql"] = &fstest.MapFile{Data: b}
	}
	db, err := sqldb.Open(context.Background(), dsn, sqldb.Options{Name: "audit", Migrations: fsys,
		GooseTable: "broker_audit_goose_version", LockID: 0x6b2d61756469746d, CreateDir: true, PrivateFile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := func(s string) string { return audittest.Rebind(db.Engine == sqldb.Postgres, s) }
	prev := audit.GenesisHash
	for i := 1; i <= n; i++ {
		r := sample(i)
		r.ID = int64(i)
		r.Time = r.Time.UTC()
		h := audit.ComputeHash(r, prev)
		if _, err := db.Exec(q(`INSERT INTO mint_log (id, minted_at, requester_token_hash, requester_wallet, requested_role,
			session_duration_seconds, sts_session_name, outcome, outcome_detail, client_ip, request_id, credential_id,
			credential_expires_at, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)`),
			r.ID, r.Time.Unix(), r.RequesterTokenHash, r.RequesterWallet, r.RequestedRole, r.DurationSeconds,
			r.STSSessionName, r.Outcome, r.ClientIP, r.RequestID, r.CredentialID, r.CredentialExpiresAt, prev, h); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if _, err := db.Exec(q("UPDATE mint_log_head SET last_id = ?, last_hash = ? WHERE singleton = 1"), n, prev); err != nil {
		t.Fatal(err)
	}
}

func gooseVersion(t *testing.T, db *sql.DB) int64 {
	var v int64
	if err := db.QueryRow("SELECT MAX(version_id) FROM broker_audit_goose_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLegacyLedgerVerifiesReadOnlyThenMigrates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		dsn := e.dsn(t)
		legacyLedger(t, dsn, 4)
		ro, err := audit.OpenReadOnly(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ro.Verify(context.Background())
		if err != nil || rep.Rows != 4 || rep.Heads[audit.DefaultChain].ID != 4 {
			t.Fatalf("read-only verify of a legacy ledger: %+v %v", rep, err)
		}
		if v := gooseVersion(t, ro.DB()); v != 1 {
			t.Fatalf("read-only open migrated the ledger to version %d", v)
		}
		if err := ro.Append(context.Background(), sample(9)); !errors.Is(err, audit.ErrReadOnly) {
			t.Fatalf("Append on a read-only ledger = %v", err)
		}
		ro.Close()

		// A broker upgrade migrates; old rows keep verifying, in the
		// default chain, beside a new replica chain.
		s := openWith(t, dsn, audit.Options{Chain: "host-1"})
		appendN(t, s, 2)
		old := openWith(t, dsn, audit.Options{}) // DefaultChain continues the old chain
		appendN(t, old, 1)
		rep, err = s.Verify(context.Background())
		if err != nil || rep.Rows != 7 || rep.Heads[audit.DefaultChain].ID != 5 || rep.Heads["host-1"].ID != 2 {
			t.Fatalf("after migration: %+v %v", rep, err)
		}
	})
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	empty := filepath.Join(dir, "empty.sqlite")
	os.WriteFile(empty, nil, 0o600)
	garbage := filepath.Join(dir, "garbage.sqlite")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 100), 0o600)
	other := filepath.Join(dir, "other.sqlite")
	db, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec("CREATE TABLE something (a)")
	db.Close()
	for _, p := range []string{empty, garbage, other} {
		before, _ := os.ReadFile(p)
		if _, err := audit.OpenReadOnly(ctx, p); !errors.Is(err, audit.ErrNotLedger) {
			t.Errorf("OpenReadOnly(%s) = %v, want ErrNotLedger", filepath.Base(p), err)
		}
		after, _ := os.ReadFile(p)
		if !bytes.Equal(before, after) {
			t.Errorf("OpenReadOnly changed %s", filepath.Base(p))
		}
	}
	if _, err := audit.OpenReadOnly(ctx, filepath.Join(dir, "missing.sqlite")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.sqlite")); err == nil {
		t.Error("OpenReadOnly created a file")
	}

	// A 0644 backup (VACUUM INTO, like sqlite3 .backup) of a live ledger.
	live := open(t, filepath.Join(dir, "live", "audit.sqlite"))
	appendN(t, live, 3)
	backup := filepath.Join(dir, "backup.sqlite")
	if _, err := live.DB().Exec("VACUUM INTO '" + backup + "'"); err != nil {
		t.Fatal(err)
	}
	os.Chmod(backup, 0o644)
	before, _ := os.ReadFile(backup)
	ro, err := audit.OpenReadOnly(ctx, backup)
	if err != nil {
		t.Fatalf("0644 backup refused: %v", err)
	}
	if rep, err := ro.Verify(ctx); err != nil || rep.Rows != 3 {
		t.Fatalf("verify backup: %+v %v", rep, err)
	}
	ro.Close()
	after, _ := os.ReadFile(backup)
	if !bytes.Equal(before, after) {
		t.Fatal("verifying the backup changed it")
	}
	// The live WAL ledger reads too, while the broker has it open.
	ro, err = audit.OpenReadOnly(ctx, filepath.Join(dir, "live", "audit.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ro.Verify(ctx); err != nil || rep.Rows != 3 {
		t.Fatalf("verify live: %+v %v", rep, err)
	}
	ro.Close()
	// A schema-less PostgreSQL database is refused too.
	pg := engines()[1].dsn(t)
	if _, err := audit.OpenReadOnly(ctx, pg); !errors.Is(err, audit.ErrNotLedger) {
		t.Fatalf("empty PostgreSQL database: %v", err)
	}
}

package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/sqldb/sqldbtest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// engine is one audit database under test.
type engine struct {
	name string
	// open returns a DSN for a fresh, empty ledger.
	dsn func(t *testing.T) string
	// unprotect drops the append-only guard, as an attacker with write
	// access to the database would.
	unprotect string
	// rebind placeholders
	pg bool
}

func engines() []engine {
	return []engine{
		{
			name: "sqlite",
			dsn: func(t *testing.T) string {
				return filepath.Join(t.TempDir(), "sub", "audit.sqlite")
			},
			unprotect: "DROP TRIGGER mint_log_no_update; DROP TRIGGER mint_log_no_delete",
		},
		{
			name:      "postgres",
			dsn:       func(t *testing.T) string { return sqldbtest.PostgresDSN(t) },
			unprotect: "ALTER TABLE mint_log DISABLE TRIGGER USER",
			pg:        true,
		},
	}
}

func forEachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) { fn(t, e) })
	}
}

func open(t *testing.T, dsn string) *audit.SQL {
	t.Helper()
	s, err := audit.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sample(i int) audit.Record {
	return audit.Record{
		Time:                time.Unix(1_800_000_000+int64(i), 0),
		RequesterTokenHash:  fmt.Sprintf("%064x", i),
		RequesterWallet:     fmt.Sprintf("0x%040x", i),
		RequestedRole:       "arn:aws:iam::000000000000:role/agentkeys-data-role",
		DurationSeconds:     3600,
		STSSessionName:      fmt.Sprintf("agentkeys-%d", i),
		Outcome:             audit.OutcomeOK,
		ClientIP:            "127.0.0.1",
		RequestID:           fmt.Sprintf("req-%d", i),
		CredentialID:        fmt.Sprintf("ASIA%d", i),
		CredentialExpiresAt: 1_800_003_600,
	}
}

func appendN(t testing.TB, s audit.Sink, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := s.Append(context.Background(), sample(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s := open(t, e.dsn(t))
		ctx := context.Background()
		ok := sample(1)
		ok.Time = ok.Time.Add(700 * time.Millisecond) // sub-second is dropped
		failed := sample(2)
		failed.Outcome = audit.OutcomeSTSError
		failed.Detail = "assume_role: simulated AccessDenied"
		failed.CredentialID, failed.CredentialExpiresAt = "", 0
		for _, r := range []audit.Record{ok, failed} {
			if err := s.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		last, found, err := s.Last(ctx)
		if err != nil || !found {
			t.Fatalf("Last: %v %v", found, err)
		}
		want := failed
		want.ID = 2
		want.Chain = audit.DefaultChain
		want.Time = want.Time.UTC()
		if last.PrevHash == "" || len(last.RowHash) != 64 {
			t.Fatalf("hashes not set: %+v", last)
		}
		want.PrevHash, want.RowHash = last.PrevHash, last.RowHash
		if !reflect.DeepEqual(last, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", last, want)
		}
		// An empty detail is stored as NULL, as in the original ledger.
		var nulls int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM mint_log WHERE outcome_detail IS NULL").Scan(&nulls); err != nil || nulls != 1 {
			t.Fatalf("NULL details = %d, %v; want 1", nulls, err)
		}
		rep, err := s.Verify(ctx)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if rep.Rows != 2 || rep.LastID != 2 || rep.LastHash != last.RowHash {
			t.Fatalf("report = %+v", rep)
		}
	})
}

func TestChainLinksRows(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s := open(t, e.dsn(t))
		appendN(t, s, 3)
		rows, err := s.DB().Query("SELECT id, prev_hash, row_hash FROM mint_log ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		prev := audit.GenesisHash
		for i := int64(1); rows.Next(); i++ {
			var id int64
			var p, h string
			if err := rows.Scan(&id, &p, &h); err != nil {
				t.Fatal(err)
			}
			if id != i || p != prev {
				t.Fatalf("row %d: id %d prev %s, want prev %s", i, id, p, prev)
			}
			prev = h
		}
	})
}

func TestConcurrentAppendsKeepOneChain(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		dsn := e.dsn(t)
		// Two sinks on one database stand for two broker replicas.
		a, b := open(t, dsn), open(t, dsn)
		const perSink = 100
		var wg sync.WaitGroup
		errs := make(chan error, 2*perSink)
		for i := range 2 * perSink {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				if err := s.Append(context.Background(), sample(i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("append: %v", err)
		}
		rep, err := a.Verify(context.Background())
		if err != nil {
			t.Fatalf("Verify after concurrent appends: %v", err)
		}
		if rep.Rows != 2*perSink || rep.LastID != 2*perSink {
			t.Fatalf("report = %+v, want %d rows", rep, 2*perSink)
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  string // SQL run after 5 rows were appended
		wantID  int64
		wantMsg string
	}{
		{"edited row", "UPDATE mint_log SET requester_wallet = '0xattacker' WHERE id = 3", 3, "row edited"},
		{"edited detail", "UPDATE mint_log SET outcome_detail = 'nothing to see' WHERE id = 2", 2, "row edited"},
		{"deleted row", "DELETE FROM mint_log WHERE id = 2", 3, "row 2 is missing"},
		{"deleted rows", "DELETE FROM mint_log WHERE id IN (2, 3)", 4, "rows 2 to 3 are missing"},
		{"deleted last row", "DELETE FROM mint_log WHERE id = 5", 5, "deleted from the end"},
		{"deleted first row", "DELETE FROM mint_log WHERE id = 1", 2, "row 1 is missing"},
		{"reordered rows", "UPDATE mint_log SET id = id + 100 WHERE id IN (2, 3); UPDATE mint_log SET id = 3 WHERE id = 102; UPDATE mint_log SET id = 2 WHERE id = 103", 2, "prev_hash"},
		{"outcome rewritten", "UPDATE mint_log SET outcome = 'sts_error' WHERE id = 4", 4, "row edited"},
	}
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t, e.dsn(t))
				appendN(t, s, 5)
				if _, err := s.Verify(context.Background()); err != nil {
					t.Fatalf("intact chain: %v", err)
				}
				exec(t, s.DB(), e.unprotect)
				exec(t, s.DB(), tc.tamper)
				_, err := s.Verify(context.Background())
				var ce *audit.ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("Verify = %v, want a ChainError", err)
				}
				if ce.ID != tc.wantID || !strings.Contains(ce.Reason, tc.wantMsg) {
					t.Fatalf("Verify = %v (row %d), want row %d with %q", ce, ce.ID, tc.wantID, tc.wantMsg)
				}
			})
		}
		t.Run("edited row with recomputed hash", func(t *testing.T) {
			s := open(t, e.dsn(t))
			appendN(t, s, 4)
			exec(t, s.DB(), e.unprotect)
			// The attacker rewrites row 2 and even fixes its row_hash; row
			// 3 still points at the original hash.
			r := sample(2)
			r.ID = 2
			r.Time = r.Time.UTC()
			var prev string
			if err := s.DB().QueryRow("SELECT prev_hash FROM mint_log WHERE id = 2").Scan(&prev); err != nil {
				t.Fatal(err)
			}
			r.RequesterWallet = "0xattacker"
			h := audit.ComputeHash(r, prev)
			q := "UPDATE mint_log SET requester_wallet = '0xattacker', row_hash = '" + h + "' WHERE id = 2"
			exec(t, s.DB(), q)
			_, err := s.Verify(context.Background())
			var ce *audit.ChainError
			if !errors.As(err, &ce) || ce.ID != 3 || !strings.Contains(ce.Reason, "prev_hash") {
				t.Fatalf("Verify = %v, want a prev_hash break at row 3", err)
			}
		})
	})
}

func exec(t *testing.T, db *sql.DB, stmts string) {
	t.Helper()
	for stmt := range strings.SplitSeq(stmts, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func TestLedgerIsAppendOnly(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s := open(t, e.dsn(t))
		appendN(t, s, 2)
		for _, q := range []string{"UPDATE mint_log SET outcome = 'ok'", "DELETE FROM mint_log"} {
			if _, err := s.DB().Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: err = %v, want append-only refusal", q, err)
			}
		}
		if e.pg {
			if _, err := s.DB().Exec("TRUNCATE mint_log"); err == nil {
				t.Error("TRUNCATE succeeded on the ledger")
			}
		}
	})
}

func TestAppendAfterCancelWritesNothing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s := open(t, e.dsn(t))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Append(ctx, sample(1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Append with a cancelled context = %v", err)
		}
		appendN(t, s, 1) // the writer is still healthy
		if n, err := s.Count(context.Background()); err != nil || n != 1 {
			t.Fatalf("Count = %d, %v; want 1", n, err)
		}
	})
}

func TestAppendAfterClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s, err := audit.Open(context.Background(), e.dsn(t))
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, s, 1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(context.Background(), sample(2)); !errors.Is(err, audit.ErrClosed) {
			t.Fatalf("Append after Close = %v, want ErrClosed", err)
		}
	})
}

func TestReopenContinuesChain(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		dsn := e.dsn(t)
		s, err := audit.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, s, 2)
		s.Close()
		s2 := open(t, dsn)
		appendN(t, s2, 2)
		rep, err := s2.Verify(context.Background())
		if err != nil || rep.Rows != 4 {
			t.Fatalf("Verify after reopen = %+v, %v", rep, err)
		}
	})
}

func TestPing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		s := open(t, e.dsn(t))
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSQLiteFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "audit.sqlite")
	s := open(t, path)
	appendN(t, s, 1)
	testkit.WantPerm(t, path, 0o600)
	testkit.WantPerm(t, filepath.Dir(path), 0o700)

	loose := filepath.Join(dir, "loose.sqlite")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644)
	if _, err := audit.Open(context.Background(), loose); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open of a world-readable DB = %v, want refusal", err)
	}
	if _, err := audit.Open(context.Background(), ":memory:"); err == nil {
		t.Fatal("in-memory audit DB accepted")
	}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	base := sample(7)
	base.ID = 7
	h0 := audit.ComputeHash(base, audit.GenesisHash)
	if h0 != audit.ComputeHash(base, audit.GenesisHash) || len(h0) != 64 {
		t.Fatal("hash not deterministic 64-hex")
	}
	if audit.ComputeHash(base, strings.Repeat("1", 64)) == h0 {
		t.Fatal("prev hash not covered")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		if name == "PrevHash" || name == "RowHash" {
			continue
		}
		r := base
		f := reflect.ValueOf(&r).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int64:
			f.SetInt(f.Int() + 1)
		case reflect.Struct: // time.Time
			r.Time = r.Time.Add(time.Second)
		default:
			t.Fatalf("field %s of kind %s not exercised", name, f.Kind())
		}
		if audit.ComputeHash(r, audit.GenesisHash) == h0 {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	// Length prefixes: moving a byte between adjacent fields changes it.
	a, b := base, base
	a.RequesterWallet, a.RequestedRole = "ab", "c"
	b.RequesterWallet, b.RequestedRole = "a", "bc"
	if audit.ComputeHash(a, audit.GenesisHash) == audit.ComputeHash(b, audit.GenesisHash) {
		t.Fatal("encoding is ambiguous across field boundaries")
	}
}

func TestSQLiteIsDurable(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "audit.sqlite"))
	var mode string
	var sync int
	if err := s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := s.DB().QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

package broker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/audit/audittest"
)

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// TestAuditVerifyIsReadOnly: verify never creates or migrates a ledger,
// reads a 0644 backup, and refuses what is not a ledger instead of
// reporting "OK: 0 rows".
func TestAuditVerifyIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.sqlite")
	os.WriteFile(empty, nil, 0o600)
	out, _, err := runCmd(t, nil, "audit", "verify", "--db", empty)
	if exitCode(err) != 1 || strings.Contains(out, "OK") || !strings.Contains(err.Error(), "empty file") {
		t.Fatalf("0-byte file: exit %d %v %q", exitCode(err), err, out)
	}
	if st, _ := os.Stat(empty); st.Size() != 0 {
		t.Fatal("verify wrote to the empty file")
	}
	other := filepath.Join(dir, "other.sqlite")
	db, _ := sql.Open("sqlite", other)
	db.Exec("CREATE TABLE notes (a)")
	db.Close()
	out, _, err = runCmd(t, nil, "audit", "verify", "--db", other)
	if exitCode(err) != 1 || strings.Contains(out, "OK") || !strings.Contains(err.Error(), "no mint_log table") {
		t.Fatalf("schema-less file: exit %d %v %q", exitCode(err), err, out)
	}
	if _, _, err := runCmd(t, nil, "audit", "verify", "--db", filepath.Join(dir, "nope.sqlite")); exitCode(err) != 1 {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.sqlite")); err == nil {
		t.Fatal("verify created the missing ledger")
	}

	live := filepath.Join(dir, "live", "audit.sqlite")
	ledger, err := audit.Open(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ledger.Append(context.Background(), audit.Record{RequesterTokenHash: "h", RequesterWallet: "w", RequestedRole: "oidc_jwt", Outcome: "ok", STSSessionName: "k"})
	}
	backup := filepath.Join(dir, "backup.sqlite")
	if _, err := ledger.DB().Exec("VACUUM INTO '" + backup + "'"); err != nil {
		t.Fatal(err)
	}
	ledger.Close()
	os.Chmod(backup, 0o644) // what a backup made by another user looks like
	out, _, err = runCmd(t, nil, "audit", "verify", "--db", backup)
	if err != nil || !strings.Contains(out, "OK: 3 rows") {
		t.Fatalf("0644 backup: %v %q", err, out)
	}
}

func TestAuditVerifyUsageErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.sqlite")
	for _, args := range [][]string{
		{"audit", "verify", "--db", path, "--checkpoint", "x.jsonl"}, // no --jwks
		{"audit", "verify", "--db", path, "--expect-head", "nothex"},
		{"audit", "verify", "--db", path, "--no-such-flag"},
		{"audit", "verify", "--db", path, "extra-arg"},
	} {
		_, _, err := runCmd(t, nil, args...)
		if exitCode(err) != ExitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args[3:], exitCode(err), err, ExitUsage)
		}
	}
}

// TestAuditVerifyCatchesForgeriesWithCheckpointsAndHeads runs a broker that
// signs checkpoints, forges its ledger the two ways the plain chain cannot
// see, and checks that verify with the exported checkpoints (keys from the
// broker's JWKS URL) or with the recorded head exits 3, once.
func TestAuditVerifyCatchesForgeriesWithCheckpointsAndHeads(t *testing.T) {
	// Edit row 2 and recompute every later hash, or cut rows 5 and 6 and
	// fix the head row.
	for _, tc := range []struct {
		forgery string
		how     audittest.Forgery
	}{
		{"edit and recompute", audittest.Forgery{From: 2, Edit: func(r *audit.Record) { r.Outcome = audit.OutcomeAuthFailed }}}, // hide a mint that happened
		{"truncate and fix the head", audittest.Forgery{KeepUpTo: 4, From: 1 << 62}},
	} {
		forgery := tc.forgery
		t.Run(forgery, func(t *testing.T) {
			backend := newFakeBackend(t)
			tok, _ := backend.newSession("master", nil)
			cfg := startConfig(t, backend.URL)
			dir := filepath.Dir(cfg.AuditDB)
			cfg.AuditChain = "replica-1"
			cfg.AuditCheckpointRows = 3
			cfg.AuditCheckpointFile = filepath.Join(dir, "checkpoints.jsonl")
			r, err := Start(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 6 {
				req, _ := http.NewRequest("POST", r.URL()+PathMintJWT, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("mint: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			// The JWKS as a verifier fetches it.
			resp, err := http.Get(r.URL() + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			var jwks json.RawMessage
			json.NewDecoder(resp.Body).Decode(&jwks)
			resp.Body.Close()
			jwksFile := filepath.Join(t.TempDir(), "jwks.json")
			os.WriteFile(jwksFile, jwks, 0o644)
			if err := r.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}

			out, _, err := runCmd(t, nil, "audit", "verify", "--db", cfg.AuditDB, "--json")
			var rep struct {
				OK    bool              `json:"ok"`
				Head  string            `json:"head"`
				Heads map[string]string `json:"heads"`
			}
			if err != nil || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || rep.Head == "" || rep.Heads["replica-1"] != rep.Head {
				t.Fatalf("intact: %v %s", err, out)
			}
			good := []string{"audit", "verify", "--db", cfg.AuditDB, "--checkpoint", cfg.AuditCheckpointFile, "--jwks", jwksFile, "--expect-head", "replica-1=" + rep.Head}
			if out, _, err := runCmd(t, nil, good...); err != nil || !strings.Contains(out, "2 signed checkpoints match") || !strings.Contains(out, "1 expected heads found") {
				t.Fatalf("intact with checkpoints and head: %v %s", err, out)
			}
			exported, _ := os.ReadFile(cfg.AuditCheckpointFile)
			if n := strings.Count(string(exported), "\n"); n != 2 {
				t.Fatalf("exported %d checkpoints, want 2:\n%s", n, exported)
			}
			dump, _, err := runCmd(t, nil, "audit", "checkpoints", "--db", cfg.AuditDB)
			if err != nil || dump != string(exported) {
				t.Fatalf("audit checkpoints:\n%s\nfile:\n%s", dump, exported)
			}

			audittest.ForgeSQLite(t, cfg.AuditDB, "replica-1", tc.how)
			if out, _, err := runCmd(t, nil, "audit", "verify", "--db", cfg.AuditDB); err != nil {
				t.Fatalf("the plain chain check should miss this forgery: %v %s", err, out)
			}
			for _, extra := range [][]string{
				{"--checkpoint", cfg.AuditCheckpointFile, "--jwks", jwksFile},
				{"--expect-head", rep.Head},
				{"--expect-head", "replica-1=" + rep.Head},
			} {
				args := append([]string{"audit", "verify", "--db", cfg.AuditDB}, extra...)
				out, errOut, err := runCmd(t, nil, args...)
				if exitCode(err) != ExitBroken || strings.Count(out+errOut, "BROKEN") != 1 {
					t.Fatalf("%v: exit %d, output %q %q", extra, exitCode(err), out, errOut)
				}
				var ee *ExitError
				if !errors.As(err, &ee) || !ee.Quiet {
					t.Fatal("the broken chain would be reported twice")
				}
			}
		})
	}
}

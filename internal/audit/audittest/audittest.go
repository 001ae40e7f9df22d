// Package audittest forges mint ledgers for tests of tamper detection:
// it rewrites a chain the way someone with write access to the database
// would, so that the plain hash-chain check still passes and only signed
// checkpoints or an expected head can tell. Only test code imports it.
package audittest

import (
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// Forgery says what Forge does to a chain.
type Forgery struct {
	// KeepUpTo cuts the chain after this row id (0: keeps every row).
	KeepUpTo int64
	// From is the first row whose hash is recomputed; Edit is applied to
	// it. Beyond the last row, only the head is fixed.
	From int64
	// Edit changes row From; its requester wallet and outcome are written
	// back.
	Edit func(*audit.Record)
}

// ForgeSQLite is Forge on the SQLite ledger file at path.
func ForgeSQLite(t testing.TB, path, chain string, f Forgery) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	Forge(t, db, false, chain, f)
}

// Forge drops the ledger's append-only triggers and rewrites chain in db
// (PostgreSQL when pg) as f says, recomputing every later hash and the
// chain's head row.
func Forge(t testing.TB, db *sql.DB, pg bool, chain string, f Forgery) {
	t.Helper()
	q := func(s string) string { return Rebind(pg, s) }
	unprotect := []string{"DROP TRIGGER mint_log_no_update", "DROP TRIGGER mint_log_no_delete"}
	if pg {
		unprotect = []string{"ALTER TABLE mint_log DISABLE TRIGGER USER"}
	}
	for _, s := range unprotect {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if f.KeepUpTo > 0 {
		if _, err := db.Exec(q("DELETE FROM mint_log WHERE chain = ? AND id > ?"), chain, f.KeepUpTo); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(q(`SELECT id, minted_at, requester_token_hash, requester_wallet, requested_role, session_duration_seconds,
		sts_session_name, outcome, COALESCE(outcome_detail, ''), client_ip, request_id, credential_id, credential_expires_at, row_hash
		FROM mint_log WHERE chain = ? ORDER BY id`), chain)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for rows.Next() {
		r := audit.Record{Chain: chain}
		var ts int64
		if err := rows.Scan(&r.ID, &ts, &r.RequesterTokenHash, &r.RequesterWallet, &r.RequestedRole, &r.DurationSeconds,
			&r.STSSessionName, &r.Outcome, &r.Detail, &r.ClientIP, &r.RequestID, &r.CredentialID, &r.CredentialExpiresAt, &r.RowHash); err != nil {
			t.Fatal(err)
		}
		r.Time = time.Unix(ts, 0).UTC()
		recs = append(recs, r)
	}
	rows.Close()
	if len(recs) == 0 {
		t.Fatalf("forge: chain %q has no rows", chain)
	}
	prev := audit.GenesisHash
	for _, r := range recs {
		if r.ID == f.From && f.Edit != nil {
			f.Edit(&r)
		}
		if r.ID >= f.From {
			r.RowHash = audit.ComputeHash(r, prev)
			if _, err := db.Exec(q("UPDATE mint_log SET requester_wallet = ?, outcome = ?, prev_hash = ?, row_hash = ? WHERE chain = ? AND id = ?"),
				r.RequesterWallet, r.Outcome, prev, r.RowHash, chain, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		prev = r.RowHash
	}
	if _, err := db.Exec(q("UPDATE mint_log_chains SET last_id = ?, last_hash = ? WHERE chain = ?"), recs[len(recs)-1].ID, prev, chain); err != nil {
		t.Fatal(err)
	}
}

// Rebind numbers ? placeholders for PostgreSQL (pg) and returns q as is
// for SQLite.
func Rebind(pg bool, q string) string {
	if !pg {
		return q
	}
	for i := 1; strings.Contains(q, "?"); i++ {
		q = strings.Replace(q, "?", "$"+strconv.Itoa(i), 1)
	}
	return q
}

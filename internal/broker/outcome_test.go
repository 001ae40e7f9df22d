package broker

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

// rowsFor returns the ledger rows of one request, in order.
func (h *harness) rowsFor(requestID string) []audit.Record {
	h.t.Helper()
	rows, err := h.ledger.DB().Query("SELECT outcome, sts_session_name, credential_id FROM mint_log WHERE request_id = ? ORDER BY id", requestID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r audit.Record
		if err := rows.Scan(&r.Outcome, &r.STSSessionName, &r.CredentialID); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestAWSMintRecordsAttemptBeforeSTS: STS issues credentials whatever the
// broker does next, so the call is recorded before it is made and its
// outcome after.
func TestAWSMintRecordsAttemptBeforeSTS(t *testing.T) {
	h := newHarness(t)
	tok, _ := h.backend.newSession("master", nil)
	r := h.mintAWS(tok)
	if r.status != 200 {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	rows := h.rowsFor(r.header.Get("X-Request-Id"))
	if len(rows) != 2 || rows[0].Outcome != audit.OutcomeAttempt || rows[1].Outcome != audit.OutcomeOK ||
		rows[0].STSSessionName != rows[1].STSSessionName || rows[1].CredentialID != h.sts.Issued()[0].AccessKeyID {
		t.Fatalf("rows of a successful AWS mint: %+v", rows)
	}

	h.sts.Set(func(f *ststest.Fake) { f.FailAssume = "AccessDenied" })
	r = h.mintAWS(tok)
	rows = h.rowsFor(r.header.Get("X-Request-Id"))
	if r.status != http.StatusBadGateway || len(rows) != 2 || rows[0].Outcome != audit.OutcomeAttempt || rows[1].Outcome != audit.OutcomeSTSError {
		t.Fatalf("STS refusal: %d, rows %+v", r.status, rows)
	}
}

// outcomeFailingSink records attempts but fails every other row, like a
// ledger that fills up while STS is being called.
type outcomeFailingSink struct{ *audit.SQL }

func (s outcomeFailingSink) Append(ctx context.Context, r audit.Record) error {
	if r.Outcome == audit.OutcomeAttempt {
		return s.SQL.Append(ctx, r)
	}
	return errors.New("disk full")
}

// TestIssuedCredentialsAlwaysHaveARow: when the outcome row cannot be
// written after STS issued credentials, the caller gets 500 and no
// credential, and the ledger still shows that STS was called for that
// wallet and session name. Before, such mints left no row at all.
func TestIssuedCredentialsAlwaysHaveARow(t *testing.T) {
	h := newHarness(t)
	h2 := newHarness(t, withSink(outcomeFailingSink{h.ledger}))
	tok, wallet := h2.backend.newSession("master", nil)
	r := h2.mintAWS(tok)
	r.wantErrorf(t, http.StatusInternalServerError, KindAuditError, "mint with a failing outcome write")
	issued := h2.sts.Issued()
	if len(issued) != 1 {
		t.Fatalf("STS issued %d", len(issued))
	}
	rows := h.rowsFor(r.header.Get("X-Request-Id"))
	if len(rows) != 1 || rows[0].Outcome != audit.OutcomeAttempt || !strings.Contains(rows[0].STSSessionName, string(wallet)) {
		t.Fatalf("the credentials STS issued have no row: %+v (issued %+v)", rows, issued[0])
	}
}

package audit_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/audit"
)

// TestQuery: the audit view's read selects rows by wallet across chains,
// newest first in one stable order, with filters and cursors that visit
// every row exactly once.
func TestQuery(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		a, b := replicas(t, e.dsn(t))
		mine, agent, other := "0x"+strings.Repeat("a", 40), "0x"+strings.Repeat("b", 40), "0x"+strings.Repeat("c", 40)
		base := time.Unix(1_800_000_000, 0)
		add := func(s *audit.SQL, wallet string, sec int, role, outcome string) {
			r := sample(sec)
			r.RequesterWallet, r.Time, r.RequestedRole, r.Outcome = wallet, base.Add(time.Duration(sec)*time.Second), role, outcome
			if err := s.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		aws := "arn:aws:iam::000000000000:role/agentkeys-data-role"
		add(a, mine, 1, audit.RoleOIDCJWT, audit.OutcomeOK)
		add(b, agent, 1, aws, audit.OutcomeOK) // same second, other chain
		add(a, other, 2, audit.RoleOIDCJWT, audit.OutcomeOK)
		add(b, agent, 3, audit.RoleOIDCJWT, audit.OutcomeScopeDenied)
		add(a, mine, 4, aws, audit.OutcomeSTSError)
		add(a, audit.UnknownWallet, 5, audit.RoleOIDCJWT, audit.OutcomeAuthFailed)

		q := audit.Query{Wallets: []string{mine, agent}, Limit: 100}
		got, err := a.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a4", "b3", "b1", "a1"} // time desc, then chain desc
		if len(got) != len(want) {
			t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
		}
		for i, r := range got {
			if id := r.Chain[len(r.Chain)-1:] + strconv.FormatInt(r.Time.Unix()-base.Unix(), 10); id != want[i] {
				t.Fatalf("row %d = %s (chain %s at +%s), want %s", i, id, r.Chain, r.Time.Sub(base), want[i])
			}
		}
		jwt := true
		if got, _ := a.Query(ctx, audit.Query{Wallets: q.Wallets, Limit: 100, JWT: &jwt}); len(got) != 2 {
			t.Fatalf("JWT only: %+v", got)
		}
		jwt = false
		if got, _ := a.Query(ctx, audit.Query{Wallets: q.Wallets, Limit: 100, JWT: &jwt, Outcome: audit.OutcomeOK}); len(got) != 1 || got[0].RequesterWallet != agent {
			t.Fatalf("AWS ok only: %+v", got)
		}
		if got, _ := a.Query(ctx, audit.Query{Wallets: q.Wallets, Limit: 100, Since: base.Add(3 * time.Second), Until: base.Add(4 * time.Second)}); len(got) != 1 || got[0].Outcome != audit.OutcomeScopeDenied {
			t.Fatalf("since/until: %+v", got)
		}
		// One row per page, continuing with the cursor of the last row.
		var walked []audit.Record
		page := audit.Query{Wallets: q.Wallets, Limit: 1}
		for range 10 {
			rs, err := a.Query(ctx, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				break
			}
			walked = append(walked, rs...)
			c, err := audit.ParseCursor(audit.CursorOf(rs[0]).String())
			if err != nil {
				t.Fatal(err)
			}
			page.Before = &c
		}
		if len(walked) != len(got) {
			t.Fatalf("walked %d rows, want %d", len(walked), len(got))
		}
		for i := range walked {
			if walked[i].Chain != got[i].Chain || walked[i].ID != got[i].ID {
				t.Fatalf("page %d = %s/%d, want %s/%d", i, walked[i].Chain, walked[i].ID, got[i].Chain, got[i].ID)
			}
		}
		if rs, err := a.Query(ctx, audit.Query{Limit: 10}); err != nil || len(rs) != 0 {
			t.Fatalf("no wallets: %v %v", rs, err)
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	f.Add("1800000000:12:default")
	f.Add("1:1:a.b-c_d")
	f.Add("::")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := audit.ParseCursor(s)
		if err != nil {
			return
		}
		back, err := audit.ParseCursor(c.String())
		if err != nil || back != c {
			t.Fatalf("%q parsed to %+v, which prints as %q and reads back as %+v, %v", s, c, c.String(), back, err)
		}
	})
}

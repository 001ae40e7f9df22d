package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/store"
)

// On SQLite each statement is prepared once and then reused: outside a
// transaction at its first run; inside one from its next run on (it is
// prepared in the background, since a transaction holding a connection
// must not wait for another). Past the cache's bound statements run
// unprepared, and answer all the same.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	s := open(t, engines[0].newDSN(t))
	prepared := func() int {
		s.stmts.mu.Lock()
		defer s.stmts.mu.Unlock()
		return s.stmts.n
	}
	m := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindMaster, LoginHash: "login", CreatedAt: time.Now()}
	if err := s.InsertWallet(ctx, m); err != nil {
		t.Fatal(err)
	}
	a := store.Wallet{Address: agentkeys.NewWallet(), Kind: store.KindAgent, Parent: m.Address, CreatedAt: time.Now()}
	if err := s.InsertWallet(ctx, a); err != nil {
		t.Fatal(err)
	}

	n := prepared()
	for range 3 {
		if w, err := s.Wallet(ctx, a.Address); err != nil || w.Parent != m.Address {
			t.Fatalf("wallet: %+v, %v", w, err)
		}
	}
	if got := prepared(); got != n+1 {
		t.Fatalf("three runs of one statement prepared %d statements, want 1", got-n)
	}

	subtree := func() {
		t.Helper()
		err := s.Tx(ctx, func(q store.Queries) error {
			tree, err := q.Subtree(ctx, m.Address)
			if err == nil && len(tree) != 2 {
				t.Errorf("subtree in a transaction: %v", tree)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	subtree()
	s.stmts.wg.Wait() // the background prepare
	if got := prepared(); got != n+2 {
		t.Fatalf("a new statement in a transaction prepared %d statements, want 1", got-n-1)
	}
	subtree()
	s.stmts.wg.Wait()
	if got := prepared(); got != n+2 {
		t.Fatalf("a prepared statement was prepared again in a transaction (%d statements)", got-n)
	}

	s.stmts.max = prepared()
	for range 2 {
		if l, err := s.Lineage(ctx, a.Address); err != nil || len(l) != 2 {
			t.Fatalf("lineage past the bound: %v, %v", l, err)
		}
	}
	if got := prepared(); got != s.stmts.max {
		t.Fatalf("the cache grew past its bound to %d", got)
	}
}

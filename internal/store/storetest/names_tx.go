package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/agentkeys/agentkeys/internal/store"
)

// testWalletNameConflictInTx: inside a transaction, a rename refused
// because another wallet holds the name changes nothing, and the
// transaction can carry on (here: pick another name) and commit.
func testWalletNameConflictInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := master(t, s)
	a, b := agent(t, s, m.Address), agent(t, s, m.Address)
	at := now()
	mustNil(t, s.SetWalletName(ctx, m.Address, a.Address, "helper", at))
	mustNil(t, s.SetWalletName(ctx, m.Address, b.Address, "bot", at))
	err := s.Tx(ctx, func(q store.Queries) error {
		if err := q.SetWalletName(ctx, m.Address, b.Address, "helper", at); !errors.Is(err, store.ErrConflict) {
			t.Errorf("taking a held name in a transaction: %v, want ErrConflict", err)
		}
		if n, err := q.WalletName(ctx, b.Address); err != nil || n != "bot" {
			t.Errorf("after the refused rename, in the transaction: WalletName(b) = %q, %v; want bot", n, err)
		}
		return q.SetWalletName(ctx, m.Address, b.Address, "helper-2", at)
	})
	mustNil(t, err)
	names, err := s.WalletNames(ctx, m.Address)
	mustNil(t, err)
	if len(names) != 2 || names[a.Address] != "helper" || names[b.Address] != "helper-2" {
		t.Fatalf("WalletNames(m) after the transaction = %v", names)
	}
}

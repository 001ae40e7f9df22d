package backend

import (
	"bytes"
	"strings"
	"testing"
)

// TestSealedCredentialBoundToWalletAndService: a sealed row copied in the
// database to another wallet, or to another service of the same wallet,
// does not open there. The read fails closed (500, no value, the row's
// failure logged without the value) instead of handing one wallet's
// secret to another.
func TestSealedCredentialBoundToWalletAndService(t *testing.T) {
	e, m, a := newAgentEnv(t, "alice", "openrouter", "openai")
	b := e.agent(m, []string{"openrouter"}, false)
	v := secret()
	e.storeCredential(m.Token, a.Wallet, "openrouter", v)
	// The destinations hold values of their own, then get a's sealed row.
	e.storeCredential(m.Token, b.Wallet, "openrouter", secret())
	e.storeCredential(m.Token, a.Wallet, "openai", secret())
	row, err := e.store.Credential(ctx, a.Wallet, "openrouter")
	if err != nil {
		t.Fatal(err)
	}

	copyTo := row
	copyTo.Wallet = b.Wallet
	if err := e.store.PutCredential(ctx, copyTo); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.ReadCredential(ctx, b.Token, b.Wallet, "openrouter")
	if bytes.Equal(got, v) {
		t.Fatal("a sealed row copied to another wallet opens there and returns the first wallet's secret")
	}
	wantStatus(t, err, 500)

	copyTo = row
	copyTo.Service = "openai"
	if err := e.store.PutCredential(ctx, copyTo); err != nil {
		t.Fatal(err)
	}
	got, err = e.client.ReadCredential(ctx, a.Token, a.Wallet, "openai")
	if bytes.Equal(got, v) {
		t.Fatal("a sealed row copied to another service opens there")
	}
	wantStatus(t, err, 500)

	// The original still opens, and nothing logged carries the value.
	if got, err := e.client.ReadCredential(ctx, a.Token, a.Wallet, "openrouter"); err != nil || !bytes.Equal(got, v) {
		t.Fatalf("the original row no longer opens: %v", err)
	}
	if strings.Contains(e.logs.String(), string(v)) {
		t.Fatal("the secret appears in the backend's logs")
	}
}

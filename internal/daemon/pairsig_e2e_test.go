package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/authreq"
	"github.com/agentkeys/agentkeys/internal/authreq/relaytest"
)

// TestPairVerifiesTheApprovalSignature drives the daemon binary through a
// relay: untouched, the daemon sends a box key, receives only a sealed
// session and pairs; when the relay flips a signature byte or hands it
// another valid session sealed to its key, the daemon refuses, stores
// nothing and exits non-zero.
func TestPairVerifiesTheApprovalSignature(t *testing.T) {
	ctx := context.Background()
	b := startBackend(t)
	decoy, err := b.client.CreateChild(ctx, b.master.Token, agentkeys.Scope{Services: []string{"openrouter"}}, 0)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("good", func(t *testing.T) {
		r := relaytest.Start(t, b.url, nil)
		home := t.TempDir()
		sessFile := filepath.Join(home, "agent.json")
		d := startDaemon(t, home, nil, "--backend", r.URL, "--no-socket", "--session-file", sessFile, "--pair-timeout", "60")
		m := d.waitFor(pairLine, 30*time.Second)
		if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
			t.Fatal(err)
		}
		d.waitReady()
		box, clearSeen := r.Box(), r.SawClearSession()
		if len(box) != authreq.BoxKeySize || clearSeen {
			t.Fatalf("daemon sent box key of %d bytes; session relayed in clear: %v", len(box), clearSeen)
		}
		if !strings.Contains(d.stderr(), `"msg":"approval signature verified"`) {
			t.Fatalf("no verification logged:\n%s", d.stderr())
		}
		if _, err := os.Stat(sessFile); err != nil {
			t.Fatal(err)
		}
	})

	for name, mutate := range map[string]relaytest.Mutate{
		"flipped signature":   relaytest.FlipSignature,
		"substituted session": relaytest.SubstituteSession(map[string]any{"token": decoy.Token.Reveal(), "wallet": string(decoy.Wallet), "expires_at": decoy.ExpiresAt.Unix()}),
	} {
		t.Run(name, func(t *testing.T) {
			url := relaytest.Start(t, b.url, mutate).URL
			home := t.TempDir()
			sessFile := filepath.Join(home, "agent.json")
			d := startDaemon(t, home, nil, "--backend", url, "--no-socket", "--session-file", sessFile, "--pair-timeout", "60")
			m := d.waitFor(pairLine, 30*time.Second)
			if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
				t.Fatal(err)
			}
			code := d.wait(30 * time.Second)
			if code != 1 || !strings.Contains(d.stderr(), "refusing the pair session") || !strings.Contains(d.stderr(), "approval not verified") {
				t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
			}
			if _, err := os.Stat(sessFile); !os.IsNotExist(err) {
				t.Fatalf("a refused session was stored: %v", err)
			}
			if strings.Contains(d.stderr(), decoy.Token.Reveal()) {
				t.Fatal("the substituted token reached the log")
			}
		})
	}
}

// TestPairingKeyPin: with --pairing-key-id the daemon trusts only that key;
// a backend that does not publish it is refused before any code is shown.
func TestPairingKeyPin(t *testing.T) {
	ctx := context.Background()
	b := startBackend(t)
	keys, err := b.client.PairingKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	other := startBackend(t) // another seal key, hence another pairing key
	d := startDaemon(t, t.TempDir(), []string{"AGENTKEYS_PAIRING_KEY_ID=" + keys[0].ID}, "--backend", other.url, "--no-socket", "--pair-timeout", "60")
	if code := d.wait(30 * time.Second); code != 1 || pairLine.MatchString(d.stderr()) || !strings.Contains(d.stderr(), "pinned pairing key") {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}

	d = startDaemon(t, t.TempDir(), nil, "--backend", b.url, "--no-socket", "--pair-timeout", "60", "--pairing-key-id", keys[0].ID)
	m := d.waitFor(pairLine, 30*time.Second)
	if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	if !strings.Contains(d.stderr(), keys[0].ID) {
		t.Fatalf("verified key not logged:\n%s", d.stderr())
	}
}

package daemon

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// TestPairReadResumeRecover drives the built daemon binary against a real
// backend: pair (code + OTP on stderr, master approves), read in scope,
// denied out of scope, resume on restart, refuse a revoked session, then
// recover by alias after the session is lost.
func TestPairReadResumeRecover(t *testing.T) {
	ctx := context.Background()
	b := startBackend(t)
	home := t.TempDir()
	sessFile := filepath.Join(home, "agent.json")
	sock := filepath.Join(home, "s", "agentkeys.sock")
	const secret = "sk-or-v1-e2e-secret-0123456789abcdef"

	d := startDaemon(t, home, nil, "--backend", b.url, "--services", "openrouter", "--session-file", sessFile, "--socket", sock, "--pair-timeout", "60")
	m := d.waitFor(pairLine, 30*time.Second)
	code, otp := m[1], m[2]
	if n := len(pairLine.FindAllString(d.stderr(), -1)); n != 1 {
		t.Fatalf("%d pair lines on stderr, want exactly 1", n)
	}
	pending, err := b.client.FetchAuthRequest(ctx, b.master.Token, code)
	if err != nil {
		t.Fatal(err)
	}
	if pending.RequestType != "Pair" || pending.RequestedScope == nil || !slices.Equal(pending.RequestedScope.Services, []string{"openrouter"}) {
		t.Fatalf("master sees %+v", pending)
	}
	if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, code, otp); err != nil {
		t.Fatal(err)
	}
	d.waitReady()

	ks, err := keychain.ReadSessionFile(sessFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(sessFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode %04o", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(sock); fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %04o", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(sock)); fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %04o", fi.Mode().Perm())
	}
	b.store(t, ks.Wallet, "openrouter", secret)
	b.store(t, ks.Wallet, "openai", "sk-openai-out-of-scope-value")

	c := dial(t, sock)
	st, err := c.Status(ctx)
	if err != nil || st.Wallet != ks.Wallet || st.Scope == nil || !slices.Equal(st.Scope.Services, []string{"openrouter"}) {
		t.Fatalf("status %+v %v", st, err)
	}
	v, err := c.Read(ctx, "openrouter")
	if err != nil || string(v) != secret {
		t.Fatalf("read openrouter: %q %v", v, err)
	}
	if _, err := c.Read(ctx, "openai"); rpcCode(err) != CodeDenied {
		t.Fatalf("read openai: %v, want DENIED", err)
	}
	if _, err := c.Read(ctx, "anthropic"); rpcCode(err) != CodeDenied && rpcCode(err) != CodeNotFound {
		t.Fatalf("read anthropic: %v", err)
	}
	list, err := c.List(ctx)
	if err != nil || !slices.Equal(list, []string{"openrouter"}) {
		t.Fatalf("list %v %v", list, err)
	}
	c.Close()
	d.stop()
	if code := d.wait(10 * time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}

	// Restart without --session-file: the stored daemon-<wallet> session is
	// found and resumed, no pairing.
	d2 := startDaemon(t, home, nil, "--backend", b.url, "--socket", sock)
	d2.waitReady()
	if pairLine.MatchString(d2.stderr()) {
		t.Fatal("restart paired again instead of resuming")
	}
	if v, err := dial(t, sock).Read(ctx, "openrouter"); err != nil || string(v) != secret {
		t.Fatalf("read after resume: %v", err)
	}
	d2.stop()
	d2.wait(10 * time.Second)

	// A revoked session is reported, not silently used or replaced.
	if _, err := b.client.RevokeWallet(ctx, b.master.Token, ks.Wallet); err != nil {
		t.Fatal(err)
	}
	d3 := startDaemon(t, home, nil, "--backend", b.url, "--socket", sock, "--session-file", sessFile)
	if code := d3.wait(20 * time.Second); code == 0 {
		t.Fatal("daemon started with a revoked session")
	}
	if !strings.Contains(d3.stderr(), "no longer valid") || pairLine.MatchString(d3.stderr()) {
		t.Fatalf("revoked session: stderr:\n%s", d3.stderr())
	}

	// Lose the session, link an alias, recover through the master.
	os.Remove(sessFile)
	os.RemoveAll(filepath.Join(home, "config", "agentkeys", SessionIDPrefix+string(ks.Wallet)))
	if err := b.client.LinkIdentity(ctx, b.master.Token, "alias", "e2e-agent", ks.Wallet); err != nil {
		t.Fatal(err)
	}
	d4 := startDaemon(t, home, nil, "--backend", b.url, "--recover", "e2e-agent", "--session-file", sessFile, "--socket", sock)
	m = d4.waitFor(recoverLine, 30*time.Second)
	if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err != nil {
		t.Fatal(err)
	}
	d4.waitReady()
	ks2, err := keychain.ReadSessionFile(sessFile)
	if err != nil || ks2.Wallet != ks.Wallet || ks2.Token == ks.Token {
		t.Fatalf("recovered session %v (%v)", ks2.Wallet, err)
	}
	if v, err := dial(t, sock).Read(ctx, "openrouter"); err != nil || string(v) != secret {
		t.Fatalf("read after recovery: %v", err)
	}
	d4.stop()

	// No secret in any log line: not the credential, not a session token.
	for i, p := range []*daemonProc{d, d2, d3, d4} {
		out := p.stderr()
		for _, s := range []string{secret, ks.Token.Reveal(), ks2.Token.Reveal(), b.master.Token.Reveal()} {
			if strings.Contains(out, s) {
				t.Fatalf("daemon run %d leaked a secret on stderr", i)
			}
		}
	}
}

func TestPairWrongOTPLocks(t *testing.T) {
	ctx := context.Background()
	b := startBackend(t)
	home := t.TempDir()
	d := startDaemon(t, home, nil, "--backend", b.url, "--services", "openrouter", "--no-socket", "--pair-timeout", "60")
	m := d.waitFor(pairLine, 30*time.Second)
	wrong := "000000"
	if m[2] == wrong {
		wrong = "111111"
	}
	for i := range 5 {
		if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], wrong); err == nil {
			t.Fatalf("wrong OTP %d accepted", i)
		}
	}
	if _, err := b.client.ApproveAuthRequest(ctx, b.master.Token, m[1], m[2]); err == nil {
		t.Fatal("right OTP accepted after lock")
	}
	if code := d.wait(30 * time.Second); code == 0 {
		t.Fatal("daemon exited 0 after lock")
	}
	if !strings.Contains(d.stderr(), "locked") {
		t.Fatalf("stderr does not say locked:\n%s", d.stderr())
	}
}

func TestPairDenied(t *testing.T) {
	b := startBackend(t)
	d := startDaemon(t, t.TempDir(), nil, "--backend", b.url, "--no-socket")
	m := d.waitFor(pairLine, 30*time.Second)
	if err := b.client.DenyAuthRequest(context.Background(), b.master.Token, m[1]); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(30 * time.Second); code != 3 || !strings.Contains(d.stderr(), "denied") {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}
}

func TestPairTimeout(t *testing.T) {
	b := startBackend(t)
	d := startDaemon(t, t.TempDir(), nil, "--backend", b.url, "--no-socket", "--pair-timeout", "2s")
	d.waitFor(pairLine, 30*time.Second)
	if code := d.wait(30 * time.Second); code != 5 || !strings.Contains(d.stderr(), "timed out") {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}
}

func TestPairCodeExpires(t *testing.T) {
	b := startBackendWith(t, backend.Options{AuthRequestTTL: 2 * time.Second, AwaitWindow: 500 * time.Millisecond})
	d := startDaemon(t, t.TempDir(), nil, "--backend", b.url, "--no-socket", "--pair-timeout", "60")
	m := d.waitFor(pairLine, 30*time.Second)
	if code := d.wait(30 * time.Second); code != 5 || !regexp.MustCompile(`code \S+ expired before it was approved`).MatchString(d.stderr()) {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}
	if _, err := b.client.ApproveAuthRequest(context.Background(), b.master.Token, m[1], m[2]); err == nil {
		t.Fatal("expired code approved")
	}
}

func TestPairBackendUnreachable(t *testing.T) {
	d := startDaemon(t, t.TempDir(), nil, "--backend", "http://127.0.0.1:1", "--no-socket", "--pair-timeout", "2s")
	if code := d.wait(30 * time.Second); code == 0 || !strings.Contains(d.stderr(), "could not reach the backend") {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}
}

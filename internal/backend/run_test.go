package backend

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

func TestStartCreatesPrivateFilesAndDrainsOnShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	logs := &testkit.SyncBuffer{}
	log := newTestLogger(logs)
	r, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir, Login: LoginMock}, log)
	if err != nil {
		t.Fatal(err)
	}
	c, err := backendclient.New(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSession(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testkit.WantPerm(t, dir, 0o700)
	testkit.WantPerm(t, filepath.Join(dir, "seal.key"), 0o600)
	testkit.WantPerm(t, filepath.Join(dir, "backend.db"), 0o600)

	// An in-flight request finishes; new connections are refused after.
	release := make(chan struct{})
	started := make(chan struct{})
	r.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		w.Write([]byte("done"))
	})
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(r.URL() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(context.Background()) }()
	select {
	case <-shut:
		t.Fatal("shutdown returned while a request was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("in-flight request failed during drain: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(r.URL() + "/health"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestNonLoopbackBindWarns(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	r, err := Start(context.Background(), Config{Listen: "0.0.0.0:0", DataDir: t.TempDir(), Login: LoginMock}, newTestLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	if !strings.Contains(logs.String(), "NON-LOOPBACK") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("no loud warning for a plain-HTTP non-loopback bind: %s", logs)
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no data dir":       {Listen: "127.0.0.1:0", Login: LoginMock},
		"half TLS":          {Listen: "127.0.0.1:0", DataDir: t.TempDir(), TLSCertFile: "x", Login: LoginMock},
		"unbindable listen": {Listen: "256.0.0.1:1", DataDir: t.TempDir(), Login: LoginMock},
		"no login":          {Listen: "127.0.0.1:0", DataDir: t.TempDir()},
		"mock and oidc":     {Listen: "127.0.0.1:0", DataDir: t.TempDir(), Login: LoginMock, LoginOIDCIssuer: "https://idp.example"},
		"oidc, no issuer":   {Listen: "127.0.0.1:0", DataDir: t.TempDir(), Login: LoginOIDC},
		"unknown login":     {Listen: "127.0.0.1:0", DataDir: t.TempDir(), Login: "password"},
	} {
		if r, err := Start(context.Background(), cfg, nil); err == nil {
			r.Shutdown(context.Background())
			t.Errorf("%s: started", name)
		}
	}
}

func TestCommandRefusesBadEnvironment(t *testing.T) {
	t.Setenv("AGENTKEYS_SESSION_TTL", "forever")
	cmd := Command()
	cmd.SetArgs([]string{"--data-dir", t.TempDir()})
	cmd.SetErr(&testkit.SyncBuffer{})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "AGENTKEYS_SESSION_TTL") {
		t.Fatalf("bad AGENTKEYS_SESSION_TTL: err = %v, want a refusal naming it", err)
	}
	t.Setenv("AGENTKEYS_SESSION_TTL", "1s")
	cmd = Command()
	cmd.SetArgs([]string{"--data-dir", t.TempDir()})
	if err := cmd.Execute(); err == nil {
		t.Fatal("1s session TTL accepted")
	}
}

// TestNewNeedsALoginVerifier: there is no default login; a Server built
// without one would otherwise have to guess (it used to guess mock).
func TestNewNeedsALoginVerifier(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Store: st, Sealer: sealer}); err == nil || !strings.Contains(err.Error(), "Login") {
		t.Fatalf("New without Login: %v", err)
	}
}

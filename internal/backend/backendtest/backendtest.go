// Package backendtest runs real backends on loopback for other packages'
// tests, the way net/http/httptest runs handlers: Serve builds one from
// Options on an httptest server, Start runs one as agentkeys-backend does.
// Each is stopped when the test ends. Only test code imports it.
package backendtest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
)

// Serve runs a backend built from o on an httptest server and returns its
// URL. What o leaves unset is filled for a test: a fresh SQLite store and
// seal key in t's temporary directory, the mock login, and no login rate
// limit (a zero LoginRate becomes -1).
func Serve(t testing.TB, o backend.Options) string {
	t.Helper()
	dir := t.TempDir()
	if o.Store == nil {
		st, err := sqlstore.Open(context.Background(), filepath.Join(dir, "backend.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		o.Store = st
	}
	if o.Sealer == nil {
		sealer, err := seal.LoadOrCreateKeyFile(filepath.Join(dir, "seal.key"))
		if err != nil {
			t.Fatal(err)
		}
		o.Sealer = sealer
	}
	if o.Login == nil {
		o.Login = backend.MockLogin{}
	}
	if o.LoginRate == 0 {
		o.LoginRate = -1
	}
	srv, err := backend.New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

// Start runs the backend from cfg as agentkeys-backend does, on a loopback
// port and with its data in t's temporary directory unless cfg names them.
func Start(t testing.TB, cfg backend.Config) *backend.Running {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	r, err := backend.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return r
}

// StartMock is Start with the mock login, the mock inbox and no login
// rate limit: any identity string logs in.
func StartMock(t testing.TB) *backend.Running {
	t.Helper()
	return Start(t, backend.Config{LoginRate: -1, MockInbox: true, Login: backend.LoginMock})
}

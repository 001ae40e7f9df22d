package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/seal"
	"github.com/agentkeys/agentkeys/internal/sqldb"
	"github.com/agentkeys/agentkeys/internal/store"
	"github.com/agentkeys/agentkeys/internal/store/sqlstore"
)

// DefaultListen is the backend's default address: loopback only.
const DefaultListen = "127.0.0.1:8090"

// Config is how an operator runs the backend.
type Config struct {
	Listen string
	// DataDir holds the SQLite database and the seal key unless
	// DatabaseURL / SealKeyFile say otherwise. Created 0700.
	DataDir string
	// DatabaseURL is a postgres:// URL, or empty for SQLite in DataDir.
	DatabaseURL string
	// SealKeyFile holds the credential key-encryption key (64 hex chars,
	// 0600); created on first start when missing.
	SealKeyFile     string
	SessionTTL      time.Duration
	SweepInterval   time.Duration
	ShutdownTimeout time.Duration
	LoginRate       float64
	TLSCertFile     string
	TLSKeyFile      string
	// MockInbox serves the unauthenticated /mock/inbox/* test scaffolding.
	MockInbox bool
	// Login is how masters log in: LoginOIDC (implied by LoginOIDCIssuer)
	// or LoginMock, which trusts any auth_token and is for `agentkeys dev`
	// and tests only. There is no default: without one Start refuses.
	Login string
	// LoginOIDCIssuer makes POST /session/create accept only ID tokens
	// from this provider for LoginOIDCClientID.
	LoginOIDCIssuer   string
	LoginOIDCClientID string
	// Frontdoor: trusted proxies, public URL, per-wallet limit, quotas.
	Frontdoor Frontdoor
}

// Login methods (Config.Login, --login, AGENTKEYS_LOGIN).
const (
	LoginMock = "mock"
	LoginOIDC = "oidc"
)

// ErrNoLogin is returned when no login method is configured.
var ErrNoLogin = errors.New("no master login method configured: give an OpenID provider with " +
	"--login-oidc-issuer URL --login-oidc-client-id ID (or AGENTKEYS_LOGIN_OIDC_ISSUER and AGENTKEYS_LOGIN_OIDC_CLIENT_ID); " +
	"--login mock (AGENTKEYS_LOGIN=mock) lets anyone who can reach the backend log in as any master and is for local development and tests only")

// loginMethod resolves Config.Login against the OIDC settings.
func (c Config) loginMethod() (string, error) {
	switch c.Login {
	case "":
		if c.LoginOIDCIssuer == "" {
			return "", ErrNoLogin
		}
		return LoginOIDC, nil
	case LoginOIDC:
		if c.LoginOIDCIssuer == "" {
			return "", errors.New("--login oidc needs --login-oidc-issuer URL and --login-oidc-client-id ID (AGENTKEYS_LOGIN_OIDC_ISSUER, AGENTKEYS_LOGIN_OIDC_CLIENT_ID)")
		}
		return LoginOIDC, nil
	case LoginMock:
		if c.LoginOIDCIssuer != "" || c.LoginOIDCClientID != "" {
			return "", errors.New("--login mock conflicts with --login-oidc-issuer/--login-oidc-client-id: choose one login method")
		}
		return LoginMock, nil
	}
	return "", fmt.Errorf("--login %q: want mock or oidc", c.Login)
}

// Validate checks the whole configuration before anything is created on
// disk or bound, and reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.SessionTTL < time.Minute {
		bad("--session-ttl %v is too short (minimum 1m)", c.SessionTTL)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("give both --tls-cert and --tls-key, or neither")
	} else if c.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			bad("--tls-cert/--tls-key: %v", err)
		}
	}
	if _, err := c.loginMethod(); err != nil {
		errs = append(errs, err)
	}
	if c.DataDir == "" && (c.DatabaseURL == "" || c.SealKeyFile == "") {
		bad("--data-dir is required (or both --database-url and --seal-key-file)")
	}
	if c.DatabaseURL != "" {
		if sqldb.IsPostgres(c.DatabaseURL) {
			if u, err := url.Parse(c.DatabaseURL); err != nil || u.Host == "" {
				bad("--database-url is not a URL like postgres://user@host:5432/db")
			}
		} else if _, err := sqldb.SQLitePath(c.DatabaseURL); err != nil {
			bad("--database-url: %v", err)
		}
	}
	if _, err := newFrontdoor(c.Frontdoor); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Running is a started backend.
type Running struct {
	srv      *http.Server
	ln       net.Listener
	store    store.Store
	log      *slog.Logger
	stop     context.CancelFunc
	wg       sync.WaitGroup
	serveErr <-chan error
	timeout  time.Duration
	tls      bool
}

// Addr is the address the backend listens on.
func (r *Running) Addr() string { return r.ln.Addr().String() }

// URL is the backend's base URL.
func (r *Running) URL() string {
	scheme := "http"
	if r.tls {
		scheme = "https"
	}
	return scheme + "://" + r.Addr()
}

// Start opens the store and the seal key, binds the listener and serves in
// the background. Everything that can fail without writing (the
// configuration, the TLS key pair, the login provider, the listen address,
// the database connection) is checked before the data directory, the
// database file or a new seal key file is created.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Running, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	method, _ := cfg.loginMethod()
	dsn := cfg.DatabaseURL
	if dsn == "" {
		dsn = filepath.Join(cfg.DataDir, "backend.db")
	}
	keyFile := cfg.SealKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(cfg.DataDir, "seal.key")
	}
	var (
		login LoginVerifier = MockLogin{}
		err   error
	)
	if method == LoginOIDC {
		if login, err = NewOIDCLogin(ctx, cfg.LoginOIDCIssuer, cfg.LoginOIDCClientID); err != nil {
			return nil, err
		}
	} else {
		log.Warn("MASTER LOGIN IS IN MOCK MODE (--login mock): any auth_token names an identity, so anyone who can reach this backend can log in as any master; for local development and tests only")
	}
	fd := cfg.Frontdoor
	// DNS-rebinding protection is for a server a browser can reach as
	// loopback (or one with a declared public name); a backend listening
	// on all interfaces without --public-url is reached by names only its
	// operator knows.
	fd.checkHost = listensOnLoopback(cfg.Listen) || fd.PublicURL != ""
	if !fd.checkHost {
		log.Warn("Host header not checked: the backend listens beyond loopback and --public-url is not set")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	// An existing seal key is checked before the database is touched; a
	// missing one is created only once the database has opened.
	var sealer *seal.Sealer
	if _, err := os.Stat(keyFile); err == nil {
		if sealer, err = seal.LoadOrCreateKeyFile(keyFile); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if cfg.DataDir != "" && !sqldb.IsPostgres(dsn) {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			ln.Close()
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	if sealer == nil { // created 0600 in a 0700 directory
		if sealer, err = seal.LoadOrCreateKeyFile(keyFile); err != nil {
			ln.Close()
			st.Close()
			return nil, err
		}
	}
	s, err := New(Options{Store: st, Sealer: sealer, Logger: log, SessionTTL: cfg.SessionTTL, LoginRate: cfg.LoginRate, MockInbox: cfg.MockInbox, Login: login,
		Frontdoor: fd})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	useTLS := cfg.TLSCertFile != ""
	if !useTLS && !isLoopback(ln.Addr()) {
		log.Warn("LISTENING ON A NON-LOOPBACK ADDRESS WITHOUT TLS: session tokens and credentials cross the network in clear; put a TLS proxy in front or pass --tls-cert/--tls-key",
			"addr", ln.Addr().String())
	}
	r := &Running{
		srv: jsonhttp.NewServer(s.Handler(), log),
		ln:  ln, store: st, log: log,
		timeout: cfg.ShutdownTimeout, tls: useTLS,
	}
	if r.timeout <= 0 {
		r.timeout = 30 * time.Second
	}
	sweepCtx, stop := context.WithCancel(context.Background())
	r.stop = stop
	interval := cfg.SweepInterval
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		s.sweep(sweepCtx, interval)
	}()
	r.serveErr = jsonhttp.Serve(r.srv, ln, cfg.TLSCertFile, cfg.TLSKeyFile)
	log.Info("agentkeys-backend listening", "addr", r.URL(), "database", sqldb.EngineOf(dsn).String(), "seal_key_id", sealer.KeyID())
	return r, nil
}

// Shutdown stops accepting requests, drains those in flight (up to the
// configured timeout or ctx), stops the sweeper and closes the store.
func (r *Running) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	r.stop()
	r.wg.Wait()
	return errors.Join(err, r.store.Close())
}

// Run starts the backend and serves until ctx is cancelled (SIGTERM in the
// binary), then drains and exits.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	r, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return jsonhttp.Drain(ctx, log, r.serveErr, r.timeout, r.Shutdown)
}

// sweep deletes expired sessions every interval until ctx ends.
func (s *Server) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.sweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sweepOnce(ctx context.Context) {
	now := s.now()
	for _, sw := range []struct {
		what string
		fn   func(context.Context, time.Time) (int, error)
	}{
		{"broker tokens", s.store.DeleteExpiredBrokerTokens},
		{"sessions", s.store.DeleteExpiredSessions},
		{"auth requests", s.store.DeleteExpiredAuthRequests},
		{"rendezvous slots", s.store.DeleteExpiredRendezvous},
	} {
		n, err := sw.fn(ctx, now)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("sweep failed", "what", sw.what, "err", err)
		case n > 0:
			s.log.Info("swept expired rows", "what", sw.what, "count", n)
		}
	}
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

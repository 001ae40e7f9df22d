package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/services"
)

// Placeholder is the key SDKs get in <SERVICE>_API_KEY when they call
// through the gateway: it is no secret, the gateway replaces it.
const Placeholder = "agentkeys-gateway-placeholder"

// CheckAddr validates a gateway address: a loopback host:port, or
// unix:PATH.
func CheckAddr(addr string) error {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if p == "" {
			return errors.New("--gateway unix:PATH: empty path")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--gateway %q: want 127.0.0.1:PORT or unix:PATH", addr)
	}
	if !jsonhttp.IsLoopbackHost(host) {
		return fmt.Errorf("--gateway %q: the gateway binds to loopback only (127.0.0.1, [::1] or localhost)", addr)
	}
	return nil
}

// Listen binds addr (CheckAddr's forms). A Unix socket is made mode 0600
// (its directory, if created, 0700); a stale socket file is replaced.
func Listen(addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(p, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// BaseURL is the URL agents use for a listener: http://HOST:PORT, or
// "" for a Unix socket.
func BaseURL(ln net.Listener) string {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return "http://" + a.String()
	}
	return ""
}

// Server wraps the gateway in an http.Server with header and idle
// timeouts (no write timeout: streams last as long as Options.Timeout).
func Server(g *Gateway, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// Serve serves g on ln until ctx ends.
func Serve(ctx context.Context, g *Gateway, ln net.Listener, log *slog.Logger) error {
	srv := Server(g, log)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Env returns the variables that point SDKs at a gateway at base
// (http://127.0.0.1:PORT) for the named services: <SERVICE>_BASE_URL
// (base/<service><path>) and a placeholder <SERVICE>_API_KEY.
func Env(base string, svcs []services.Service, names []string) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var env []string
	for _, s := range svcs {
		if !want[s.Name] {
			continue
		}
		if s.BaseURLEnv != "" {
			env = append(env, s.BaseURLEnv+"="+base+"/"+s.Name+s.BaseURLPath)
		}
		if s.KeyEnv != "" {
			env = append(env, s.KeyEnv+"="+Placeholder)
		}
	}
	return env
}

// ServicesFromEnv returns the services the gateway serves: the service
// table with each AGENTKEYS_<SERVICE>_API_URL applied (read now, once, and
// logged at WARN: whoever sets the daemon's environment decides where the
// keys go), plus the extra NAME=ORIGIN,AUTH specs.
func ServicesFromEnv(getenv func(string) string, extra []string, log *slog.Logger) ([]services.Service, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var out []services.Service
	for _, name := range services.Names() {
		s, _ := services.Lookup(name, getenv)
		if services.Overridden(name, getenv) {
			if _, err := services.Origin(s.APIBase); err != nil {
				return nil, fmt.Errorf("%s_API_URL: %w", services.EnvPrefix(name), err)
			}
			log.Warn("gateway: API origin overridden from the environment (operator-trusted: the key is sent there)",
				"service", name, "origin", s.APIBase)
		}
		out = append(out, s)
	}
	for _, spec := range extra {
		s, err := services.ParseSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("extra service: %w", err)
		}
		for i := range out {
			if out[i].Name == s.Name {
				return nil, fmt.Errorf("extra service %s: already in the service table", s.Name)
			}
		}
		log.Warn("gateway: extra service declared (operator-trusted: the key is sent there)", "service", s.Name, "origin", s.APIBase, "auth", s.Auth.String())
		out = append(out, s)
	}
	return out, nil
}

package jsonhttp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// NewServer returns an http.Server for handler with the timeouts every
// AgentKeys server uses: slow-header and slow-body clients are cut off, a
// response may take a minute (the longest long poll is well under that),
// idle keep-alive connections are closed after two minutes, and headers are
// capped at 16 KiB. net/http's own error lines go to log at warn level.
func NewServer(handler http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Serve serves srv on ln in the background, with TLS when certFile is set,
// and returns a channel that receives the result once serving stops: nil
// after Shutdown (graceful drain), the listener's error otherwise.
func Serve(srv *http.Server, ln net.Listener, certFile, keyFile string) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		if certFile != "" {
			err = srv.ServeTLS(ln, certFile, keyFile)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return done
}

// Drain waits until ctx ends (SIGTERM in a binary) or serving stops by
// itself (serveErr, from Serve), then calls shutdown with a context bounded
// by grace to drain in-flight requests. It returns the serving error
// ("serve: …") if serving failed, else the shutdown error ("shutdown: …").
func Drain(ctx context.Context, log *slog.Logger, serveErr <-chan error, grace time.Duration, shutdown func(context.Context) error) error {
	var serr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight requests", "grace", grace.String())
	case serr = <-serveErr:
		if serr != nil {
			log.Error("server stopped", "err", serr)
			serr = fmt.Errorf("serve: %w", serr)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := shutdown(sctx); err != nil && serr == nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if serr == nil {
		log.Info("stopped")
	}
	return serr
}

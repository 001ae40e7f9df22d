package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/agentkeys/agentkeys/internal/gateway"
	"github.com/agentkeys/agentkeys/internal/services"
)

// NewGateway returns a gateway for svc's session: the agent's scope, its
// credentials read through svc (so the backend checks scope and
// revocation on every read), cut when the session dies, every call
// audited in batches to the backend (POST /audit/gateway). It runs until
// ctx ends or Shutdown.
func NewGateway(ctx context.Context, svc *Service, list []services.Service, log *slog.Logger) (*gateway.Gateway, error) {
	sess := svc.Session()
	return gateway.NewAudited(ctx, gateway.Options{
		Services: list,
		Scope:    sess.Scope,
		Source:   gateway.SourceFunc(svc.Read),
		Revoked:  svc.Revoked(),
		Log:      log,
	}, svc.o.Backend, sess.Token, "")
}

// ServeGateway serves g on addr (loopback host:port or unix:PATH) until
// ctx ends. It returns the listener's base URL ("" for a Unix socket) once
// listening, and the channel that receives Serve's end.
func ServeGateway(ctx context.Context, g *gateway.Gateway, addr string, log *slog.Logger) (string, <-chan error, error) {
	ln, err := gateway.Listen(addr)
	if err != nil {
		return "", nil, fmt.Errorf("--gateway: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- gateway.Serve(ctx, g, ln, log) }()
	return gateway.BaseURL(ln), errc, nil
}

// GatewayEnv is what a child started next to a gateway at base gets: the
// SDKs' base-URL variables for the services the gateway serves and a
// placeholder key each.
func GatewayEnv(base string, g *gateway.Gateway, list []services.Service) []string {
	return gateway.Env(base, list, g.Services())
}

// gatewayBanner is printed on stderr when the gateway listens.
func gatewayBanner(ln string, addr string, names []string) string {
	where := ln
	if where == "" {
		where = addr
	}
	return fmt.Sprintf("Gateway: %s/<service>/... (services: %s)\n", where, strings.Join(names, ", "))
}

// ChildGateway serves a gateway for svc's session on 127.0.0.1 (a free
// port) and returns the variables for a child that should call APIs
// through it (GatewayEnv) and the function that stops it. It is what
// `agentkeys-daemon run --gateway` needs: the child gets base URLs and
// placeholder keys, never a stored credential.
func ChildGateway(ctx context.Context, svc *Service, extra []string, log *slog.Logger) (env []string, stop func(), err error) {
	list, err := gateway.ServicesFromEnv(nil, extra, log)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	g, err := NewGateway(ctx, svc, list, log)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	base, _, err := ServeGateway(ctx, g, "127.0.0.1:0", log)
	if err != nil {
		cancel()
		g.Shutdown()
		return nil, nil, err
	}
	return GatewayEnv(base, g, list), func() {
		cancel()
		g.Shutdown()
	}, nil
}

// runGatewayHook is the GatewayFunc of a daemon serving its gateway at
// base: of the services a run would inject, those the gateway serves are
// replaced by their SDK variables (base URL, placeholder key).
func runGatewayHook(base string, g *gateway.Gateway, list []services.Service) GatewayFunc {
	return func(want []string) ([]string, []string, error) {
		if base == "" {
			return nil, nil, errorf(CodeNoGateway, "the gateway listens on a Unix socket; SDK base URLs need --gateway 127.0.0.1:PORT")
		}
		var covered []string
		for _, name := range g.Services() {
			if slices.Contains(want, name) {
				covered = append(covered, name)
			}
		}
		return gateway.Env(base, list, covered), covered, nil
	}
}

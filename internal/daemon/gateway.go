package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/gateway"
	"github.com/agentkeys/agentkeys/internal/services"
)

// GatewayServices returns the services the gateway serves: the service
// table with each AGENTKEYS_<SERVICE>_API_URL applied (read now, once, and
// logged at WARN: whoever sets the daemon's environment decides where the
// keys go), plus the extra NAME=ORIGIN,AUTH specs.
func GatewayServices(getenv func(string) string, extra []string, log *slog.Logger) ([]services.Service, error) {
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
			return nil, fmt.Errorf("--gateway-service: %w", err)
		}
		for i := range out {
			if out[i].Name == s.Name {
				return nil, fmt.Errorf("--gateway-service %s: already in the service table", s.Name)
			}
		}
		log.Warn("gateway: extra service declared (operator-trusted: the key is sent there)", "service", s.Name, "origin", s.APIBase, "auth", s.Auth.String())
		out = append(out, s)
	}
	return out, nil
}

// Gateway is a running gateway of the daemon's session.
type Gateway struct {
	*gateway.Gateway
	batcher *gateway.Batcher
	stop    context.CancelFunc
	done    chan struct{}
}

// NewGateway returns a gateway for svc's session: the agent's scope, its
// credentials read through svc (so the backend checks scope and
// revocation on every read), cut when the session dies, every call
// audited in batches to the backend (POST /audit/gateway). It runs until
// ctx ends or Close.
func NewGateway(ctx context.Context, svc *Service, list []services.Service, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sess := svc.Session()
	b := gateway.NewBatcher(gateway.BatcherOptions{Log: log, Send: func(ctx context.Context, calls []gateway.Call) error {
		out := make([]api.GatewayCall, len(calls))
		for i, c := range calls {
			out[i] = api.GatewayCall{Service: c.Service, Method: c.Method, Path: c.Path, Status: c.Status,
				BytesIn: c.BytesIn, BytesOut: c.BytesOut, DurationMS: c.Duration.Milliseconds(), Refused: c.Refused}
		}
		return svc.o.Backend.AuditGateway(ctx, sess.Token, out)
	}})
	g, err := gateway.New(gateway.Options{
		Services: list,
		Scope:    sess.Scope,
		Source:   gateway.SourceFunc(svc.Read),
		Audit:    b,
		Revoked:  svc.Revoked(),
		Log:      log,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	dg := &Gateway{Gateway: g, batcher: b, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(dg.done)
		b.Run(ctx)
	}()
	return dg, nil
}

// Close stops the gateway and sends the audit records left (for at most
// gateway.AuditWait).
func (g *Gateway) Close() {
	g.Gateway.Close()
	g.stop()
	<-g.done
}

// ServeGateway serves g on addr (loopback host:port or unix:PATH) until
// ctx ends. It returns the listener's base URL ("" for a Unix socket) once
// listening, and the channel that receives Serve's end.
func ServeGateway(ctx context.Context, g *Gateway, addr string, log *slog.Logger) (string, <-chan error, error) {
	ln, err := gateway.Listen(addr)
	if err != nil {
		return "", nil, fmt.Errorf("--gateway: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- gateway.Serve(ctx, g.Gateway, ln, log) }()
	return gateway.BaseURL(ln), errc, nil
}

// GatewayEnv is what a child started next to a gateway at base gets: the
// SDKs' base-URL variables for the services the gateway serves and a
// placeholder key each.
func GatewayEnv(base string, g *Gateway, list []services.Service) []string {
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

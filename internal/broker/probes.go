package broker

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok")
}

// probeTimeout bounds each readiness check.
const probeTimeout = 2 * time.Second

type readiness struct {
	Status    string   `json:"status"`
	BackendOK bool     `json:"backend_ok"`
	AuditOK   bool     `json:"audit_ok"`
	KeysOK    bool     `json:"keys_ok"`
	STSOK     *bool    `json:"sts_ok,omitempty"` // absent when AWS minting is off
	Failed    []string `json:"failed,omitempty"`
	// Hint says what to do when the only failed check is STS: the broker
	// serves discovery and OIDC tokens, only /v1/mint-aws-creds needs AWS.
	Hint string `json:"hint,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	checks := map[string]func(context.Context) error{
		"audit": s.deps.Audit.Ping,
		"keys":  func(context.Context) error { return s.deps.Issuer.Ready() },
	}
	if s.deps.BackendHealth != nil {
		checks["backend"] = s.deps.BackendHealth
	}
	if s.deps.AWS != nil {
		checks["sts"] = s.stsReady
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() { results <- result{name, runBounded(ctx, check)} }()
	}
	rd := readiness{Status: "ready", BackendOK: true, AuditOK: true, KeysOK: true}
	if s.deps.AWS != nil {
		ok := true
		rd.STSOK = &ok
	}
	for range checks {
		res := <-results
		if res.err == nil {
			continue
		}
		s.log.Warn("readiness check failed", "check", res.name, "err", res.err)
		rd.Failed = append(rd.Failed, res.name)
		switch res.name {
		case "backend":
			rd.BackendOK = false
		case "audit":
			rd.AuditOK = false
		case "keys":
			rd.KeysOK = false
		case "sts":
			f := false
			rd.STSOK = &f
		}
	}
	if len(rd.Failed) > 0 {
		rd.Status = "not_ready"
		if len(rd.Failed) == 1 && rd.Failed[0] == "sts" {
			rd.Hint = "only AWS STS is unreachable: discovery and /v1/mint-oidc-jwt work, /v1/mint-aws-creds fails until the broker's AWS principal (instance profile, AWS_PROFILE or DAEMON_ACCESS_KEY_ID/DAEMON_SECRET_ACCESS_KEY) and BROKER_AWS_REGION/BROKER_STS_ENDPOINT reach STS"
		}
		jsonhttp.Write(w, http.StatusServiceUnavailable, rd)
		return
	}
	jsonhttp.Write(w, http.StatusOK, rd)
}

// stsReady calls GetCallerIdentity at most once a minute while it succeeds
// (probes must not cost an STS call each); failures are re-checked at once.
func (s *Server) stsReady(ctx context.Context) error {
	s.stsMu.Lock()
	fresh := !s.stsOKAt.IsZero() && s.now().Sub(s.stsOKAt) < s.stsCache
	s.stsMu.Unlock()
	if fresh {
		return nil
	}
	if _, err := s.deps.AWS.CallerIdentity(ctx); err != nil {
		return err
	}
	s.stsMu.Lock()
	s.stsOKAt = s.now()
	s.stsMu.Unlock()
	return nil
}

// runBounded runs check but returns by ctx's deadline even if check ignores
// its context.
func runBounded(ctx context.Context, check func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- check(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/brokerclient"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/keychain"
)

// explicitBackend returns --backend or AGENTKEYS_BACKEND_URL ("" if
// neither is set).
func (a *App) explicitBackend() string { return trimURL(a.BackendFlag) }

// BackendURL is the backend a command without a session talks to: the
// flag, the environment, else the default.
func (a *App) BackendURL() string {
	if b := a.explicitBackend(); b != "" {
		return b
	}
	return DefaultBackendURL
}

// Master is the profile's session and a client of the backend that issued
// it.
type Master struct {
	Session keychain.Session
	Client  *backendclient.Client
}

var errNoSession = errors.New("no session")

// LoadMaster loads the profile's session. The token only ever goes to the
// backend that issued it: a --backend or AGENTKEYS_BACKEND_URL naming
// another server is refused rather than handed the token.
func (a *App) LoadMaster() (*Master, error) {
	st, err := a.Store()
	if err != nil {
		return nil, err
	}
	sess, err := st.Load(a.Profile)
	if errors.Is(err, keychain.ErrNoSession) {
		return nil, withHint(fmt.Errorf("%w: profile %q has no master session", errNoSession, a.Profile),
			"run `agentkeys init` (identity from %s, or a prompt on a terminal)", EnvAuthToken)
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if b := a.explicitBackend(); b != "" && b != sess.Backend {
		return nil, withHint(fmt.Errorf("profile %q holds a session issued by %s, but the backend is set to %s; refusing to send the token elsewhere", a.Profile, sess.Backend, b),
			"run `agentkeys init` against %s, use another --profile, or unset %s", b, EnvBackendURL)
	}
	c, err := a.newClient(sess.Backend)
	if err != nil {
		return nil, err
	}
	return &Master{Session: sess, Client: c}, nil
}

// httpClient is shared by every client of one invocation so that parallel
// requests reuse connections.
func (a *App) httpClient() *http.Client {
	if a.hc != nil {
		return a.hc
	}
	var rt http.RoundTripper = jsonhttp.NewTransport(5*time.Second, 16)
	if a.Verbose {
		rt = &verboseTransport{next: rt, w: a.Err}
	}
	a.hc = &http.Client{Transport: rt, Timeout: a.requestTimeout()}
	return a.hc
}

func (a *App) requestTimeout() time.Duration {
	if a.RequestTimeout > 0 {
		return a.RequestTimeout
	}
	return DefaultRequestTimeout
}

// newClient returns a client of the backend at base. Its requests are
// bounded by --request-timeout through their context, not by the HTTP
// client, so that a long poll with its own deadline (pairing) still works.
func (a *App) newClient(base string) (*backendclient.Client, error) {
	hc := *a.httpClient()
	hc.Timeout = 0
	c, err := backendclient.New(base, backendclient.WithHTTPClient(&hc), backendclient.WithTimeout(a.requestTimeout()))
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

// verboseTransport prints each request's method and path — never the query
// (it can carry identifiers the user did not ask to see) nor any header.
type verboseTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	w    io.Writer
}

func (t *verboseTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		fmt.Fprintf(t.w, "agentkeys: %s %s -> transport error (%s)\n", r.Method, r.URL.Path, time.Since(start).Round(time.Microsecond))
		return nil, err
	}
	fmt.Fprintf(t.w, "agentkeys: %s %s -> %d (%s)\n", r.Method, r.URL.Path, resp.StatusCode, time.Since(start).Round(time.Microsecond))
	return resp, nil
}

// hintFor suggests what to do about err.
func (a *App) hintFor(err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	var te *jsonhttp.TransportError
	transport := errors.As(err, &te)
	backendDown := transport && te.Server == "backend"
	brokerDown := transport && te.Server == "broker"
	var be *brokerclient.Error
	timedOut := strings.Contains(err.Error(), "did not answer in time")
	switch {
	case errors.As(err, &be) && be.Status == http.StatusNotFound && strings.Contains(be.Op, "AWS"):
		return "this broker does not mint AWS credentials (it has no data role): start it with BROKER_DATA_ROLE_ARN set, or for development `agentkeys dev --fake-sts` (offline) or `agentkeys dev --sts-endpoint URL --role-arn ARN`; `agentkeys token oidc` works without one"
	case errors.As(err, &be) && be.Status == http.StatusNotFound:
		return "the broker does not serve this endpoint: check --broker-url / " + EnvBrokerURL + " points at agentkeys-broker, not another server"
	case errors.As(err, &be) && be.Status == http.StatusForbidden && strings.Contains(be.Message, "scope"):
		return "the agent's scope lacks aws: `agentkeys scope set <agent> --add aws` (as the master), then retry"
	case errors.As(err, &be) && be.Status == http.StatusUnauthorized:
		return fmt.Sprintf("the broker refused the session: it may be revoked or expired, or the broker trusts another backend; run `agentkeys init` (profile %q)", a.Profile)
	case brokerDown && timedOut:
		return fmt.Sprintf("the broker accepted the connection but sent no answer within %s; check it (its log, `curl %s/healthz`), or raise --request-timeout / %s", a.requestTimeout(), te.URL, EnvRequestTimeout)
	case brokerDown:
		return fmt.Sprintf("is the broker running? set it with --broker-url or %s", EnvBrokerURL)
	case backendDown && timedOut:
		return fmt.Sprintf("the backend accepted the connection but sent no answer within %s; check it, or raise --request-timeout / %s", a.requestTimeout(), EnvRequestTimeout)
	case errors.Is(err, backendclient.ErrUnauthorized):
		return fmt.Sprintf("the session of profile %q is invalid, expired or revoked: run `agentkeys init`", a.Profile)
	case errors.Is(err, backendclient.ErrDenied):
		return "the wallet is not yours or the scope does not allow this: see `agentkeys scope get <agent>` and `agentkeys usage`"
	case errors.Is(err, backendclient.ErrRateLimited):
		return "the backend is rate limiting this client; retry in a moment"
	case backendDown:
		return fmt.Sprintf("is the backend running? set it with --backend or %s", EnvBackendURL)
	}
	return ""
}

// ctx returns the command's context.
func cmdContext(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// displayList renders a service list.
func displayList(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, ", ")
}

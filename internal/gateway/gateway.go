// Package gateway is the secretless mode: an HTTP reverse proxy on a
// loopback address (or a Unix socket) through which an agent calls a
// service's API without ever holding its key. A request to
// /<service>/<path> goes to the service's API origin (from the service
// table) with <path> unchanged and the credential added the way the
// service expects; the response comes back with the key masked.
//
// Rules:
//   - The upstream origin is the table's (or the operator's
//     AGENTKEYS_<SERVICE>_API_URL, read once at start): the request cannot
//     choose it. The Host header must be a loopback name, the request
//     target must be a path (no absolute URI, no CONNECT), every header
//     that could carry a credential (Authorization, the service's own
//     header, Proxy-Authorization) is replaced, and redirects are handed
//     back to the agent, never followed.
//   - Only services in the agent's scope are served. read_only does not
//     restrict upstream methods: the scope's read_only is about writing
//     credentials into AgentKeys, not about what the service's API does.
//   - Once the agent is revoked (Options.Revoked closes) no request is
//     served and every request in flight, open streams included, is cut.
//   - Every request, refused or forwarded, is audited (Options.Audit);
//     when the audit backlog cannot take a record within 5 s the gateway
//     answers 503 instead of serving unaudited.
//   - Responses stream: each chunk the upstream sends is masked and
//     flushed to the agent at once (a chunk that does not end a line is
//     held back at most mask.DefaultIdle, so a key split across chunks is
//     still found).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/hardening"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/services"
)

// Defaults of Options.
const (
	DefaultMaxRequestBody  = 32 << 20
	DefaultMaxResponseBody = 256 << 20
	DefaultTimeout         = 10 * time.Minute
	DefaultRate            = 20 // requests per second
	DefaultBurst           = 40
	// DefaultCredentialTTL is how long a credential read from the source
	// is reused before it is read again (and so re-checked there).
	DefaultCredentialTTL = 30 * time.Second
)

// Error kinds the gateway answers with (JSON {"error","message"}).
const (
	KindNotFound     = "UNKNOWN_SERVICE"
	KindOutOfScope   = "DENIED_SCOPE"
	KindMisdirected  = jsonhttp.KindMisdirected
	KindBadRequest   = "BAD_REQUEST"
	KindRevoked      = "SESSION_REVOKED"
	KindRateLimited  = "RATE_LIMITED"
	KindTooLarge     = "PAYLOAD_TOO_LARGE"
	KindAuditBacklog = "AUDIT_UNAVAILABLE"
	KindUpstream     = "UPSTREAM_ERROR"
	KindCredential   = "CREDENTIAL_UNAVAILABLE"
)

// Source hands the gateway a service's credential. The caller clears the
// returned slice.
type Source interface {
	Credential(ctx context.Context, service string) ([]byte, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, service string) ([]byte, error)

// Credential calls f.
func (f SourceFunc) Credential(ctx context.Context, service string) ([]byte, error) {
	return f(ctx, service)
}

// Options configure a Gateway.
type Options struct {
	// Services are the services served (already resolved: overrides
	// applied). Names must be unique.
	Services []services.Service
	// Scope limits the services served; nil serves every one.
	Scope  *agentkeys.Scope
	Source Source
	// Audit receives one record per request; nil audits nothing (tests).
	Audit Recorder
	// Revoked, when it closes, stops the gateway for good.
	Revoked <-chan struct{}
	// Transport is the upstream transport; nil is a clone of
	// http.DefaultTransport (HTTP/2 when the server offers it; CAs from
	// the system pool, which honours SSL_CERT_FILE and SSL_CERT_DIR).
	Transport       http.RoundTripper
	MaxRequestBody  int64
	MaxResponseBody int64
	Timeout         time.Duration // whole request, streams included
	Rate            rate.Limit    // per agent; 0 = DefaultRate, rate.Inf = none
	Burst           int
	CredentialTTL   time.Duration
	Log             *slog.Logger
	Now             func() time.Time
}

// Gateway is an http.Handler; serve it with Serve or mount it.
type Gateway struct {
	o       Options
	svc     map[string]route
	proxy   *httputil.ReverseProxy
	limiter *rate.Limiter
	log     *slog.Logger

	ctx    context.Context // ends on revocation or Close
	cancel context.CancelFunc

	mu    sync.Mutex
	creds map[string]*cachedCred

	stopAudit func() // NewAudited's batcher
}

type route struct {
	s      services.Service
	origin *url.URL
}

type cachedCred struct {
	buf  *hardening.Buffer
	read time.Time
}

// New checks o and returns a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Source == nil {
		return nil, errors.New("gateway: no credential source")
	}
	scope, err := o.Scope.Normalize()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	o.Scope = scope
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxRequestBody <= 0 {
		o.MaxRequestBody = DefaultMaxRequestBody
	}
	if o.MaxResponseBody <= 0 {
		o.MaxResponseBody = DefaultMaxResponseBody
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Rate == 0 {
		o.Rate, o.Burst = DefaultRate, DefaultBurst
	}
	if o.Burst <= 0 {
		o.Burst = max(1, int(o.Rate))
	}
	if o.CredentialTTL <= 0 {
		o.CredentialTTL = DefaultCredentialTTL
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // the key goes to the table's origin, not to a proxy from the environment
		t.ResponseHeaderTimeout = 5 * time.Minute
		t.MaxIdleConnsPerHost = 16
		o.Transport = t
	}
	g := &Gateway{o: o, svc: map[string]route{}, log: o.Log, creds: map[string]*cachedCred{},
		limiter: rate.NewLimiter(o.Rate, o.Burst)}
	for _, s := range o.Services {
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if _, dup := g.svc[s.Name]; dup {
			return nil, fmt.Errorf("gateway: service %s listed twice", s.Name)
		}
		u, err := services.Origin(s.APIBase)
		if err != nil {
			return nil, fmt.Errorf("gateway: service %s: %w", s.Name, err)
		}
		g.svc[s.Name] = route{s: s, origin: u}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if o.Revoked != nil {
		go func() {
			select {
			case <-o.Revoked:
				g.log.Warn("gateway: the agent was revoked; cutting every request in flight")
				g.Close()
			case <-g.ctx.Done():
			}
		}()
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      o.Transport,
		FlushInterval:  -1,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		ErrorLog:       slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// Close cuts every request in flight, refuses new ones and zeroes the
// credentials it holds.
func (g *Gateway) Close() {
	g.cancel()
	g.mu.Lock()
	for k, c := range g.creds {
		c.buf.Destroy()
		delete(g.creds, k)
	}
	g.mu.Unlock()
}

// Services returns the names the gateway serves within the scope.
func (g *Gateway) Services() []string {
	var out []string
	for _, s := range g.o.Services {
		if g.o.Scope.Allows(s.Name) {
			out = append(out, s.Name)
		}
	}
	return out
}

// ctxKey carries the per-request state from ServeHTTP to the proxy hooks.
type ctxKey struct{}

type reqState struct {
	rt     route
	rest   string // upstream path
	secret []byte
}

// ServeHTTP applies the policy and forwards the request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.o.Now()
	call := Call{Time: start, Service: agentkeys.AuditWildcard, Method: clipMethod(r.Method), Path: clipPath(r.URL.Path)}
	var record func(Call)
	if g.o.Audit != nil {
		actx, cancel := context.WithTimeout(r.Context(), AuditWait)
		rec, err := g.o.Audit.Reserve(actx)
		cancel()
		if err != nil {
			g.log.Error("gateway: audit backlog full; refusing the request", "err", err.Error())
			writeErr(w, jsonhttp.Errorf(http.StatusServiceUnavailable, KindAuditBacklog, "the audit log cannot be written now; try again later"), 5)
			return
		}
		record = rec
	}
	cw := &countWriter{ResponseWriter: w}
	refused := "aborted" // stays when the proxy aborts the response (a cut stream)
	if record != nil {
		defer func() {
			call.Status = cw.status
			if call.Status == 0 {
				call.Status = http.StatusOK
			}
			call.BytesOut = cw.n
			call.Duration = g.o.Now().Sub(start)
			call.Refused = refused
			record(call)
		}()
	}
	refused = g.serve(cw, r, &call)
}

// serve answers r; it returns "" when the request was forwarded, else the
// refusal's kind (in lower case, for the audit record).
func (g *Gateway) serve(w *countWriter, r *http.Request, call *Call) string {
	refuse := func(e *jsonhttp.Error, retry int) string {
		writeErr(w, e, retry)
		return strings.ToLower(e.Kind)
	}
	if g.ctx.Err() != nil {
		return refuse(jsonhttp.Errorf(http.StatusUnauthorized, KindRevoked, "the agent's session was revoked or the gateway stopped"), 0)
	}
	if r.Method == http.MethodConnect || !strings.HasPrefix(r.RequestURI, "/") {
		return refuse(jsonhttp.Errorf(http.StatusBadRequest, KindBadRequest, "the gateway is not a forward proxy: request /<service>/<path>"), 0)
	}
	if !jsonhttp.IsLoopbackHost(r.Host) {
		return refuse(jsonhttp.Errorf(http.StatusMisdirectedRequest, KindMisdirected, "the gateway answers only for a loopback host (127.0.0.1, localhost, [::1])"), 0)
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	rt, ok := g.svc[name]
	if !ok {
		return refuse(jsonhttp.Errorf(http.StatusNotFound, KindNotFound, "no service %q at this gateway; request /<service>/<path> with one of: %s", clip(name), strings.Join(g.Services(), ", ")), 0)
	}
	call.Service = name
	call.Path = clipPath("/" + rest)
	if !g.o.Scope.Allows(name) {
		return refuse(jsonhttp.Errorf(http.StatusForbidden, KindOutOfScope, "service %s is outside this agent's scope", name), 0)
	}
	if !g.limiter.Allow() {
		return refuse(jsonhttp.Errorf(http.StatusTooManyRequests, KindRateLimited, "too many requests from this agent; slow down"), 1)
	}
	if r.ContentLength > g.o.MaxRequestBody {
		return refuse(jsonhttp.Errorf(http.StatusRequestEntityTooLarge, KindTooLarge, "request body over %d bytes", g.o.MaxRequestBody), 0)
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.o.Timeout)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	secret, err := g.credential(ctx, name)
	if err != nil {
		if g.ctx.Err() != nil {
			return refuse(jsonhttp.Errorf(http.StatusUnauthorized, KindRevoked, "the agent's session was revoked"), 0)
		}
		g.log.Warn("gateway: no credential", "service", name, "err", err.Error())
		return refuse(jsonhttp.Errorf(http.StatusBadGateway, KindCredential, "the credential for %s could not be read: %s", name, clip(err.Error())), 0)
	}
	defer clear(secret)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countReader{ReadCloser: http.MaxBytesReader(w, r.Body, g.o.MaxRequestBody), n: &call.BytesIn}
	}
	st := &reqState{rt: rt, rest: "/" + rest, secret: secret}
	mw := newMaskWriter(w, secret, g.o.MaxResponseBody)
	defer mw.Close()
	g.proxy.ServeHTTP(mw, r.WithContext(context.WithValue(ctx, ctxKey{}, st)))
	return ""
}

// rewrite sends the request to the service's origin with the credential.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(ctxKey{}).(*reqState)
	out := pr.Out
	out.URL.Scheme, out.URL.Host = st.rt.origin.Scheme, st.rt.origin.Host
	out.URL.Path, out.URL.RawPath = st.rest, ""
	if esc := pr.In.URL.EscapedPath(); strings.HasPrefix(esc, "/"+st.rt.s.Name+"/") {
		out.URL.RawPath = strings.TrimPrefix(esc, "/"+st.rt.s.Name)
		if out.URL.RawPath == out.URL.Path {
			out.URL.RawPath = ""
		}
	}
	out.Host = st.rt.origin.Host
	h := out.Header
	for _, n := range []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Cookie", "Forwarded",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Accept-Encoding"} {
		h.Del(n)
	}
	a := st.rt.s.Auth
	switch a.In {
	case "query":
		q := out.URL.Query()
		q.Set(a.Name, string(st.secret))
		out.URL.RawQuery = q.Encode()
	default:
		h.Del(a.Name)
		h.Set(a.Name, a.Prefix+string(st.secret))
	}
}

// modifyResponse drops the length (masking can change it).
func (g *Gateway) modifyResponse(resp *http.Response) error {
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if g.ctx.Err() != nil {
		writeErr(w, jsonhttp.Errorf(http.StatusUnauthorized, KindRevoked, "the agent's session was revoked"), 0)
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeErr(w, jsonhttp.Errorf(http.StatusRequestEntityTooLarge, KindTooLarge, "request body over %d bytes", g.o.MaxRequestBody), 0)
		return
	}
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	name := ""
	if st != nil {
		name = st.rt.s.Name
	}
	g.log.Warn("gateway: upstream failed", "service", name, "err", err.Error())
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	writeErr(w, jsonhttp.Errorf(status, KindUpstream, "the %s API could not be reached", name), 0)
}

// credential returns a copy of service's credential (cached for
// CredentialTTL).
func (g *Gateway) credential(ctx context.Context, service string) ([]byte, error) {
	now := g.o.Now()
	g.mu.Lock()
	if c, ok := g.creds[service]; ok && now.Sub(c.read) < g.o.CredentialTTL {
		out := append([]byte(nil), c.buf.Bytes()...)
		g.mu.Unlock()
		return out, nil
	}
	g.mu.Unlock()
	v, err := g.o.Source.Credential(ctx, service)
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, errors.New("the stored credential is empty")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx.Err() != nil {
		clear(v)
		return nil, errors.New("revoked")
	}
	if old, ok := g.creds[service]; ok {
		old.buf.Destroy()
	}
	g.creds[service] = &cachedCred{buf: hardening.Copy(v), read: now}
	return v, nil
}

func writeErr(w http.ResponseWriter, e *jsonhttp.Error, retryAfter int) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	jsonhttp.WriteError(w, e)
}

// clip keeps a client-supplied value short and printable.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}

// MaxAuditPath bounds the path kept in an audit record.
const MaxAuditPath = 160

func clipPath(p string) string { return clip1(p, MaxAuditPath) }

func clipMethod(m string) string { return clip1(m, 16) }

func clip1(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}

package jsonhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentkeys/agentkeys/internal/clientip"
)

// MiddlewareOptions configure Middleware.
type MiddlewareOptions struct {
	// Logger receives one access line per request (default: discard).
	Logger *slog.Logger
	// InternalKind is the error kind of the 500 a panic turns into
	// (default "INTERNAL_ERROR").
	InternalKind string
	// Quiet reports paths whose access lines are logged at debug level
	// (health probes, metrics scrapes).
	Quiet func(path string) bool
	// TrustedProxies are the peers whose forwarding headers name the
	// client (nil: none; the client is the connecting peer).
	TrustedProxies *clientip.Trusted
	// Hosts, when set, refuses requests whose Host (or, on state-changing
	// methods, Origin) it does not allow: DNS-rebinding protection.
	Hosts *HostPolicy
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID returns the request id Middleware assigned ("" outside it).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Middleware is the plumbing every AgentKeys server puts around its routes:
//   - a request id, taken from a well-formed X-Request-Id header or made
//     up, echoed in the response and available through RequestID;
//   - panic recovery: the client gets the JSON envelope (500) and the log
//     gets the panic's type, never its value, which may hold a secret;
//   - one access log line: method, path (never the query string, which can
//     carry capabilities), status, duration, client address, request id.
//
// Headers are never logged: they carry bearer tokens.
func Middleware(next http.Handler, o MiddlewareOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind := o.InternalKind
	if kind == "" {
		kind = "INTERNAL_ERROR"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !safeRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		ip := o.TrustedProxies.Resolve(r)
		r = r.WithContext(clientip.WithClient(context.WithValue(r.Context(), requestIDKey, id), ip))
		sw := &StatusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("handler panic", "request_id", id, "path", r.URL.Path, "panic_type", fmt.Sprintf("%T", p))
				if !sw.Wrote() {
					WriteError(sw, Errorf(http.StatusInternalServerError, kind, "internal: unexpected error"))
				}
			}
			level := slog.LevelInfo
			if o.Quiet != nil && o.Quiet(r.URL.Path) {
				level = slog.LevelDebug
			}
			log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.Status()),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("client_ip", ip),
				slog.String("request_id", id),
			)
		}()
		if err := o.Hosts.check(r); err != nil {
			WriteError(sw, err)
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// StatusWriter records the status a handler sent. It passes Flush through
// and unwraps for http.ResponseController, so streaming handlers work
// behind it.
type StatusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// Status is the status sent (200 if the handler wrote a body without one;
// 200 also if it wrote nothing, as net/http then answers).
func (w *StatusWriter) Status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// Wrote reports whether the response header has been sent.
func (w *StatusWriter) Wrote() bool { return w.wrote }

// WriteHeader implements http.ResponseWriter.
func (w *StatusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *StatusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func safeRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

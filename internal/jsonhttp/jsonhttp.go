// Package jsonhttp holds the HTTP conventions both AgentKeys servers share:
// the error envelope {"error": kind, "message": text}, strict JSON request
// decoding (size limit, unknown fields rejected, one document), and a JSON
// response writer. Handlers return *Error values; nothing else reaches the
// client, so internal error text and secrets never do.
package jsonhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Error is an API error: an HTTP status, a stable machine-readable kind and
// a human message that is safe to show (no secrets, no internal detail).
type Error struct {
	Status  int    `json:"-"`
	Kind    string `json:"error"`
	Message string `json:"message"`
	// RetryAfter, in whole seconds, is sent as a Retry-After header when > 0.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string { return e.Kind + ": " + e.Message }

// Errorf builds an Error.
func Errorf(status int, kind, format string, args ...any) *Error {
	return &Error{Status: status, Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// DefaultMaxBody is the request body limit when a handler names none.
const DefaultMaxBody = 64 << 10

// Kinds for the decoding failures Decode reports. Servers that use other
// spellings pass a KindMap.
const (
	KindBadRequest       = "BAD_REQUEST"
	KindTooLarge         = "PAYLOAD_TOO_LARGE"
	KindUnsupportedMedia = "UNSUPPORTED_MEDIA_TYPE"
)

// Decode reads one JSON document from r's body into v. It rejects a
// content type other than application/json, bodies over maxBytes, unknown
// fields, wrong types and trailing data, each with a clear message. With
// the request's ResponseWriter w, a body over the limit also makes the
// server close the connection after answering, instead of reading on (w
// may be nil for a body that is not a live request's).
func Decode(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) *Error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, KindUnsupportedMedia, "request body must be application/json")
		}
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err, maxBytes)
		}
		return Errorf(http.StatusBadRequest, KindBadRequest, "request body must hold a single JSON object")
	}
	return nil
}

func decodeError(err error, maxBytes int64) *Error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, KindTooLarge, "request body exceeds %d bytes", maxBytes)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, KindBadRequest, "request body is empty; a JSON object is required")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, KindBadRequest, "request body is not valid JSON")
	case errors.As(err, &te):
		if te.Field != "" {
			return Errorf(http.StatusBadRequest, KindBadRequest, "field %q must be of JSON type %s", te.Field, jsonType(te.Type.Kind().String()))
		}
		return Errorf(http.StatusBadRequest, KindBadRequest, "request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json offers no typed error for this; the field name is
		// the client's own input, quoted.
		return Errorf(http.StatusBadRequest, KindBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return Errorf(http.StatusBadRequest, KindBadRequest, "request body could not be decoded")
	}
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	default:
		return "number"
	}
}

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError sends the error envelope.
func WriteError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	Write(w, e.Status, e)
}

// Fallback wraps mux so that requests it does not route (unknown path, wrong
// method) get the JSON envelope instead of net/http's plain text. kinds maps
// 404 and 405 to the server's error kinds.
func Fallback(mux *http.ServeMux, notFoundKind, methodKind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			WriteError(w, Errorf(http.StatusMethodNotAllowed, methodKind, "method %s not allowed on %s", r.Method, r.URL.Path))
			return
		}
		WriteError(w, Errorf(http.StatusNotFound, notFoundKind, "no such endpoint"))
	})
}

type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
func (s *statusRecorder) WriteHeader(code int) { s.status = code }

package daemon

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
)

// MaxHTTPRequestBody and MaxHTTPResponseBody bound agentkeys.http_request.
const (
	MaxHTTPRequestBody  = 1 << 20
	MaxHTTPResponseBody = 1 << 20
)

// HTTPRequest is one agentkeys.http_request call.
type HTTPRequest struct {
	Method  string
	Service string
	Path    string // the service's path, with an optional query
	Headers map[string]string
	Body    string
}

// HTTPResult is what agentkeys.http_request returns: the API's answer with
// the key masked (the gateway's own refusals look the same, as JSON
// {"error","message"} bodies).
type HTTPResult struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	Body        string `json:"body"`
	Truncated   bool   `json:"truncated"`
}

// UseGateway makes h (the daemon's gateway) serve HTTPRequest.
func (s *Service) UseGateway(h http.Handler) {
	s.mu.Lock()
	s.gw = h
	s.mu.Unlock()
}

// hasGateway reports whether HTTPRequest has a gateway to go through.
func (s *Service) hasGateway() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gw != nil
}

// HTTPRequest sends r through the gateway in process: same policy, key
// and audit as a request to --gateway, and the key never reaches the
// caller.
func (s *Service) HTTPRequest(ctx context.Context, in HTTPRequest) (HTTPResult, error) {
	s.mu.Lock()
	h := s.gw
	s.mu.Unlock()
	if h == nil {
		return HTTPResult{}, errorf(CodeDisabled, "this daemon has no gateway")
	}
	if in.Method == "" {
		in.Method = http.MethodGet
	}
	if len(in.Body) > MaxHTTPRequestBody {
		return HTTPResult{}, errorf(CodeInvalidParams, "body over %d bytes", MaxHTTPRequestBody)
	}
	path := in.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, "http://127.0.0.1/"+in.Service+path, strings.NewReader(in.Body))
	if err != nil {
		return HTTPResult{}, errorf(CodeInvalidParams, "bad request: %v", err)
	}
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "127.0.0.1:0"
	for k, v := range in.Headers {
		req.Header.Set(k, v)
	}
	rec := &capRecorder{h: http.Header{}}
	func() {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			} else if p != nil {
				rec.aborted = true
			}
		}()
		h.ServeHTTP(rec, req)
	}()
	res := HTTPResult{Status: rec.status, ContentType: rec.h.Get("Content-Type"), Body: rec.buf.String(), Truncated: rec.over || rec.aborted}
	if res.Status == 0 {
		res.Status = http.StatusOK
	}
	return res, nil
}

// capRecorder keeps the first MaxHTTPResponseBody bytes of a response.
type capRecorder struct {
	mu      sync.Mutex
	h       http.Header
	status  int
	buf     bytes.Buffer
	over    bool
	aborted bool
}

func (c *capRecorder) Header() http.Header { return c.h }

func (c *capRecorder) WriteHeader(code int) {
	c.mu.Lock()
	if c.status == 0 {
		c.status = code
	}
	c.mu.Unlock()
}

var errTooLong = errors.New("response over the agentkeys.http_request limit")

func (c *capRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if room := MaxHTTPResponseBody - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:room])
		c.over = true
		return room, errTooLong
	}
	return c.buf.Write(p)
}

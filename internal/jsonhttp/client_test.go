package jsonhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// A request that gets no answer in time is reported as such, whether the
// client's or the context's deadline ended it, and the cause of a failed
// request never carries its URL (whose query can hold identifiers).
func TestTransportCause(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	u := srv.URL + "/x?wallet=0xsecretquery"
	hc := &http.Client{Transport: NewTransport(time.Second, 2), Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if _, err := hc.Do(req); !errors.Is(TransportCause(err), ErrNoAnswerInTime) {
		t.Fatalf("client timeout: cause %v", TransportCause(err))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if _, err := (&http.Client{Transport: NewTransport(time.Second, 2)}).Do(req); !errors.Is(TransportCause(err), ErrNoAnswerInTime) {
		t.Fatalf("context deadline: cause %v", TransportCause(err))
	}

	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:1/x?wallet=0xsecretquery", nil)
	_, err := hc.Do(req)
	if err == nil || strings.Contains(TransportCause(err).Error(), "secretquery") {
		t.Fatalf("refused connection: cause %v", TransportCause(err))
	}
}

// The transport never takes a proxy from the environment.
func TestNewTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:9")
	if NewTransport(time.Second, 1).Proxy != nil {
		t.Fatal("transport has a proxy function")
	}
}

func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body       string
		kind, want string
	}{
		{403, `{"error":"SCOPE_DENIED","message":"no aws"}`, "SCOPE_DENIED", "no aws"},
		{502, `<html>Bad gateway</html>`, "HTTP_502", "Bad Gateway"},
		{404, `{"message":"no kind"}`, "HTTP_404", "Not Found"},
		{500, ``, "HTTP_500", "Internal Server Error"},
	} {
		kind, msg := ParseError(tc.status, []byte(tc.body))
		if kind != tc.kind || msg != tc.want {
			t.Errorf("ParseError(%d, %q) = %q, %q; want %q, %q", tc.status, tc.body, kind, msg, tc.kind, tc.want)
		}
	}
}

// A server that accepts the connection and never completes the TLS
// handshake does not hold a client without its own deadline for longer
// than the transport's handshake bound (5 s).
func TestNewTransportBoundsTheTLSHandshake(t *testing.T) {
	ln := testkit.Listen(t, nil)
	c := &http.Client{Transport: NewTransport(time.Second, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+ln.Addr().String()+"/", nil)
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers the handshake answered")
	}
	if ctx.Err() != nil || !strings.Contains(err.Error(), "TLS handshake timeout") {
		t.Fatalf("after %s: %v, want the transport's TLS handshake timeout", time.Since(start).Round(time.Millisecond), err)
	}
}

// Idle keep-alive connections are closed after 90 s rather than kept for
// ever (a restarted server's old sockets are not reused indefinitely).
func TestNewTransportClosesIdleConnections(t *testing.T) {
	if got := NewTransport(time.Second, 1).IdleConnTimeout; got != 90*time.Second {
		t.Fatalf("IdleConnTimeout %s, want 90s", got)
	}
}

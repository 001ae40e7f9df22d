package backendclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8090", "ftp://x", "http://"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := New("http://127.0.0.1:8090/")
	if err != nil || c.BaseURL() != "http://127.0.0.1:8090" {
		t.Fatalf("trailing slash: %v %v", c, err)
	}
}

func TestTimeoutAndErrorsCarryNoSecrets(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/credential/read":
			w.WriteHeader(403)
			w.Write([]byte(`{"error":"DENIED","message":"no"}`))
		case "/session/validate":
			w.WriteHeader(502)
			w.Write([]byte(`<html>proxy error</html>`))
		default:
			<-release
		}
	}))
	defer srv.Close()
	defer close(release)
	c, _ := New(srv.URL, WithTimeout(50*time.Millisecond))
	tok := agentkeys.NewToken()

	_, err := c.ReadCredential(context.Background(), tok, agentkeys.NewWallet(), "svc")
	var apiErr *Error
	if !errors.As(err, &apiErr) || !errors.Is(err, ErrDenied) || apiErr.Kind != "DENIED" {
		t.Fatalf("403: %v", err)
	}
	_, err = c.Validate(context.Background(), tok)
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || strings.Contains(err.Error(), "html") {
		t.Fatalf("non-JSON error body: %v", err)
	}
	err = c.StoreCredential(context.Background(), tok, agentkeys.NewWallet(), "svc", []byte("the-secret-value"))
	var te *jsonhttp.TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("hanging server: %v, want a timeout TransportError", err)
	}
	for _, s := range []string{tok.Reveal(), "the-secret-value", "c2VjcmV0"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error %q leaks %q", err, s)
		}
	}
}

func TestUnreachable(t *testing.T) {
	c, _ := New("http://127.0.0.1:1")
	err := c.Health(context.Background())
	var te *jsonhttp.TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "backend http://127.0.0.1:1 unreachable") {
		t.Fatalf("closed port: %v", err)
	}
}

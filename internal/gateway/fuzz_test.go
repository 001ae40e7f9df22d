package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/services"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzRouting throws arbitrary request targets, Host headers and methods
// at the gateway: it never panics, only the in-scope service's fixed host
// is ever contacted, only with the key in its own header, and no answer
// carries the key.
func FuzzRouting(f *testing.F) {
	for _, s := range [][3]string{
		{"/openai/v1/chat/completions?x=1", "127.0.0.1:8080", "POST"},
		{"/anthropic/v1/messages", "localhost", "GET"},
		{"http://evil.example/openai/v1", "127.0.0.1", "GET"},
		{"/openai/../anthropic/x", "[::1]:1", "GET"},
		{"/openai/%2e%2e/x", "127.0.0.1", "DELETE"},
		{"//openai/x", "127.0.0.1", "GET"},
		{"/openai", "evil.example", "GET"},
		{"*", "127.0.0.1", "OPTIONS"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	key := newKey(f)
	var bad string
	g, err := New(Options{
		Services: []services.Service{
			{Name: "openai", APIBase: "https://api.openai.test", Auth: services.Bearer},
			{Name: "anthropic", APIBase: "https://api.anthropic.test", Auth: services.Auth{In: "header", Name: "x-api-key"}},
		},
		Scope:  &agentkeys.Scope{Services: []string{"openai"}},
		Source: SourceFunc(func(context.Context, string) ([]byte, error) { return []byte(key), nil }),
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Host != "api.openai.test" || r.Host != "api.openai.test" || r.URL.Scheme != "https" ||
				r.Header.Get("Authorization") != "Bearer "+key || strings.Contains(r.URL.RawQuery, key) {
				bad = r.URL.String() + " Host " + r.Host
			}
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("echo " + key)), Request: r}, nil
		}),
		Rate: rate.Inf,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target, host, method string) {
		r, err := http.ReadRequest(bufioReader(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"))
		if err != nil {
			return
		}
		r.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					t.Fatalf("panic: %v", p)
				}
			}()
			g.ServeHTTP(rec, r)
		}()
		if bad != "" {
			t.Fatalf("request %q host %q went upstream as %s", target, host, bad)
		}
		if strings.Contains(rec.Body.String(), key) {
			t.Fatal("the key reached the agent")
		}
	})
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

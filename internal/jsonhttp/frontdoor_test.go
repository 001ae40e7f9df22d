package jsonhttp_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/clientip"
	"github.com/agentkeys/agentkeys/internal/jsonhttp"
	"github.com/agentkeys/agentkeys/internal/ratelimit"
)

func TestMiddlewareHostPolicy(t *testing.T) {
	hosts, err := jsonhttp.NewHostPolicy("https://Agentkeys.Example.com:8443")
	if err != nil {
		t.Fatal(err)
	}
	h := jsonhttp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		jsonhttp.Write(w, 200, map[string]string{"ok": "yes"})
	}), jsonhttp.MiddlewareOptions{Hosts: hosts})
	for _, c := range []struct {
		method, host, origin string
		want                 int
		kind                 string
	}{
		{"GET", "127.0.0.1:8090", "", 200, ""},
		{"GET", "localhost:8090", "", 200, ""},
		{"GET", "LOCALHOST.", "", 200, ""},
		{"GET", "[::1]:8090", "", 200, ""},
		{"GET", "127.9.9.9", "", 200, ""},
		{"GET", "192.0.2.7:8090", "", 200, ""},
		{"GET", "agentkeys.example.com", "", 200, ""},
		{"GET", "attacker.example:8090", "", 421, jsonhttp.KindMisdirected},
		{"POST", "rebind.attacker.example", "", 421, jsonhttp.KindMisdirected},
		{"GET", "127.0.0.1.attacker.example", "", 421, jsonhttp.KindMisdirected},
		{"POST", "127.0.0.1:8090", "", 200, ""},
		{"POST", "127.0.0.1:8090", "http://localhost:3000", 200, ""},
		{"POST", "127.0.0.1:8090", "http://127.0.0.1:3000", 200, ""},
		{"PUT", "[::1]:8090", "http://[::1]:3000", 200, ""},
		{"POST", "agentkeys.example.com", "https://agentkeys.example.com", 200, ""},
		{"POST", "127.0.0.1:8090", "https://evil.example", 403, jsonhttp.KindForbiddenOrigin},
		{"POST", "127.0.0.1:8090", "null", 403, jsonhttp.KindForbiddenOrigin},
		{"DELETE", "127.0.0.1:8090", "http://198.51.100.1", 403, jsonhttp.KindForbiddenOrigin},
		{"GET", "127.0.0.1:8090", "https://evil.example", 200, ""},
	} {
		r := httptest.NewRequest(c.method, "/x", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var env struct{ Error string }
		json.Unmarshal(rec.Body.Bytes(), &env)
		if rec.Code != c.want || env.Error != c.kind {
			t.Errorf("%s Host %q Origin %q → %d %s, want %d %s", c.method, c.host, c.origin, rec.Code, env.Error, c.want, c.kind)
		}
	}
	if _, err := jsonhttp.NewHostPolicy("https://"); err == nil {
		t.Error("a URL without a host was accepted")
	}
}

func TestMiddlewareResolvesClientThroughTrustedProxies(t *testing.T) {
	var logs bytes.Buffer
	trusted, _ := clientip.Parse("127.0.0.1/32")
	var seen string
	h := jsonhttp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = ratelimit.ClientIP(r)
	}), jsonhttp.MiddlewareOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), TrustedProxies: trusted})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.5")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "203.0.113.5" || !strings.Contains(logs.String(), `"client_ip":"203.0.113.5"`) {
		t.Fatalf("handler saw %q; log %s", seen, logs.String())
	}
}

package jsonhttp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

func TestMiddlewareRecoversPanicsWithoutLeakingThem(t *testing.T) {
	var logs bytes.Buffer
	const secret = "panic-value-must-not-be-logged"
	h := jsonhttp.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(secret)
	}), jsonhttp.MiddlewareOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), InternalKind: "INTERNAL"})
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/boom?token=query-secret")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	var env struct{ Error, Message string }
	if err := json.Unmarshal(body, &env); err != nil || env.Error != "INTERNAL" {
		t.Fatalf("body %q is not the envelope with kind INTERNAL", body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on a recovered panic")
	}
	for _, leak := range []string{secret, "query-secret"} {
		if strings.Contains(string(body), leak) || strings.Contains(logs.String(), leak) {
			t.Errorf("%q reached the client or the log:\n%s\n%s", leak, body, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `"status":500`) || !strings.Contains(logs.String(), `"panic_type":"string"`) {
		t.Errorf("log lacks the panic and the 500 access line:\n%s", logs.String())
	}
}

func TestMiddlewareRequestIDs(t *testing.T) {
	var seen string
	h := jsonhttp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = jsonhttp.RequestID(r.Context())
		w.WriteHeader(http.StatusTeapot)
	}), jsonhttp.MiddlewareOptions{})
	for _, c := range []struct{ in, want string }{
		{"abc-123_x.y", "abc-123_x.y"},
		{"has space", ""},
		{strings.Repeat("a", 65), ""},
		{strings.Repeat("b", 64), strings.Repeat("b", 64)},
		{"azAZ09", "azAZ09"},
		{"x`", ""}, {"x{", ""}, {"x@", ""}, {"x[", ""}, {"x/", ""}, {"x:", ""},
		{"", ""},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Request-Id", c.in)
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if got != seen || got == "" {
			t.Fatalf("header %q, handler saw %q", got, seen)
		}
		if c.want != "" && got != c.want {
			t.Errorf("id %q replaced by %q", c.in, got)
		}
		if c.want == "" && got == c.in {
			t.Errorf("unsafe id %q echoed", c.in)
		}
		if rec.Code != http.StatusTeapot {
			t.Errorf("status %d", rec.Code)
		}
	}
}

func TestStatusWriterStreams(t *testing.T) {
	h := jsonhttp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("a"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the middleware's writer is no http.Flusher")
		}
	}), jsonhttp.MiddlewareOptions{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed {
		t.Error("not flushed")
	}
}

func TestDecodeOversizedBodyClosesConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if e := jsonhttp.Decode(w, r, &v, 16); e != nil {
			jsonhttp.WriteError(w, e)
			return
		}
		jsonhttp.Write(w, 200, v)
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"k":"`+strings.Repeat("x", 4096)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if !resp.Close {
		t.Error("the server keeps the connection of an oversized body open")
	}
	resp, err = http.Post(srv.URL, "application/json", strings.NewReader(`{"k":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("small body: status %d close %v", resp.StatusCode, resp.Close)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ body, ct, want string }{
		{`{"a":1}{}`, "application/json", "single JSON object"},
		{`{"b":1}`, "application/json", "unknown field"},
		{``, "application/json", "empty"},
		{`{"a":"x"}`, "application/json", "JSON type number"},
		{`{"a":1}`, "text/plain", "application/json"},
	} {
		req := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.ct)
		var v struct {
			A int `json:"a"`
		}
		e := jsonhttp.Decode(nil, req, &v, 1024)
		if e == nil || !strings.Contains(e.Message, c.want) {
			t.Errorf("Decode(%q, %s) = %v; want a message with %q", c.body, c.ct, e, c.want)
		}
	}
}

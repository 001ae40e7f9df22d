package jsonhttp_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/jsonhttp"
)

// TestDecodeZeroLimitMeansDefault: a limit of 0 is the default limit,
// not "no body at all".
func TestDecodeZeroLimitMeansDefault(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"a":1}`))
	var v struct{ A int }
	if err := jsonhttp.Decode(nil, r, &v, 0); err != nil || v.A != 1 {
		t.Fatalf("Decode with limit 0: %v", err)
	}
}

// TestRetryAfterOnlyWhenPositive: the header carries the seconds, and is
// absent for 0.
func TestRetryAfterOnlyWhenPositive(t *testing.T) {
	for _, n := range []int{0, 1, 30} {
		rec := httptest.NewRecorder()
		jsonhttp.WriteError(rec, &jsonhttp.Error{Status: 429, Kind: "RATE_LIMITED", Message: "slow down", RetryAfter: n})
		got := rec.Header().Get("Retry-After")
		want := ""
		if n > 0 {
			want = itoa(n)
		}
		if got != want || rec.Code != 429 {
			t.Errorf("RetryAfter %d: header %q status %d, want %q 429", n, got, rec.Code, want)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestStatusWriterRecordsOK: an explicit 200 counts as the header sent.
func TestStatusWriterRecordsOK(t *testing.T) {
	sw := &jsonhttp.StatusWriter{ResponseWriter: httptest.NewRecorder()}
	sw.WriteHeader(http.StatusContinue) // informational: not the final status
	if sw.Wrote() {
		t.Fatal("a 1xx header counted as the response header")
	}
	sw.WriteHeader(http.StatusOK)
	if !sw.Wrote() || sw.Status() != http.StatusOK {
		t.Fatalf("after WriteHeader(200): wrote %v status %d", sw.Wrote(), sw.Status())
	}
}

// TestAccessLogDurationInMilliseconds: duration_ms is milliseconds, not
// micro- or nanoseconds.
func TestAccessLogDurationInMilliseconds(t *testing.T) {
	var logs bytes.Buffer
	h := jsonhttp.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(2 * time.Millisecond) // a duration to measure
	}), jsonhttp.MiddlewareOptions{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	start := time.Now()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	wall := float64(time.Since(start).Microseconds()) / 1000
	var line struct {
		DurationMS float64 `json:"duration_ms"`
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("access line %q: %v", logs.String(), err)
	}
	if line.DurationMS < 2 || line.DurationMS > wall {
		t.Fatalf("duration_ms = %v, want between 2 and the %v ms measured around the request", line.DurationMS, wall)
	}
}

// TestMisdirectedMessageNamesTheHost: the 421 names the host it refused,
// printable characters kept and control characters replaced.
func TestMisdirectedMessageNamesTheHost(t *testing.T) {
	hosts, err := jsonhttp.NewHostPolicy("https://agentkeys.example.com")
	if err != nil {
		t.Fatal(err)
	}
	h := jsonhttp.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), jsonhttp.MiddlewareOptions{Hosts: hosts})
	for host, shown := range map[string]string{
		"Attacker.example:8090": "Attacker.example:8090",
		"odd host~name":         "odd host~name", // space and ~ are printable
		"a\x01b\x7fc\u00e9":     "a?b?c?",        // control bytes and non-ASCII are not
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/x", nil)
		r.Host = host
		h.ServeHTTP(rec, r)
		var env struct{ Error, Message string }
		json.Unmarshal(rec.Body.Bytes(), &env)
		if rec.Code != http.StatusMisdirectedRequest || !strings.Contains(env.Message, `"`+shown+`"`) {
			t.Errorf("host %q: 421 message %q (status %d), want it to show %q", host, env.Message, rec.Code, shown)
		}
	}
}

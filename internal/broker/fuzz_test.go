package broker

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzDecodeMintBody: any body either decodes (empty, {}) or yields a
// bad_request error with a 4xx status; nothing panics.
func FuzzDecodeMintBody(f *testing.F) {
	for _, s := range []string{"", "{}", " { } ", "null", "[]", `{"a":1}`, `{} {}`, "{", `"x"`, "\x00", `{"":{}}`} {
		f.Add([]byte(s), "application/json")
		f.Add([]byte(s), "")
	}
	f.Add([]byte("{}"), "text/plain")
	f.Add([]byte("{}"), "application/merge-patch+json; charset=utf-8")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		e := decodeMintBytes(body, ct)
		if e == nil {
			return
		}
		if e.Kind != KindBadRequest || e.Status < 400 || e.Status > 499 || e.Message == "" {
			t.Fatalf("decode error %+v", e)
		}
	})
}

// FuzzBearer: the Authorization parser accepts only well-formed session
// tokens and never returns the raw header in its reason.
func FuzzBearer(f *testing.F) {
	tok := strings.Repeat("ab", 32)
	for _, s := range []string{"", "Bearer " + tok, "bearer " + tok, "Bearer  " + tok + " ", "Basic x", "Bearer", "Bearer " + strings.ToUpper(tok), "Bearer " + tok + "0", "\x00Bearer"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, _ := http.NewRequest("POST", "/", nil)
		r.Header["Authorization"] = []string{h}
		token, hash, reason := bearer(r)
		if reason == "" {
			if len(token) != 64 || strings.Trim(token, "0123456789abcdef") != "" {
				t.Fatalf("accepted token %q", token)
			}
			if len(hash) != 64 {
				t.Fatalf("hash %q", hash)
			}
		} else if token != "" {
			t.Fatal("token returned with a failure")
		}
		if len(h) > 8 && strings.Contains(reason, h) {
			t.Fatalf("reason echoes the header: %q", reason)
		}
	})
}

// FuzzValidateResponse: whatever the backend answers, the broker gets a
// valid identity or a typed error, and never passes unknown 401 text on.
func FuzzValidateResponse(f *testing.F) {
	f.Add(200, []byte(`{"wallet":"0x1111111111111111111111111111111111111111","kind":"agent","scope":{"services":["aws"],"read_only":false},"expires_at":1900000000}`))
	f.Add(200, []byte(`{"wallet":"0x1111111111111111111111111111111111111111","scope":null}`))
	f.Add(200, []byte(`{"wallet":"nope"}`))
	f.Add(200, []byte(`{"wallet":"0x1111111111111111111111111111111111111111","scope":{"services":["BAD NAME"]}}`))
	f.Add(200, []byte(`{"wallet":"0x1111111111111111111111111111111111111111","epoch":7}`))
	f.Add(200, []byte(`{"wallet":"0x1111111111111111111111111111111111111111","epoch":-1}`))
	f.Add(401, []byte(`{"error":"UNAUTHORIZED","message":"session revoked"}`))
	f.Add(401, []byte(`{"message":"leak 1234"}`))
	f.Add(500, []byte(`boom`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		id, err := parseValidateResponse(status, body)
		if id.HasEpoch && (err != nil || id.Epoch < 0) {
			t.Fatalf("epoch %d from %d %q", id.Epoch, status, body)
		}
		var ue *UnauthorizedError
		var be *BackendError
		switch {
		case err == nil:
			if status != 200 || len(id.Wallet) != 42 {
				t.Fatalf("accepted %d %q as %+v", status, body, id)
			}
		case errors.As(err, &ue):
			if !knownReasons[ue.Reason] && ue.Reason != "session not valid" {
				t.Fatalf("unknown reason passed on: %q", ue.Reason)
			}
		case errors.As(err, &be):
		default:
			t.Fatalf("untyped error %v", err)
		}
	})
}

// FuzzEpochResponse: the broker accepts only a non-negative epoch from a
// 200, reads 404 as "no epoch support", and anything else as a typed
// backend failure (which fails the mint closed).
func FuzzEpochResponse(f *testing.F) {
	for _, s := range []string{`{"epoch":0}`, `{"epoch":42}`, `{"epoch":-1}`, `{"epoch":"1"}`, `{}`, `null`, `{"epoch":1e99}`, `boom`} {
		f.Add(200, []byte(s))
	}
	f.Add(404, []byte(`{"error":"NOT_FOUND"}`))
	f.Add(500, []byte(`{"epoch":3}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e, err := parseEpochResponse(status, body)
		var be *BackendError
		switch {
		case err == nil:
			if status != 200 || e < 0 {
				t.Fatalf("accepted %d %q as epoch %d", status, body, e)
			}
		case errors.Is(err, ErrEpochUnsupported):
			if status != 404 {
				t.Fatalf("%d read as unsupported", status)
			}
		case errors.As(err, &be):
		default:
			t.Fatalf("untyped error %v", err)
		}
	})
}

// FuzzParseTreeResponse: the backend's /session/tree answer (untrusted)
// yields wallets that all parse, or an error of a known type; never a
// panic, never an empty list.
func FuzzParseTreeResponse(f *testing.F) {
	w := "0x" + strings.Repeat("ab", 20)
	for _, s := range []string{`{"wallet":"` + w + `","wallets":["` + w + `"]}`, `{"wallets":[]}`, `{"wallets":["x"]}`, `null`, `[`, `{"message":"session revoked"}`} {
		f.Add(200, s)
		f.Add(401, s)
	}
	f.Add(503, "")
	f.Fuzz(func(t *testing.T, status int, body string) {
		ws, err := parseTreeResponse(status, []byte(body))
		if err != nil {
			var ue *UnauthorizedError
			var be *BackendError
			if !errors.As(err, &ue) && !errors.As(err, &be) {
				t.Fatalf("error of unknown type: %T %v", err, err)
			}
			return
		}
		if len(ws) == 0 {
			t.Fatal("no wallets and no error")
		}
		for _, w := range ws {
			if !strings.HasPrefix(string(w), "0x") || len(w) != 42 {
				t.Fatalf("wallet %q accepted", w)
			}
		}
	})
}

// FuzzAuditViewQuery: any query string either parses into a bounded query
// or is a 400 bad_request.
func FuzzAuditViewQuery(f *testing.F) {
	for _, s := range []string{"", "kind=jwt&outcome=ok", "limit=1000", "limit=0", "cursor=1:2:default", "since=2026-01-02T15:04:05Z&until=1", "wallet=0x" + strings.Repeat("0", 40), "x=1", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := http.NewRequest("GET", "http://broker/v1/audit", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = raw
		q, e := parseAuditViewQuery(r)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Kind != KindBadRequest {
				t.Fatalf("error %+v", e)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxAuditViewLimit || len(q.Wallets) > 1 {
			t.Fatalf("query out of bounds: %+v", q)
		}
	})
}

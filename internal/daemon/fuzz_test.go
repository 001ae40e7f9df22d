package daemon

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRequest: socket request lines come from any process of the
// daemon's uid; parsing must never panic, must answer with a valid
// JSON-RPC error document, and must never echo the input.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"read","params":{"service":"openrouter"}}`,
		`{"jsonrpc":"2.0","method":"list"}`, `[]`, `{"id":{}}`, `{"jsonrpc":"2.0","id":1e400,"method":"x"}`,
		`{"jsonrpc":"2.0","id":"\u0000","method":"x","params":[1]}`, "\xff", `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, e := parseRequest(line)
		if e != nil {
			out := appendErrorResponse(nil, req.ID, e)
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("error response is not JSON: %s", out)
			}
			if len(line) > 24 && strings.Contains(e.Message, string(line)) {
				t.Fatal("error echoes the input")
			}
			return
		}
		if req.Method == "" {
			t.Fatal("accepted a request without a method")
		}
		if req.ID != nil && !json.Valid(req.ID) {
			t.Fatal("accepted an invalid id")
		}
		var p struct {
			Service *string `json:"service"`
		}
		_ = decodeParams(req.Params, &p)
		out := appendResult(nil, req.ID, map[string]any{"ok": true})
		if !json.Valid(out) {
			t.Fatalf("response is not JSON: %s", out)
		}
	})
}

// FuzzAppendJSONString: the hand-written encoder used for credential
// values must always produce a JSON string that decodes to the input (for
// valid UTF-8).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\x7f", "é€😀", "\xff\xfe", "\u2028"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		enc := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s", s, enc)
		}
		if utf8.Valid(s) && back != string(s) {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	})
}

// FuzzMaskSecret: whatever a command prints, the masked output never
// contains the secret.
func FuzzMaskSecret(f *testing.F) {
	f.Add([]byte("sk-secret-value-1234"), []byte("before sk-secret-value-1234 after"), false)
	f.Add([]byte("abc"), []byte("abcabcab"), true)
	f.Fuzz(func(t *testing.T, secret, out []byte, truncated bool) {
		if len(secret) < 4 || len(secret) > 256 || len(out) > 4096 {
			return
		}
		forms := secretForms(secret)
		got := maskSecret(append([]byte(nil), out...), forms, truncated)
		if strings.Contains(string(got), string(secret)) && !strings.Contains(Mask, string(secret)) {
			// The mask itself could form the secret with its neighbours
			// only if the secret contains '*'.
			if !strings.Contains(string(secret), "*") {
				t.Fatalf("secret %q survives in %q", secret, got)
			}
		}
	})
}

// FuzzMaskEncodings: for random secrets, base64 alignments and wrap
// widths, no encoding the masker claims to catch (raw, base64 standard and
// URL-safe with and without padding, hex either case, percent-encoding in
// the QueryEscape, PathEscape and %XX forms) survives masking.
func FuzzMaskEncodings(f *testing.F) {
	f.Add([]byte("sk-or-v1-0123456789abcdef"), []byte{}, []byte{}, uint8(76), false)
	f.Add([]byte("a b+c/d=e%f\ng"), []byte("u"), []byte("xy"), uint8(7), true)
	f.Add(bytes.Repeat([]byte{0xff}, 40), []byte("us"), []byte("z"), uint8(1), false)
	f.Fuzz(func(t *testing.T, secret, pre, post []byte, width uint8, crlf bool) {
		if len(secret) < 4 || len(secret) > 256 || len(pre) > 8 || len(post) > 8 {
			return
		}
		eol := "\n"
		if crlf {
			eol = "\r\n"
		}
		for _, e := range maskEncodings {
			checkMasked(t, e, secret, pre, post, int(width%100), eol)
		}
	})
}

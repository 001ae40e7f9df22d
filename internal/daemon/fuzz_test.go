package daemon

import (
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

// FuzzParseRunInput: during a socket run the client's lines (stdin data,
// end of stdin, signals) come from any process of the daemon's uid; they
// must never panic, a signal must be one of the forwardable ones, and
// stdin data is never more than the line carried.
func FuzzParseRunInput(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"run.stdin","params":{"data":"aGVsbG8K"}}`,
		`{"jsonrpc":"2.0","method":"run.stdin_close"}`,
		`{"jsonrpc":"2.0","method":"run.signal","params":{"signal":"SIGINT"}}`,
		`{"jsonrpc":"2.0","method":"run.signal","params":{"signal":"STOP"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"run.stdin","params":{"data":"eA=="}}`,
		`{"jsonrpc":"2.0","method":"run.stdin","params":{"data":"%%%"}}`, "\xff", `[]`,
	} {
		f.Add([]byte(s))
	}
	allowed := map[string]bool{}
	for name := range runSignals {
		allowed[name] = true
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in, ok := parseRunInput(line)
		if !ok {
			return
		}
		n := 0
		if in.stdin != nil {
			n++
			if len(in.stdin) > len(line) {
				t.Fatal("more stdin than the line carried")
			}
		}
		if in.closeStdin {
			n++
		}
		if in.signal != 0 {
			n++
			if signalName(in.signal) == "" {
				t.Fatalf("signal %v is not forwardable", in.signal)
			}
		}
		if n != 1 {
			t.Fatalf("line asks for %d things: %+v", n, in)
		}
	})
}

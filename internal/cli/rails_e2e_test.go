package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// hangingListener accepts connections and never answers them.
func hangingListener(t *testing.T) string {
	t.Helper()
	return "http://" + testkit.Listen(t, nil).Addr().String()
}

// TestRequestTimeoutBroker: a broker that accepts and never answers fails
// `token oidc` within the request timeout, naming the broker.
func TestRequestTimeoutBroker(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	broker := hangingListener(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--request-timeout", "1s", "token", "oidc"}},
		{"env", []string{"AGENTKEYS_REQUEST_TIMEOUT=1"}, []string{"token", "oidc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := w.exec(nil, w.env(append(tc.env, "AGENTKEYS_BROKER_URL="+broker)...), tc.args...)
			took := time.Since(start)
			if r.code != 1 || !strings.Contains(r.stderr, broker) || !strings.Contains(r.stderr, "did not answer in time") || !strings.Contains(r.stderr, "--request-timeout") {
				t.Fatalf("want exit 1 naming the broker and the timeout, got %s", r)
			}
			if took > 5*time.Second {
				t.Fatalf("took %s with a 1s request timeout", took)
			}
		})
	}
}

// TestRequestTimeoutBackend: the same for a backend that never answers.
func TestRequestTimeoutBackend(t *testing.T) {
	w := newWorld(t)
	backend := hangingListener(t)
	r := w.exec(nil, append(w.env(), "AGENTKEYS_BACKEND_URL="+backend, "AGENTKEYS_AUTH_TOKEN=x"), "--request-timeout", "1s", "init")
	if r.code != 1 || !strings.Contains(r.stderr, backend) || !strings.Contains(r.stderr, "did not answer in time") {
		t.Fatalf("want exit 1 naming the backend, got %s", r)
	}
}

// TestRequestTimeoutBadValue: a bad value is a usage error in words.
func TestRequestTimeoutBadValue(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--request-timeout", "soon", "whoami"}},
		{[]string{"AGENTKEYS_REQUEST_TIMEOUT=soon"}, []string{"whoami"}},
		{nil, []string{"--request-timeout", "0", "whoami"}},
	} {
		r := w.exec(nil, w.env(tc.env...), tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, "request-timeout") && !strings.Contains(r.stderr, "AGENTKEYS_REQUEST_TIMEOUT") || strings.Contains(r.stderr, "strconv.") || strings.Contains(r.stderr, "time: ") {
			t.Fatalf("%v %v: want exit 2 in words, got %s", tc.env, tc.args, r)
		}
	}
}

// TestRevokeNeedsSelf: bare revoke without a terminal refuses (exit 2,
// naming --self) and leaves the session alone; --self revokes, and
// revoking again is not an error.
func TestRevokeNeedsSelf(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	r := w.ak("revoke")
	if r.code != 2 || !strings.Contains(r.stderr, "--self") {
		t.Fatalf("bare revoke without a tty: want exit 2 naming --self, got %s", r)
	}
	w.must("whoami") // the session survived
	expectCode(t, w.ak("revoke", "--self", "bot"), 2, "revoke --self bot")
	w.must("revoke", "--self")
	expectCode(t, w.ak("whoami"), 1, "whoami after revoke --self")
	if r := w.must("revoke", "--self"); !strings.Contains(r.stdout, "nothing to revoke") {
		t.Fatalf("second revoke --self: %s", r)
	}
}

// TestRevokeAsksOnTerminal: bare revoke on a terminal asks; only yes
// revokes.
func TestRevokeAsksOnTerminal(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	r := w.inProcess("n\n", true, "", "revoke")
	if r.code != 1 || !strings.Contains(r.stderr, "[y/N]") || !strings.Contains(r.stderr, "cancelled") {
		t.Fatalf("revoke answered n: %s", r)
	}
	w.must("whoami")
	r = w.inProcess("y\n", true, "", "revoke")
	expectCode(t, r, 0, "revoke confirmed")
	expectCode(t, w.ak("whoami"), 1, "whoami after confirmed revoke")
}

// TestRunRefusesRevokedAgent: once an agent is revoked, run refuses to
// inject its credentials; another agent still runs.
func TestRunRefusesRevokedAgent(t *testing.T) {
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	w.createAgent("other", "--services", "openrouter")
	w.mustIn(newSecret(), "store", "bot", "openrouter")
	w.mustIn(newSecret(), "store", "other", "openrouter")
	w.must("run", "bot", "--", "true")
	w.must("revoke", "bot")
	r := w.ak("run", "bot", "--", "echo", "ran")
	if r.code != 1 || !strings.Contains(r.stderr, "revoked") || strings.Contains(r.stdout, "ran") {
		t.Fatalf("run of a revoked agent: want a clear refusal, got %s", r)
	}
	w.must("run", "other", "--", "true")
}

// TestDidYouMean: storing or scoping a misspelt service warns with the
// near name, and still does what was asked.
func TestDidYouMean(t *testing.T) {
	w, _ := newWorldWithAgent(t, "bot", "--services", "openrouter")
	r := w.mustIn(newSecret(), "store", "bot", "openruter")
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "outside the agent's scope") || !strings.Contains(r.stderr, `did you mean "openrouter"?`) {
		t.Fatalf("store bot openruter: %s", r)
	}
	if r := w.mustIn(newSecret(), "store", "bot", "openrouter"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("store in scope warned: %s", r)
	}
	r = w.must("scope", "set", "bot", "--add", "opneai")
	if !strings.Contains(r.stderr, "not one AgentKeys knows") || !strings.Contains(r.stderr, `did you mean "openai"?`) {
		t.Fatalf("scope set --add opneai: %s", r)
	}
	if r := w.must("scope", "set", "bot", "--add", "aws"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("scope set --add aws warned: %s", r)
	}
}

// TestApproveRepromptsWrongOTP: on a terminal a wrong OTP (or one that is
// not 6 digits) is asked again, and the right one then approves.
func TestApproveRepromptsWrongOTP(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	_, o := openPair(t, w, "openrouter")
	r := w.inProcess("12\n"+otherOTP(o.OTP)+"\ny\n"+o.OTP+"\n", true, "", "approve", o.PairCode)
	expectCode(t, r, 0, "approve after a wrong OTP")
	if strings.Count(r.stderr, "OTP shown by the daemon") != 3 || !strings.Contains(r.stderr, "wrong OTP") || !strings.Contains(r.stdout, "paired") {
		t.Fatalf("re-prompt: %s", r)
	}
}

// TestJSONErrors: with --json an error is one JSON object on stderr, for
// failures and usage errors alike.
func TestJSONErrors(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		args []string
		code int
		kind string
	}{
		{[]string{"--json", "whoami"}, 1, "failure"},
		{[]string{"--json", "usage", "--limit", "x"}, 2, "usage"},
		{[]string{"--json", "revoke"}, 2, "usage"},
	} {
		r := w.ak(tc.args...)
		var e struct{ Error, Message, Hint string }
		if r.code != tc.code {
			t.Fatalf("%v: %s", tc.args, r)
		}
		oneJSON(t, r.stderr, &e)
		if e.Error != tc.kind || e.Message == "" || strings.Contains(r.stderr, "agentkeys: ") {
			t.Fatalf("%v: want {error:%s, message}, got %s", tc.args, tc.kind, r)
		}
	}
}

// TestBadValuesInWords: a bad flag value is explained without Go parser
// internals.
func TestBadValuesInWords(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{
		{"usage", "--limit", "x"},
		{"recover", "someone", "--timeout", "5"},
		{"provision", "bot", "openrouter", "--timeout", "3x"},
		{"dev", "--backend-port", "x"},
		{"--request-timeout", "1 minute", "whoami"},
	} {
		r := w.ak(args...)
		if r.code != 2 || strings.Contains(r.stderr, "strconv.") || strings.Contains(r.stderr, "time: ") || !strings.Contains(r.stderr, "want") {
			t.Fatalf("%v: want exit 2 in words, got %s", args, r)
		}
	}
}

// TestBrokerErrorsExplained: a broker's 404 (no AWS minting) and 403
// (scope lacks aws) come with the fix in words.
func TestBrokerErrorsExplained(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	var mu sync.Mutex
	status, body := 0, ""
	fake := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(status)
		rw.Write([]byte(body))
	}))
	defer fake.Close()
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{404, `{"error":"not_found","message":"not found: AWS credential minting is not configured on this broker"}`, "agentkeys dev --sts-endpoint"},
		{403, `{"error":"forbidden","message":"forbidden: this session's scope does not include \"aws\""}`, "agentkeys scope set <agent> --add aws"},
	} {
		mu.Lock()
		status, body = tc.status, tc.body
		mu.Unlock()
		r := w.exec(nil, w.env("AGENTKEYS_BROKER_URL="+fake.URL), "token", "aws")
		if r.code != 1 || !strings.Contains(r.stderr, "hint:") || !strings.Contains(r.stderr, tc.want) {
			t.Fatalf("broker %d: want a hint with %q, got %s", tc.status, tc.want, r)
		}
	}
}

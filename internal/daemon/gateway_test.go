package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// TestChildGateway: the function `agentkeys-daemon run --gateway` calls
// gives a child base URLs and placeholders only, and requests to them
// reach the API (here a plain-HTTP fixture named by the operator's
// AGENTKEYS_OPENAI_API_URL) with the session's stored key.
func TestChildGateway(t *testing.T) {
	b := startBackend(t)
	ks, _ := b.agent(t, t.TempDir(), "openai")
	key := "sk-child-" + agentkeys.NewToken().Reveal()[:24]
	b.store(t, ks.Wallet, "openai", key)
	seen := make(chan string, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer api.Close()
	t.Setenv("AGENTKEYS_OPENAI_API_URL", api.URL)

	svc := NewService(ServiceOptions{Backend: b.client, Session: Session{Token: ks.Token, Wallet: ks.Wallet, Scope: &agentkeys.Scope{Services: []string{"openai"}}}})
	env, stop, err := ChildGateway(context.Background(), svc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if strings.Contains(strings.Join(env, "\n"), key) || vars["OPENAI_API_KEY"] == "" || vars["OPENROUTER_BASE_URL"] != "" {
		t.Fatalf("child environment: %v", env)
	}
	resp, err := http.Get(vars["OPENAI_BASE_URL"] + "/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-seen; resp.StatusCode != 200 || got != "Bearer "+key {
		t.Fatalf("status %d; the API got the key: %v", resp.StatusCode, got == "Bearer "+key)
	}
}

// TestDaemonRunGateway: `agentkeys-daemon run --gateway` against a daemon
// serving --gateway gives the command base URLs and placeholder keys for
// the services the gateway covers, never their stored keys.
func TestDaemonRunGateway(t *testing.T) {
	w := newSockRunWorld(t, "--gateway", "127.0.0.1:0")
	out, errOut, code := w.output(t, nil, "--gateway", "--", "sh", "-c", `echo "or=$OPENROUTER_BASE_URL key=$OPENROUTER_API_KEY an=$ANTHROPIC_BASE_URL ak=$ANTHROPIC_API_KEY"`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`or=http://127\.0\.0\.1:\d+/openrouter/api/v1 key=agentkeys-gateway-placeholder an=http://127\.0\.0\.1:\d+/anthropic ak=agentkeys-gateway-placeholder`).MatchString(out) {
		t.Fatalf("the command's environment: %s", out)
	}
	if strings.Contains(out+errOut+w.d.stderr(), w.or) || strings.Contains(out+errOut+w.d.stderr(), w.an) {
		t.Fatal("a stored key reached the command or a log")
	}
}

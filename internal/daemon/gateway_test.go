package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

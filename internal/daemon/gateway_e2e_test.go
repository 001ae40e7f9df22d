package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

var gatewayLine = regexp.MustCompile(`Gateway: (http://\S+)/<service>/`)

// apiFixture is a loopback HTTPS fixture of the OpenAI API that records
// the Authorization headers it saw.
type apiFixture struct {
	*httptest.Server
	caFile string
	mu     sync.Mutex
	auth   []string
}

func (f *apiFixture) sawKey(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.auth {
		if a == "Bearer "+key {
			return true
		}
	}
	return false
}

func startAPIFixture(t *testing.T, key *string) *apiFixture {
	f := &apiFixture{}
	f.Server, f.caFile = testkit.TLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+*key {
			w.WriteHeader(401)
			return
		}
		switch r.URL.Path {
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "application/json")
			// A careless API echoes the key: the gateway masks it.
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi %s"},"finish_reason":"stop"}]}`, *key)
		case "/v1/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; ; i++ {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		default:
			w.WriteHeader(404)
		}
	}))
	return f
}

// TestGatewayEndToEnd runs the daemon binary with --gateway against a real
// backend and an HTTPS API fixture whose CA comes from SSL_CERT_FILE, and
// calls it with curl: the key reaches the API, never the caller; other
// services and hosts are refused; every call is audited; revoking the
// agent cuts an open stream within a second.
func TestGatewayEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed for this test")
	}
	ctx := context.Background()
	var kb [16]byte
	rand.Read(kb[:])
	key := "sk-e2e-" + hex.EncodeToString(kb[:])
	api := startAPIFixture(t, &key)
	b, home, ks, sessFile := startBackendAgent(t, "openai")
	b.store(t, ks.Wallet, "openai", key)
	b.store(t, ks.Wallet, "anthropic", key) // stored, but outside the scope

	d := startDaemon(t, home, []string{"SSL_CERT_FILE=" + api.caFile, "AGENTKEYS_OPENAI_API_URL=" + api.URL},
		"--session-file", sessFile, "--no-socket", "--gateway", "127.0.0.1:0", "--http", "127.0.0.1:0", "--http-token-file", filepath.Join(home, "mcp-token"))
	gw := d.waitFor(gatewayLine, 30*time.Second)[1]
	endpoint := d.waitFor(httpLine, 30*time.Second)[1]
	d.waitReady()
	if !strings.Contains(d.stderr(), `"level":"WARN","msg":"gateway: API origin overridden`) {
		t.Fatalf("the API URL override was not logged at WARN:\n%s", d.stderr())
	}

	curl := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "20", "-w", "\n%{http_code}"}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, _ := cmd.CombinedOutput()
		s := string(out)
		i := strings.LastIndex(s, "\n")
		var code int
		fmt.Sscan(s[i+1:], &code)
		return s[:max(i, 0)], code
	}
	body, code := curl("-X", "POST", "-H", "Authorization: Bearer "+"placeholder", "-d", `{"model":"m","messages":[]}`, gw+"/openai/v1/chat/completions")
	if code != 200 || !strings.Contains(body, `"content":"hi ****"`) || strings.Contains(body, key) {
		t.Fatalf("chat through the gateway: %d %s", code, body)
	}
	if !api.sawKey(key) {
		t.Fatal("the API fixture did not get the key")
	}
	if _, code = curl(gw + "/anthropic/v1/messages"); code != 403 {
		t.Fatalf("out-of-scope service: %d", code)
	}
	if _, code = curl("-H", "Host: api.openai.com", gw+"/openai/v1/models"); code != 421 {
		t.Fatalf("foreign Host: %d", code)
	}
	if _, code = curl("--proxy", gw, "http://example.com/openai/v1/models"); code != 400 {
		t.Fatalf("absolute-URI proxying: %d", code)
	}

	// MCP agentkeys.http_request goes through the same gateway.
	cs := mcpHTTPSession(t, endpoint, filepath.Join(home, "mcp-token"))
	if names, _ := listTools(t, cs); !slices.Contains(names, ToolHTTPRequest) {
		t.Fatalf("a daemon with --gateway does not list %s: %v", ToolHTTPRequest, names)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolHTTPRequest, Arguments: map[string]any{
		"method": "POST", "service": "openai", "path": "/v1/chat/completions", "body": "{}"}})
	if err != nil || res.IsError || !strings.Contains(textOf(res), `\"content\":\"hi ****\"`) || strings.Contains(textOf(res), key) {
		t.Fatalf("MCP http_request: %v %v", err, textOf(res))
	}

	// Every call is audited at the backend (batches every 250 ms).
	deadline := time.Now().Add(5 * time.Second)
	for {
		page, err := b.client.QueryAudit(ctx, b.master.Token, backendclient.AuditFilter{Action: agentkeys.ActionHTTP, Agent: ks.Wallet})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) >= 5 {
			var details []string
			for _, e := range page.Events {
				details = append(details, e.Service+" "+e.Result+" "+e.Detail)
			}
			all := strings.Join(details, "\n")
			if !strings.Contains(all, "openai ok POST /v1/chat/completions status=200") || !strings.Contains(all, "anthropic denied_scope GET /v1/messages status=403") {
				t.Fatalf("audit rows:\n%s", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d http audit rows after 5 s", len(page.Events))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// An open stream is cut when the agent is revoked.
	stream := exec.Command("curl", "-sS", "-N", gw+"/openai/v1/stream")
	out, _ := stream.StdoutPipe()
	if err := stream.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); err != nil || line != "data: 0\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	if _, err := b.client.RevokeWallet(ctx, b.master.Token, ks.Wallet); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	go io.Copy(io.Discard, br)
	done := make(chan error, 1)
	go func() { done <- stream.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stream ended cleanly; want it cut")
		}
		if d := time.Since(revoked); d > time.Second {
			t.Fatalf("stream cut after %v; want within 1 s", d)
		}
	case <-time.After(3 * time.Second):
		stream.Process.Kill()
		t.Fatal("revoking the agent did not cut the open stream")
	}
	if _, code = curl(gw + "/openai/v1/chat/completions"); code != 401 {
		t.Fatalf("after revocation: %d", code)
	}
}

package daemon

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

const mcpSecret = "sk-or-v1-mcp-secret-7f3a9c2e41d0b8"

func textOf(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// daemonTools are the tools the daemon binary lists without --provision
// (http_request is always there: the daemon has its in-process gateway
// behind it), sorted by name.
var daemonTools = []string{ToolGetCredential, ToolHTTPRequest, ToolListCredentials, ToolRequestScope, ToolRunWithCredential}

// listTools lists the tools cs is offered and their names, sorted.
func listTools(t testing.TB, cs *mcp.ClientSession) ([]string, []*mcp.Tool) {
	t.Helper()
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names, tools.Tools
}

// connectStdio runs the built daemon with --stdio under the go-sdk client.
func connectStdio(t *testing.T, home string, progress chan<- *mcp.ProgressNotificationParams, args ...string) (*mcp.ClientSession, *testkit.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(daemonBin, append([]string{"--stdio"}, args...)...)
	cmd.Env = daemonEnv(home)
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	opts := &mcp.ClientOptions{}
	if progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { progress <- r.Params }
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agentkeys-test", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v; stderr:\n%s", err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, stderr
}

func TestMCPStdio(t *testing.T) {
	ctx := context.Background()
	b, home, ks, sessFile := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	b.store(t, ks.Wallet, "openai", "sk-openai-out-of-scope")
	progress := make(chan *mcp.ProgressNotificationParams, 8)
	cs, _ := connectStdio(t, home, progress, "--session-file", sessFile, "--socket", filepath.Join(home, "mcp.sock"))

	if v := cs.InitializeResult().ProtocolVersion; v < "2025-06-18" {
		t.Fatalf("negotiated protocol version %s", v)
	}
	if cs.InitializeResult().Capabilities.Tools == nil {
		t.Fatal("tools capability missing")
	}
	names, tools := listTools(t, cs)
	if !slices.Equal(names, daemonTools) {
		t.Fatalf("tools %v, want %v", names, daemonTools)
	}
	// run_with_credential's command is a plain array of strings, the type
	// clients build arguments from.
	for _, tl := range tools {
		if tl.Name != ToolRunWithCredential {
			continue
		}
		raw, _ := json.Marshal(tl.InputSchema)
		var schema struct {
			Properties map[string]struct {
				Type  any `json:"type"`
				Items struct {
					Type any `json:"type"`
				} `json:"items"`
			} `json:"properties"`
			Required []string `json:"required"`
		}
		json.Unmarshal(raw, &schema)
		cmd := schema.Properties["command"]
		if cmd.Type != "array" || cmd.Items.Type != "string" || !slices.Contains(schema.Required, "command") {
			t.Fatalf("run_with_credential input schema %s: command must be {\"type\":\"array\",\"items\":{\"type\":\"string\"}} and required", raw)
		}
	}
	if err := cs.Ping(ctx, nil); err != nil {
		t.Fatalf("ping: %v", err)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{"service": "openrouter"}})
	if err != nil || res.IsError || textOf(res) != mcpSecret {
		t.Fatalf("get_credential: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{"service": "openai"}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeDenied+":") {
		t.Fatalf("get_credential out of scope: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{}})
	if err != nil || !res.IsError {
		t.Fatalf("get_credential without service: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolListCredentials})
	if err != nil || res.IsError {
		t.Fatalf("list: %v %+v", err, res)
	}
	var list struct{ Services []string }
	raw, _ := json.Marshal(res.StructuredContent)
	if json.Unmarshal(raw, &list); !slices.Equal(list.Services, []string{"openrouter"}) {
		t.Fatalf("list structured content %s", raw)
	}

	// run_with_credential: the command sees the secret, the model never does.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{
		"service": "openrouter",
		"command": []string{"sh", "-c", `echo "$OPENROUTER_API_KEY"; printf %s "$OPENROUTER_API_KEY" | base64; printf 'x%s' "$OPENROUTER_API_KEY" | base64; echo "len=${#OPENROUTER_API_KEY}" >&2; exit 7`},
	}})
	if err != nil || res.IsError {
		t.Fatalf("run_with_credential: %v %+v", err, res)
	}
	all, _ := json.Marshal(res)
	for _, leak := range []string{mcpSecret, base64.StdEncoding.EncodeToString([]byte(mcpSecret)), strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(mcpSecret)), "=")} {
		if strings.Contains(string(all), leak) {
			t.Fatalf("run_with_credential returned the secret: %s", all)
		}
	}
	var rr RunResult
	raw, _ = json.Marshal(res.StructuredContent)
	json.Unmarshal(raw, &rr)
	if rr.ExitCode != 7 || !strings.Contains(rr.Stdout, Mask) || !strings.Contains(rr.Stderr, "len=34") || rr.EnvName != "OPENROUTER_API_KEY" {
		t.Fatalf("run result %+v", rr)
	}
	// The secret is never in argv: a command that prints its own argv
	// shows no secret, and a custom env_name works.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{
		"service": "openrouter", "env_name": "MY_KEY", "command": []string{"sh", "-c", `test -n "$MY_KEY" && test -z "$OPENROUTER_API_KEY" && cat /proc/$$/cmdline | tr '\0' ' '`},
	}})
	if err != nil || res.IsError || strings.Contains(textOf(res), mcpSecret) || !strings.Contains(textOf(res), "exit code: 0") {
		t.Fatalf("env_name run: %v %s", err, textOf(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openai", "command": []string{"true"}}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeDenied) {
		t.Fatalf("run out of scope: %v %s", err, textOf(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"/nonexistent/prog"}}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeExecFailed) {
		t.Fatalf("run missing program: %v %s", err, textOf(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"sleep", "30"}, "timeout_seconds": 1}})
	if err != nil || res.IsError {
		t.Fatalf("run timeout: %v %s", err, textOf(res))
	}
	raw, _ = json.Marshal(res.StructuredContent)
	if json.Unmarshal(raw, &rr); !rr.TimedOut {
		t.Fatalf("timeout not reported: %s", raw)
	}

	// provision without --provision (not listed, called anyway from a
	// stale list): a tool error with a stable code, after a progress
	// notification.
	params := &mcp.CallToolParams{Name: ToolProvision, Arguments: map[string]any{"service": "openrouter"}}
	params.SetProgressToken("p1")
	res, err = cs.CallTool(ctx, params)
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeUnavailable) || !strings.Contains(textOf(res), "--provision") {
		t.Fatalf("provision: %v %+v", err, res)
	}
	select {
	case p := <-progress:
		if p.ProgressToken != "p1" {
			t.Fatalf("progress token %v", p.ProgressToken)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no progress notification")
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "agentkeys.nope"}); err == nil {
		t.Fatal("unknown tool accepted")
	}
}

func TestMCPGetCredentialDisabled(t *testing.T) {
	ctx := context.Background()
	b, home, ks, sessFile := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	cs, _ := connectStdio(t, home, nil, "--session-file", sessFile, "--no-socket", "--no-get-credential")
	names, _ := listTools(t, cs)
	for _, n := range names {
		if n == ToolGetCredential || n == ToolProvision {
			t.Fatalf("--no-get-credential without --provision lists %s", n)
		}
	}
	if len(names) != 4 {
		t.Fatalf("tools %d, want http_request, list_credentials, request_scope and run_with_credential", len(names))
	}
	// Called anyway (a stale list): the error says why and what to use.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{"service": "openrouter"}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeDisabled) ||
		!strings.Contains(textOf(res), "--no-get-credential") || !strings.Contains(textOf(res), ToolRunWithCredential) {
		t.Fatalf("get_credential when disabled: %v %+v", err, res)
	}
	all, _ := json.Marshal(res)
	if strings.Contains(string(all), mcpSecret) {
		t.Fatal("disabled get_credential returned the secret")
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"sh", "-c", `test "${#OPENROUTER_API_KEY}" -gt 10`}}})
	if err != nil || res.IsError || !strings.Contains(textOf(res), "exit code: 0") {
		t.Fatalf("run_with_credential when get is disabled: %v %s", err, textOf(res))
	}
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func TestMCPStreamableHTTP(t *testing.T) {
	ctx := context.Background()
	b, home, ks, sessFile := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)

	// Generated token in a 0600 file.
	tokFile := filepath.Join(home, "mcp-token")
	d := startDaemon(t, home, nil, "--session-file", sessFile, "--no-socket", "--http", "127.0.0.1:0", "--http-token-file", tokFile)
	endpoint := d.waitFor(httpLine, 30*time.Second)[1]
	d.waitReady()
	fi, err := os.Stat(tokFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	tokBytes, _ := os.ReadFile(tokFile)
	token := strings.TrimSpace(string(tokBytes))

	testkit.WantMCPBearerRequired(t, endpoint, token)

	checkResourceMetadata(t, endpoint)

	client := mcp.NewClient(&mcp.Implementation{Name: "agentkeys-test", Version: "1"}, nil)
	if cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint}, nil); err == nil {
		cs.Close()
		t.Fatal("an MCP client without the bearer connected")
	}
	hc := &http.Client{Transport: bearerTransport{token: token, base: http.DefaultTransport}}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if listed, _ := listTools(t, cs); !slices.Equal(listed, daemonTools) {
		t.Fatalf("tools %v, want %v", listed, daemonTools)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{"service": "openrouter"}})
	if err != nil || res.IsError || textOf(res) != mcpSecret {
		t.Fatalf("get over HTTP: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"sh", "-c", `echo $OPENROUTER_API_KEY`}}})
	if err != nil || res.IsError || strings.Contains(textOf(res), mcpSecret) || !strings.Contains(textOf(res), Mask) {
		t.Fatalf("run over HTTP: %v %s", err, textOf(res))
	}
	cs.Close()
	if strings.Contains(d.stderr(), token) {
		t.Fatal("the MCP bearer appears on stderr")
	}

	// Bearer from the environment; non-loopback refused.
	home2 := t.TempDir()
	_, sessFile2 := b.agent(t, home2, "openrouter")
	envTok := "env-token-0123456789abcdef"
	d2 := startDaemon(t, home2, []string{EnvMCPToken + "=" + envTok}, "--session-file", sessFile2, "--no-socket", "--http", "127.0.0.1:0")
	endpoint2 := d2.waitFor(httpLine, 30*time.Second)[1]
	hc2 := &http.Client{Transport: bearerTransport{token: envTok, base: http.DefaultTransport}}
	cs2, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint2, HTTPClient: hc2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs2.Close()
	d3 := startDaemon(t, home2, nil, "--session-file", sessFile2, "--no-socket", "--http", "0.0.0.0:0")
	if code := d3.wait(20 * time.Second); code == 0 || !strings.Contains(d3.stderr(), "loopback only") {
		t.Fatalf("non-loopback --http: exit %d\n%s", code, d3.stderr())
	}
}

// TestStdioOnlyProtocolOnStdout: with --stdio, every stdout line is a
// JSON-RPC message, the client's protocol version is negotiated, and the
// daemon exits 0 when stdin closes.
func TestStdioOnlyProtocolOnStdout(t *testing.T) {
	_, home, _, sessFile := startBackendAgent(t, "openrouter")
	cmd := commandWithEnv(home, daemonBin, "--stdio", "--session-file", sessFile, "--no-socket")
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"agentkeys.nope","arguments":{}}}`,
	}, "\n") + "\n"
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr testkit.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte(in))
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 4 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	stdin.Close() // the client goes away: the daemon exits 0
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if len(lines) != 4 {
		t.Fatalf("%d stdout lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	slices.SortFunc(lines, func(a, b string) int {
		return strings.Compare(a[strings.Index(a, `"id":`):], b[strings.Index(b, `"id":`):])
	})
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["jsonrpc"] != "2.0" {
			t.Fatalf("non-protocol stdout line: %q", l)
		}
	}
	if !strings.Contains(lines[0], `"protocolVersion":"2025-03-26"`) {
		t.Fatalf("protocol version not negotiated: %s", lines[0])
	}
	if !strings.Contains(lines[3], `"error"`) || !strings.Contains(lines[3], "-32602") {
		t.Fatalf("unknown tool: %s", lines[3])
	}
}

// checkResourceMetadata: the 401 names the OAuth protected resource
// metadata (RFC 9728), which describes /mcp, takes the bearer in a header
// and lists no authorization server (so clients ask for the token instead
// of trying dynamic client registration), at both well-known paths.
func checkResourceMetadata(t *testing.T, endpoint string) {
	t.Helper()
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(challenges) != 1 || challenges[0].Scheme != "bearer" {
		t.Fatalf("WWW-Authenticate %q: %v %+v", resp.Header.Get("WWW-Authenticate"), err, challenges)
	}
	p := challenges[0].Params
	u, _ := url.Parse(endpoint)
	wantMeta := "http://" + u.Host + "/.well-known/oauth-protected-resource/mcp"
	if p["resource_metadata"] != wantMeta || p["error"] != "invalid_token" || !strings.Contains(p["error_description"], "AGENTKEYS_MCP_TOKEN") {
		t.Fatalf("challenge params %v, want resource_metadata %s and a description naming AGENTKEYS_MCP_TOKEN", p, wantMeta)
	}
	for _, metaURL := range []string{wantMeta, "http://" + u.Host + "/.well-known/oauth-protected-resource"} {
		meta, err := oauthex.GetProtectedResourceMetadata(context.Background(), metaURL, endpoint, http.DefaultClient)
		if err != nil {
			t.Fatalf("%s: %v", metaURL, err)
		}
		if meta.Resource != endpoint || len(meta.AuthorizationServers) != 0 || !slices.Equal(meta.BearerMethodsSupported, []string{"header"}) || meta.ResourceName == "" {
			t.Fatalf("%s: %+v", metaURL, meta)
		}
	}
}

//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/keychain"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// The real MCP peers: the official TypeScript SDK client
// (e2e/mcp/client.mjs on @modelcontextprotocol/sdk) and the MCP Inspector
// CLI (@modelcontextprotocol/inspector --cli), both from e2e/mcp/node_modules
// (scripts/ci/npm-peer.sh e2e/mcp installs them with `npm ci`), against the built
// agentkeys-daemon over stdio and Streamable HTTP.

const (
	mcpDir          = "mcp" // relative to this package's directory
	mcpNodeTimeout  = 60 * time.Second
	mcpService      = "openrouter"
	mcpOtherService = "openai"
)

// mcpToolNames are the tools a daemon started without --provision offers
// (agentkeys.provision is not listed then, nor agentkeys.get_credential
// with --no-get-credential).
var mcpToolNames = []string{"agentkeys.get_credential", "agentkeys.http_request", "agentkeys.list_credentials", "agentkeys.request_scope", "agentkeys.run_with_credential"}

// mcpRequirePeers returns the node binary, or skips (fails under
// AGENTKEYS_REQUIRE_E2E=1) when node or the npm packages are missing.
func mcpRequirePeers(t *testing.T) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node is not on PATH")
	}
	for _, p := range []string{"@modelcontextprotocol/sdk/package.json", "@modelcontextprotocol/inspector/package.json", ".bin/mcp-inspector"} {
		if _, err := os.Stat(filepath.Join(mcpDir, "node_modules", p)); err != nil {
			missing = append(missing, "e2e/mcp/node_modules/"+p+" is missing")
		}
	}
	if len(missing) == 0 {
		return node
	}
	msg := "MCP peers not installed (" + strings.Join(missing, "; ") + "); run scripts/ci/npm-peer.sh e2e/mcp"
	if os.Getenv("AGENTKEYS_REQUIRE_E2E") == "1" {
		t.Fatal(msg + " — AGENTKEYS_REQUIRE_E2E=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

func mcpRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// mcpFixture is a backend binary with a master, an agent scoped to
// openrouter holding a fresh secret, and the agent's session file.
type mcpFixture struct {
	backendURL string
	secret     string
	sessFile   string
	home       string // HOME of the daemons and node processes
}

func mcpSetup(t *testing.T) *mcpFixture {
	t.Helper()
	dir := t.TempDir()
	url, _ := startBackend(t, dir, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, master := loginMaster(t, url, "e2e-mcp-master-"+mcpRandHex(6))
	agent := newAgent(t, ctx, c, master.Token, mcpService)
	f := &mcpFixture{backendURL: url, secret: "sk-or-v1-" + mcpRandHex(24), home: filepath.Join(dir, "home")}
	if err := c.StoreCredential(ctx, master.Token, agent.Wallet, mcpService, []byte(f.secret)); err != nil {
		t.Fatal(err)
	}
	// Stored for the agent but outside its scope: must be refused.
	if err := c.StoreCredential(ctx, master.Token, agent.Wallet, mcpOtherService, []byte("sk-openai-"+mcpRandHex(16))); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{f.home, filepath.Join(f.home, ".config"), filepath.Join(f.home, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.sessFile = filepath.Join(dir, "agent-session.json")
	if err := keychain.WriteSessionFile(f.sessFile, keychain.Session{Token: agent.Token, Wallet: agent.Wallet, Backend: url}); err != nil {
		t.Fatal(err)
	}
	return f
}

// env is the environment of a node process (and so of a daemon it spawns):
// nothing from the caller's but PATH, with an isolated HOME.
func (f *mcpFixture) env(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + f.home,
		"XDG_CONFIG_HOME=" + filepath.Join(f.home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(f.home, "run"),
		"AGENTKEYS_SESSION_STORE=file",
		"NO_COLOR=1",
		"CI=1",
	}, extra...)
}

// leaks lists the forms of the secret that must never reach a model.
func (f *mcpFixture) leaks() []string {
	b64 := base64.StdEncoding.EncodeToString([]byte(f.secret))
	return []string{f.secret, b64, strings.TrimRight(b64, "="), hex.EncodeToString([]byte(f.secret))}
}

func (f *mcpFixture) assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, l := range f.leaks() {
		if strings.Contains(s, l) {
			t.Fatalf("%s contains the secret (or an encoding of it):\n%s", what, s)
		}
	}
}

// mcpNode runs node (client.mjs or the inspector) in e2e/mcp with a
// 60 s bound; the whole process group (node and any daemon it spawned) is
// killed on timeout.
func mcpNode(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mcpNodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = mcpDir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	// Reap anything left in the group (a daemon that outlived its client).
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), mcpNodeTimeout, out.String(), errb.String())
	}
	code, ok := testkit.ExitCode(err)
	if !ok {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// tsResult is client.mjs's summary.
type tsResult struct {
	Transport             string `json:"transport"`
	ClientProtocolVersion string `json:"clientProtocolVersion"`
	ProtocolVersion       string `json:"protocolVersion"`
	ServerInfo            struct{ Name string }
	ToolsCapability       bool     `json:"toolsCapability"`
	Ping                  bool     `json:"ping"`
	Tools                 []string `json:"tools"`
	ToolSchemas           map[string]struct {
		Input json.RawMessage `json:"input"`
	} `json:"toolSchemas"`
	Get               tsCall          `json:"get"`
	GetDenied         tsCall          `json:"getDenied"`
	GetMissingService tsCall          `json:"getMissingService"`
	List              tsCall          `json:"list"`
	Run               tsCall          `json:"run"`
	RunEnvName        tsCall          `json:"runEnvName"`
	RunDenied         tsCall          `json:"runDenied"`
	Provision         tsCall          `json:"provision"`
	UnknownTool       tsCall          `json:"unknownTool"`
	Fatal             string          `json:"fatal"`
	Raw               json.RawMessage `json:"-"`
}

type tsCall struct {
	IsError    bool            `json:"isError"`
	Text       string          `json:"text"`
	Structured json.RawMessage `json:"structured"`
	Progress   []any           `json:"progress"`
	Wire       []struct {
		Progress *struct {
			ProgressToken any     `json:"progressToken"`
			Message       string  `json:"message"`
			Progress      float64 `json:"progress"`
		} `json:"progress"`
		Response any `json:"response"`
	} `json:"wire"`
	RPCError *struct {
		Code    any    `json:"code"`
		Message string `json:"message"`
	} `json:"rpcError"`
}

func (c tsCall) ok(t *testing.T, what string) {
	t.Helper()
	if c.RPCError != nil {
		t.Fatalf("%s: JSON-RPC error %v: %s", what, c.RPCError.Code, c.RPCError.Message)
	}
	if c.IsError {
		t.Fatalf("%s: isError result %q", what, c.Text)
	}
}

func (c tsCall) toolError(t *testing.T, what, code string) {
	t.Helper()
	if c.RPCError != nil {
		t.Fatalf("%s: want an isError result with code %s, got a JSON-RPC error %v: %s", what, code, c.RPCError.Code, c.RPCError.Message)
	}
	if !c.IsError || !strings.HasPrefix(c.Text, code+":") {
		t.Fatalf("%s: want an isError result with code %s, got isError=%v %q", what, code, c.IsError, c.Text)
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// runTSClient runs client.mjs and decodes its summary.
func runTSClient(t *testing.T, node string, env []string, args ...string) (tsResult, string, string) {
	t.Helper()
	stdout, stderr, code := mcpNode(t, env, append([]string{node, "client.mjs"}, args...)...)
	if code != 0 {
		t.Fatalf("client.mjs %s exited %d\nstdout:\n%s\nstderr:\n%s", args[0], code, stdout, stderr)
	}
	var r tsResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("client.mjs printed non-JSON (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	r.Raw = json.RawMessage(stdout)
	if r.Fatal != "" {
		t.Fatalf("client.mjs: %s\nstderr:\n%s", r.Fatal, stderr)
	}
	return r, stdout, stderr
}

// checkTS asserts what client.mjs saw over transport: get_credential
// returns the stored secret, or is refused as DISABLED when getEnabled is
// false; the rest holds with or without it.
func (f *mcpFixture) checkTS(t *testing.T, r tsResult, transport string, getEnabled bool) {
	t.Helper()
	if r.Transport != transport {
		t.Fatalf("transport %q, want %q", r.Transport, transport)
	}
	if getEnabled {
		r.Get.ok(t, "get_credential over "+transport)
		if r.Get.Text != f.secret {
			t.Fatalf("get_credential over %s returned %d bytes, not the stored secret", transport, len(r.Get.Text))
		}
	} else {
		r.Get.toolError(t, "get_credential when disabled", "DISABLED")
	}
	if r.ProtocolVersion == "" || r.ProtocolVersion != r.ClientProtocolVersion {
		t.Fatalf("negotiated protocol %q, want the SDK's latest %q", r.ProtocolVersion, r.ClientProtocolVersion)
	}
	if r.ServerInfo.Name != "agentkeys-daemon" || !r.ToolsCapability || !r.Ping {
		t.Fatalf("initialize/ping: %s", r.Raw)
	}
	wantTools := mcpToolNames
	if !getEnabled {
		wantTools = slices.DeleteFunc(slices.Clone(mcpToolNames), func(n string) bool { return n == "agentkeys.get_credential" })
	}
	if !slices.Equal(r.Tools, wantTools) {
		t.Fatalf("tools %v, want %v", r.Tools, wantTools)
	}
	// A client that fills arguments by "type" sees a plain array.
	var run struct {
		Properties struct {
			Command struct {
				Type  any `json:"type"`
				Items struct {
					Type any `json:"type"`
				} `json:"items"`
			} `json:"command"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.ToolSchemas["agentkeys.run_with_credential"].Input, &run); err != nil ||
		run.Properties.Command.Type != "array" || run.Properties.Command.Items.Type != "string" {
		t.Fatalf("run_with_credential input schema as the TS SDK sees it: %s", r.ToolSchemas["agentkeys.run_with_credential"].Input)
	}
	if getEnabled {
		r.GetDenied.toolError(t, "get_credential out of scope", "DENIED")
	} else {
		r.GetDenied.toolError(t, "get_credential out of scope when disabled", "DISABLED")
	}
	if !r.GetMissingService.IsError && r.GetMissingService.RPCError == nil {
		t.Fatalf("get_credential without a service: %+v", r.GetMissingService)
	}

	r.List.ok(t, "list_credentials")
	var list struct {
		Services []string `json:"services"`
	}
	if err := json.Unmarshal(r.List.Structured, &list); err != nil || !slices.Equal(list.Services, []string{mcpService}) {
		t.Fatalf("list_credentials structured content %s", r.List.Structured)
	}
	if err := json.Unmarshal([]byte(r.List.Text), &list); err != nil || !slices.Equal(list.Services, []string{mcpService}) {
		t.Fatalf("list_credentials text %q", r.List.Text)
	}

	// run_with_credential: the command saw the secret, the client never does.
	r.Run.ok(t, "run_with_credential")
	runJSON, _ := json.Marshal(r.Run)
	f.assertNoSecret(t, "run_with_credential result", string(runJSON))
	var rr struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
		EnvName  string `json:"env_name"`
	}
	if err := json.Unmarshal(r.Run.Structured, &rr); err != nil {
		t.Fatalf("run_with_credential structured content %s: %v", r.Run.Structured, err)
	}
	wantLen := "len=" + strconv.Itoa(len(f.secret))
	if rr.ExitCode != 3 || !strings.Contains(rr.Stdout, "key=****") || !strings.Contains(rr.Stderr, wantLen) || rr.EnvName != "OPENROUTER_API_KEY" {
		t.Fatalf("run_with_credential result %+v", rr)
	}
	if !strings.Contains(r.Run.Text, "****") {
		t.Fatalf("run_with_credential text has no mask: %q", r.Run.Text)
	}
	r.RunEnvName.ok(t, "run_with_credential env_name")
	if !strings.Contains(r.RunEnvName.Text, "custom=****") {
		t.Fatalf("run_with_credential env_name: %q", r.RunEnvName.Text)
	}
	r.RunDenied.toolError(t, "run_with_credential out of scope", "DENIED")

	r.Provision.toolError(t, "provision", "PROVISIONER_UNAVAILABLE")
	// A progress notification for the call's token came before its result.
	w := r.Provision.Wire
	if len(w) < 2 || w[0].Progress == nil || w[len(w)-1].Response == nil ||
		fmt.Sprint(w[0].Progress.ProgressToken) != fmt.Sprint(w[len(w)-1].Response) || w[0].Progress.Message == "" {
		t.Fatalf("provision: want a progress notification and then the result, got %s", mustMarshal(w))
	}
	if r.UnknownTool.RPCError == nil && !r.UnknownTool.IsError {
		t.Fatalf("unknown tool accepted: %+v", r.UnknownTool)
	}
}

// TestMCPTypeScriptSDK runs e2e/mcp/client.mjs (@modelcontextprotocol/sdk)
// against the built daemon over stdio and Streamable HTTP.
func TestMCPTypeScriptSDK(t *testing.T) {
	node := mcpRequirePeers(t)
	f := mcpSetup(t)
	daemon := bin["agentkeys-daemon"]

	t.Run("stdio", func(t *testing.T) {
		r, _, stderr := runTSClient(t, node, f.env(), "stdio", daemon, "--session-file", f.sessFile, "--no-socket", "--stdio")
		f.checkTS(t, r, "stdio", true)
		// stderr is node's and the daemon's (inherited).
		f.assertNoSecret(t, "daemon/client stderr", stderr)
		if !strings.Contains(stderr, `"msg":"daemon ready"`) {
			t.Fatalf("the daemon's log did not reach stderr:\n%s", stderr)
		}
	})

	t.Run("stdio-no-get-credential", func(t *testing.T) {
		r, stdout, stderr := runTSClient(t, node, f.env(), "stdio", daemon, "--session-file", f.sessFile, "--no-socket", "--stdio", "--no-get-credential")
		f.checkTS(t, r, "stdio", false)
		// With get_credential off, nothing the client saw holds the secret.
		f.assertNoSecret(t, "client output with --no-get-credential", stdout)
		f.assertNoSecret(t, "daemon/client stderr", stderr)
	})

	t.Run("http", func(t *testing.T) {
		token := "e2e-mcp-" + mcpRandHex(16)
		endpoint, d := f.startHTTPDaemon(t, token)
		testkit.WantMCPBearerRequired(t, endpoint, token)
		r, _, stderr := runTSClient(t, node, f.env("AGENTKEYS_MCP_TOKEN="+token), "http", endpoint)
		f.checkTS(t, r, "http", true)
		f.assertNoSecret(t, "client stderr", stderr)
		f.assertNoSecret(t, "daemon stderr", d.stderr.String())
		if strings.Contains(d.stderr.String(), token) {
			t.Fatalf("the MCP bearer appears in the daemon's stderr:\n%s", d.stderr)
		}
	})
}

// startHTTPDaemon runs the daemon binary with --http on a free loopback
// port and the bearer from AGENTKEYS_MCP_TOKEN, and waits until /mcp
// answers.
func (f *mcpFixture) startHTTPDaemon(t *testing.T, token string, extra ...string) (string, *proc) {
	t.Helper()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--session-file", f.sessFile, "--no-socket", "--http", addr}, extra...)
	d := start(t, f.env("AGENTKEYS_MCP_TOKEN=" + token)[1:], "agentkeys-daemon", args...)
	endpoint := "http://" + addr + "/mcp"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(endpoint)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return endpoint, d
			}
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("agentkeys-daemon exited early: %v\n%s", err, d.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer in time\n%s", endpoint, d.stderr)
		}
	}
}

// inspector runs the locally installed MCP Inspector CLI.
func (f *mcpFixture) inspector(t *testing.T, node string, args ...string) (string, string, int) {
	t.Helper()
	bin := filepath.Join("node_modules", ".bin", "mcp-inspector")
	return mcpNode(t, f.env(), append([]string{node, bin, "--cli"}, args...)...)
}

// inspectorTools decodes a tools/list result.
func inspectorTools(t *testing.T, stdout, stderr string) []string {
	t.Helper()
	var res struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("inspector tools/list printed non-JSON (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

// inspectorCall decodes a tools/call result.
func inspectorCall(t *testing.T, stdout, stderr string) tsCall {
	t.Helper()
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError    bool            `json:"isError"`
		Structured json.RawMessage `json:"structuredContent"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("inspector tools/call printed non-JSON (%v):\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	c := tsCall{IsError: res.IsError, Structured: res.Structured}
	for _, ct := range res.Content {
		if ct.Type == "text" {
			c.Text += ct.Text
		}
	}
	return c
}

// inspectorChecks runs `mcp-inspector --cli` against target (the daemon
// command for stdio, the endpoint and its options for HTTP) and checks
// what holds over every transport: tools/list names every tool,
// get_credential returns the stored secret (which no stderr holds), and
// run_with_credential (with runArgs) sees the key but shows it masked. over
// names the transport in failures.
func (f *mcpFixture) inspectorChecks(t *testing.T, node, over string, target []string, runArgs string) {
	t.Helper()
	out, errs, code := f.inspector(t, node, append(slices.Clone(target), "--method", "tools/list")...)
	if code != 0 {
		t.Fatalf("tools/list over %s exit %d\n%s\n%s", over, code, out, errs)
	}
	if names := inspectorTools(t, out, errs); !slices.Equal(names, mcpToolNames) {
		t.Fatalf("tools/list over %s %v, want %v", over, names, mcpToolNames)
	}

	out, errs, code = f.inspector(t, node, append(slices.Clone(target), "--method", "tools/call", "--tool-name", "agentkeys.get_credential", "--tool-arg", "service="+mcpService)...)
	if c := inspectorCall(t, out, errs); code != 0 || c.IsError || c.Text != f.secret {
		t.Fatalf("get_credential over %s via the inspector: exit %d, isError=%v, %d bytes (want the stored secret)\n%s", over, code, c.IsError, len(c.Text), errs)
	}
	f.assertNoSecret(t, "inspector stderr over "+over, errs)

	out, errs, code = f.inspector(t, node, append(slices.Clone(target), "--method", "tools/call", "--tool-name", "agentkeys.run_with_credential", "--tool-args-json", runArgs)...)
	f.assertNoSecret(t, "run_with_credential over "+over+" via the inspector", out+errs)
	if c := inspectorCall(t, out, errs); code != 0 || c.IsError || !strings.Contains(c.Text, "key=****") {
		t.Fatalf("run_with_credential over %s via the inspector: exit %d %+v\n%s", over, code, c, errs)
	}
}

// TestMCPInspectorCLI drives the built daemon with
// `mcp-inspector --cli` (the npx @modelcontextprotocol/inspector --cli
// entry point, run from e2e/mcp/node_modules) over stdio and HTTP.
func TestMCPInspectorCLI(t *testing.T) {
	node := mcpRequirePeers(t)
	f := mcpSetup(t)
	daemon := bin["agentkeys-daemon"]
	const exitToolError = 5 // the inspector's EXIT_CODES.TOOL_ERROR
	runArgs := `{"service":"openrouter","command":["sh","-c","echo key=$OPENROUTER_API_KEY"]}`

	// The server command comes first, the inspector's options after it.
	stdio := []string{daemon, "--session-file", f.sessFile, "--no-socket", "--stdio"}

	t.Run("stdio", func(t *testing.T) {
		f.inspectorChecks(t, node, "stdio", stdio, runArgs)

		out, errs, code := f.inspector(t, node, append(slices.Clone(stdio), "--method", "tools/call", "--tool-name", "agentkeys.list_credentials")...)
		if c := inspectorCall(t, out, errs); code != 0 || c.IsError || !strings.Contains(c.Text, `"services":["openrouter"]`) {
			t.Fatalf("list_credentials via the inspector: exit %d %+v\n%s", code, c, errs)
		}

		out, errs, code = f.inspector(t, node, append(slices.Clone(stdio), "--method", "tools/call", "--tool-name", "agentkeys.get_credential", "--tool-arg", "service="+mcpOtherService)...)
		if c := inspectorCall(t, out, errs); code != exitToolError || !c.IsError || !strings.HasPrefix(c.Text, "DENIED:") {
			t.Fatalf("out-of-scope get_credential via the inspector: exit %d %+v\n%s", code, c, errs)
		}

		out, errs, code = f.inspector(t, node, append(slices.Clone(stdio), "--method", "tools/call", "--tool-name", "agentkeys.run_with_credential",
			"--tool-args-json", `{"service":"openai","command":["true"]}`)...)
		if c := inspectorCall(t, out, errs); code != exitToolError || !c.IsError || !strings.HasPrefix(c.Text, "DENIED:") {
			t.Fatalf("out-of-scope run_with_credential via the inspector: exit %d %+v\n%s", code, c, errs)
		}

		// Without --provision the tool is not offered, so the inspector
		// (which checks the list first) does not call it.
		out, errs, code = f.inspector(t, node, append(slices.Clone(stdio), "--method", "tools/call", "--tool-name", "agentkeys.provision", "--tool-arg", "service="+mcpService)...)
		if code == 0 || !strings.Contains(out+errs, "tool_not_found") {
			t.Fatalf("provision via the inspector without --provision: exit %d\n%s\n%s", code, out, errs)
		}
	})

	t.Run("stdio-no-get-credential", func(t *testing.T) {
		args := append(slices.Clone(stdio), "--no-get-credential", "--method", "tools/call", "--tool-name", "agentkeys.get_credential", "--tool-arg", "service="+mcpService)
		out, errs, code := f.inspector(t, node, args...)
		f.assertNoSecret(t, "disabled get_credential via the inspector", out+errs)
		if code == 0 || !strings.Contains(out+errs, "tool_not_found") {
			t.Fatalf("disabled get_credential via the inspector: exit %d (it is not listed, so not callable)\n%s\n%s", code, out, errs)
		}
	})

	t.Run("http", func(t *testing.T) {
		token := "e2e-mcp-" + mcpRandHex(16)
		endpoint, d := f.startHTTPDaemon(t, token)
		// The bearer goes in --header (argv of a short-lived test process;
		// the token is random per run).
		f.inspectorChecks(t, node, "HTTP", []string{endpoint, "--transport", "http", "--header", "Authorization: Bearer " + token}, runArgs)

		// Without the header the inspector is refused (and must not fall
		// into an interactive OAuth flow).
		out, errs, code := f.inspector(t, node, endpoint, "--transport", "http", "--stored-auth-only", "--method", "tools/list")
		if code == 0 || strings.Contains(out, "agentkeys.get_credential") {
			t.Fatalf("tools/list without the bearer succeeded: exit %d\n%s\n%s", code, out, errs)
		}
		// What the user sees says where the token comes from, not that
		// OAuth client registration failed.
		if !strings.Contains(out+errs, "AGENTKEYS_MCP_TOKEN") || strings.Contains(strings.ToLower(out+errs), "registration rejected") {
			t.Fatalf("the inspector's message without the bearer does not say how to authenticate:\n%s\n%s", out, errs)
		}

		f.assertNoSecret(t, "daemon stderr", d.stderr.String())
		if strings.Contains(d.stderr.String(), token) {
			t.Fatalf("the MCP bearer appears in the daemon's stderr:\n%s", d.stderr)
		}
	})
}

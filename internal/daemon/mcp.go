package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentkeys/agentkeys/internal/cmdtree"
	"github.com/agentkeys/agentkeys/internal/ecscreds"
)

// MCP tool names.
const (
	ToolGetCredential     = "agentkeys.get_credential"
	ToolListCredentials   = "agentkeys.list_credentials"
	ToolRunWithCredential = "agentkeys.run_with_credential"
	ToolProvision         = "agentkeys.provision"
	ToolRequestScope      = "agentkeys.request_scope"
	ToolHTTPRequest       = "agentkeys.http_request"
)

// Provisioner signs up for a service and stores its key (issue 7). The
// daemon calls it from the agentkeys.provision tool; progress reports go
// to the MCP client as progress notifications.
type Provisioner interface {
	Provision(ctx context.Context, service string, force bool, progress func(msg string, done, total float64)) (ProvisionResult, error)
}

// ProvisionResult is what the provision tool returns; it never holds the
// key itself.
type ProvisionResult struct {
	Service      string `json:"service"`
	APIKeyMasked string `json:"api_key_masked"`
	KeyVerified  bool   `json:"key_verified"`
	Stored       bool   `json:"stored"`
}

type getArgs struct {
	Service string `json:"service" jsonschema:"the service whose credential to return, e.g. openrouter"`
}

type runArgs struct {
	Service        string   `json:"service" jsonschema:"the service whose credential the command needs"`
	Command        []string `json:"command" jsonschema:"the program and its arguments (argv; no shell unless you name one)"`
	EnvName        string   `json:"env_name,omitempty" jsonschema:"environment variable that receives the credential (default <SERVICE>_API_KEY)"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty" jsonschema:"kill the command after this many seconds (default 60, at most 600)"`
}

type requestScopeArgs struct {
	Services []string `json:"services" jsonschema:"the services to add to this agent's scope, e.g. [\"anthropic\"]"`
}

type httpArgs struct {
	Method  string            `json:"method,omitempty" jsonschema:"HTTP method (default GET)"`
	Service string            `json:"service" jsonschema:"the service whose API to call, e.g. openai"`
	Path    string            `json:"path" jsonschema:"the API path after the service's origin, with an optional query, e.g. /v1/models"`
	Headers map[string]string `json:"headers,omitempty" jsonschema:"request headers (the credential is added by the daemon; do not send one)"`
	Body    string            `json:"body,omitempty" jsonschema:"request body (at most 1 MiB)"`
}

type provisionArgs struct {
	Service string `json:"service" jsonschema:"the service to sign up for, e.g. openrouter"`
	Force   bool   `json:"force,omitempty" jsonschema:"provision even if a credential is already stored"`
}

// runInputSchema is run_with_credential's input: "command" is a plain
// array of strings.
var runInputSchema = json.RawMessage(`{"type":"object","properties":{` +
	`"service":{"type":"string","description":"the service whose credential the command needs"},` +
	`"command":{"type":"array","items":{"type":"string"},"description":"the program and its arguments (argv; no shell unless you name one)"},` +
	`"env_name":{"type":"string","description":"environment variable that receives the credential (default <SERVICE>_API_KEY)"},` +
	`"timeout_seconds":{"type":"integer","description":"kill the command after this many seconds (default 60, at most 600)"}},` +
	`"required":["service","command"],"additionalProperties":false}`)

// toolError is an MCP tool error (isError result) with a stable code in
// the text ("CODE: message") and in structured content.
func toolError(err error) *mcp.CallToolResult {
	e := classify(err)
	return &mcp.CallToolResult{
		IsError: true,
		Content: []mcp.Content{&mcp.TextContent{Text: e.Code + ": " + e.Message}},
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// NewMCPServer returns the MCP server with the daemon's tools.
func NewMCPServer(svc *Service, log *slog.Logger) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "agentkeys-daemon", Title: "AgentKeys", Version: cmdtree.Version()}, &mcp.ServerOptions{
		Instructions: "AgentKeys holds this agent's third-party credentials. Prefer agentkeys.run_with_credential, which runs a command " +
			"with the credential in its environment and returns the output with the secret masked, over agentkeys.get_credential, " +
			"which puts the secret into your context.",
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
	})
	// A tool this daemon has turned off (or has no gateway for) is not listed, so a model is not
	// offered it; a client calling it anyway (from a stale list) still
	// gets the error saying how to turn it on.
	hidden := func(tool string) bool {
		switch tool {
		case ToolGetCredential:
			return svc.o.DisableGet
		case ToolProvision:
			return svc.o.Provisioner == nil
		case ToolHTTPRequest:
			return !svc.hasGateway()
		}
		return false
	}
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			if lr, ok := res.(*mcp.ListToolsResult); ok && err == nil && method == "tools/list" {
				lr.Tools = slices.DeleteFunc(slices.Clone(lr.Tools), func(t *mcp.Tool) bool { return hidden(t.Name) })
			}
			return res, err
		}
	})
	closedWorld, openWorld := false, true
	mcp.AddTool(srv, &mcp.Tool{
		Name:        ToolGetCredential,
		Title:       "Get a credential",
		Description: "Returns the stored credential (API key) for a service. The value enters the model's context; prefer agentkeys.run_with_credential.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &closedWorld},
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in getArgs) (*mcp.CallToolResult, any, error) {
		val, err := svc.ReadValue(ctx, in.Service)
		if err != nil {
			return toolError(err), nil, nil
		}
		text := string(val)
		clear(val)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:         ToolListCredentials,
		Title:        "List credentials",
		Description:  "Lists the services whose credentials this agent may use.",
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: &closedWorld},
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"services":{"type":"array","items":{"type":"string"}}},"required":["services"]}`),
	}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		list, err := svc.List(ctx)
		if err != nil {
			return toolError(err), nil, nil
		}
		out := map[string]any{"services": list}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: jsonText(out)}}, StructuredContent: out}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:  ToolRunWithCredential,
		Title: "Run a command with a credential",
		// Declared by hand: the inferred schema gives "command" the type
		// ["null","array"], which clients that build arguments from
		// "type": "array" cannot fill.
		InputSchema: runInputSchema,
		Description: "Runs a command with a service's credential in an environment variable (default <SERVICE>_API_KEY; never in argv) " +
			"and returns exit code, stdout and stderr with the secret replaced by ****: verbatim, as base64 (standard or URL-safe, padded or not, " +
			"at any byte alignment), as hex (any case) and percent-encoded, also when wrapped over lines of any width. " +
			"Masking is best-effort and cannot catch a transformed secret: reversed, split or interleaved with other text, compressed, " +
			"encrypted or hashed, in other encodings (base32, JSON \\u escapes, hex dumps with offsets or spaces, double percent-encoding), " +
			"or fragments shorter than 8 characters; and the command itself holds the secret and may send or store it anywhere. " +
			"The stronger guarantee is the daemon's secret-free mode (--no-get-credential) with --child-user and Landlock, " +
			"which keep stored values and the daemon's own files away from the agent and its commands.",
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"exit_code":{"type":"integer"},"signal":{"type":"string"},"stdout":{"type":"string"},` +
			`"stderr":{"type":"string"},"timed_out":{"type":"boolean"},"truncated":{"type":"boolean"},"env_name":{"type":"string"}},"required":["exit_code","stdout","stderr"]}`),
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in runArgs) (*mcp.CallToolResult, any, error) {
		if in.TimeoutSeconds < 0 {
			return toolError(errorf(CodeInvalidParams, "timeout_seconds must not be negative")), nil, nil
		}
		res, err := svc.RunWithCredential(ctx, RunRequest{Service: in.Service, Command: in.Command, EnvName: in.EnvName, Timeout: time.Duration(in.TimeoutSeconds) * time.Second})
		if err != nil {
			return toolError(err), nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.String()}}, StructuredContent: res}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:  ToolRequestScope,
		Title: "Ask for more scope",
		Description: "Asks this agent's master to add services to the agent's scope. Returns a pair code and an OTP: tell the human to run " +
			"`agentkeys pending` on the master's machine and approve with `agentkeys approve <pair_code> --otp <otp>`. " +
			"Until then nothing changes; the request expires after a few minutes.",
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"request_id":{"type":"string"},"pair_code":{"type":"string"},"otp":{"type":"string"},` +
			`"expires_at":{"type":"string"},"services":{"type":"array","items":{"type":"string"}},"added":{"type":"array","items":{"type":"string"}},` +
			`"read_only":{"type":"boolean"},"approve":{"type":"string"}},"required":["request_id","pair_code","otp","services"]}`),
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in requestScopeArgs) (*mcp.CallToolResult, any, error) {
		r, err := svc.RequestScope(ctx, in.Services)
		if err != nil {
			return toolError(err), nil, nil
		}
		text := fmt.Sprintf("Asked the master to add %s (scope asked for: %s). Pair code: %s  OTP: %s. The master approves on their machine with: %s (it is listed by `agentkeys pending`). Expires %s.",
			strings.Join(r.Added, ", "), strings.Join(r.Services, ", "), r.PairCode, r.OTP, r.Approve, r.ExpiresAt)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: r}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:  ToolHTTPRequest,
		Title: "Call a service's API",
		Description: "Sends an HTTP request to a service's API (e.g. service openai, path /v1/chat/completions) through the daemon's gateway, " +
			"which adds the stored credential on the way out: no secret enters your context. Only services in this agent's scope; " +
			"the response (at most 1 MiB) comes back with the key masked. Every call is audited.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: &openWorld},
		OutputSchema: json.RawMessage(`{"type":"object","properties":{"status":{"type":"integer"},"content_type":{"type":"string"},` +
			`"body":{"type":"string"},"truncated":{"type":"boolean"}},"required":["status","body","truncated"]}`),
	}, func(ctx context.Context, _ *mcp.CallToolRequest, in httpArgs) (*mcp.CallToolResult, any, error) {
		res, err := svc.HTTPRequest(ctx, HTTPRequest(in))
		if err != nil {
			return toolError(err), nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: jsonText(res)}}, StructuredContent: res}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:        ToolProvision,
		Title:       "Provision a credential",
		Description: "Signs up for a service in a headless browser, verifies the new API key and stores it for this agent. Reports progress.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, in provisionArgs) (*mcp.CallToolResult, any, error) {
		progress := func(msg string, done, total float64) {
			tok := req.Params.GetProgressToken()
			if tok == nil || req.Session == nil {
				return
			}
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Message: msg, Progress: done, Total: total})
		}
		if err := svc.alive(); err != nil {
			return toolError(err), nil, nil
		}
		if svc.o.Provisioner == nil {
			progress("checking for a provisioner", 1, 1)
			return toolError(errorf(CodeUnavailable, "the provisioner is off in this daemon: start agentkeys-daemon with --provision")), nil, nil
		}
		res, err := svc.o.Provisioner.Provision(ctx, in.Service, in.Force, progress)
		if err != nil {
			return toolError(err), nil, nil
		}
		if svc.o.DisableGet {
			res.APIKeyMasked = secretFreeMasked(res.APIKeyMasked)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: jsonText(res)}}, StructuredContent: res}, nil, nil
	})
	return srv
}

// secretFreeMasked shortens a masked key ("sk-or-v1****abcd") to at most
// its last four characters ("****abcd"): in secret-free mode no more of a
// stored value than that leaves the daemon.
func secretFreeMasked(m string) string {
	i := strings.LastIndex(m, Mask)
	if i < 0 {
		return Mask
	}
	tail := m[i+len(Mask):]
	if len(tail) > 4 {
		return Mask
	}
	return Mask + tail
}

// RunMCPStdio serves MCP on stdin/stdout until the client closes stdin or
// ctx ends.
func RunMCPStdio(ctx context.Context, srv *mcp.Server) error {
	err := srv.Run(ctx, &mcp.StdioTransport{})
	if err != nil && (errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "EOF")) {
		return nil
	}
	return err
}

// CheckLoopback refuses an --http address that is not a loopback IP (or
// "localhost").
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--http %q: want host:port such as 127.0.0.1:8765", addr)
	}
	if !ecscreds.IsLoopback(host) {
		return fmt.Errorf("--http %q: the MCP HTTP server binds to loopback only (127.0.0.1 or [::1])", addr)
	}
	return nil
}

// MCP HTTP paths: the Streamable HTTP endpoint and its OAuth protected
// resource metadata (RFC 9728 §3: the well-known prefix, then the
// resource's path; the bare prefix is served too).
const (
	MCPPath              = "/mcp"
	ResourceMetadataPath = "/.well-known/oauth-protected-resource"
)

// unauthorizedHint is what a client without the right bearer is told.
const unauthorizedHint = "send Authorization: Bearer <token from the daemon's MCP token file or AGENTKEYS_MCP_TOKEN>; " +
	"this server takes a static bearer and has no OAuth authorization server to register with"

// MCPHTTPHandler serves Streamable HTTP at /mcp, requiring the bearer. A
// request without it gets 401 with a WWW-Authenticate challenge that names
// the protected resource metadata, which in turn lists no authorization
// server: MCP clients then ask for the token rather than attempting OAuth
// dynamic client registration against a server that has none.
func MCPHTTPHandler(srv *mcp.Server, bearer string, log *slog.Logger) http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{SessionTimeout: 30 * time.Minute})
	want := []byte("Bearer " + bearer)
	mux := http.NewServeMux()
	mux.Handle(MCPPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="agentkeys-daemon", error="invalid_token", error_description=%q, resource_metadata=%q`,
				unauthorizedHint, "http://"+r.Host+ResourceMetadataPath+MCPPath))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(jsonText(map[string]string{"error": "unauthorized", "message": unauthorizedHint}) + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	}))
	meta := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte(jsonText(&oauthex.ProtectedResourceMetadata{
			Resource:               "http://" + r.Host + MCPPath,
			BearerMethodsSupported: []string{"header"},
			ResourceName:           "AgentKeys daemon (MCP): a static bearer from the daemon's token file or AGENTKEYS_MCP_TOKEN, no OAuth",
		}) + "\n"))
	})
	mux.Handle(ResourceMetadataPath+MCPPath, meta)
	mux.Handle(ResourceMetadataPath, meta)
	return mux
}

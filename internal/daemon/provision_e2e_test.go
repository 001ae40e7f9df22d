package daemon

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkeys/agentkeys/internal/provision/fixture"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestMCPProvision drives agentkeys.provision through the real daemon
// (--provision) against the fixture site: progress notifications reach
// the MCP client, the verified key is stored for the agent and the result
// carries only its masked form.
// In secret-free mode the masked key keeps only its last four characters.
func TestMCPProvision(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		if os.Getenv("AGENTKEYS_REQUIRE_E2E") == "1" {
			t.Fatal("chromium is not installed (AGENTKEYS_REQUIRE_E2E=1)")
		}
		t.Skip("chromium is not installed")
	}
	t.Run("default", func(t *testing.T) { testMCPProvision(t, false) })
	t.Run("secret-free", func(t *testing.T) { testMCPProvision(t, true) })
}

func testMCPProvision(t *testing.T, secretFree bool) {
	ctx := context.Background()
	b := startBackend(t)
	site := fixture.New(fixture.Options{Deliver: func(ctx context.Context, to, from, subject, text, html string) error {
		body := html
		if body == "" {
			body = text
		}
		return b.client.DeliverMail(ctx, to, from, subject, body)
	}})
	t.Cleanup(site.Close)
	home := t.TempDir()
	ks, sessFile := b.agent(t, home, "openrouter")

	args := []string{"--stdio", "--provision", "--session-file", sessFile, "--socket", filepath.Join(home, "run", "p.sock")}
	if secretFree {
		args = append(args, "--no-get-credential")
	}
	cmd := exec.Command(daemonBin, args...)
	cmd.Env = append(daemonEnv(home),
		"XDG_STATE_HOME="+filepath.Join(home, "state"),
		"AGENTKEYS_OPENROUTER_SIGNUP_URL="+site.SignupURL("openrouter"),
		"AGENTKEYS_OPENROUTER_API_URL="+site.URL)
	os.MkdirAll(filepath.Join(home, "run"), 0o700)
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	progress := make(chan string, 64)
	client := mcp.NewClient(&mcp.Implementation{Name: "agentkeys-test", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			select {
			case progress <- r.Params.Message:
			default:
			}
		},
	})
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs, err := client.Connect(cctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr)
	}
	t.Cleanup(func() { cs.Close() })
	// With --provision the tool is offered.
	if names, _ := listTools(t, cs); !slices.Contains(names, ToolProvision) {
		t.Fatalf("--provision does not list %s: %v", ToolProvision, names)
	}

	params := &mcp.CallToolParams{Name: ToolProvision, Arguments: map[string]any{"service": "openrouter"}}
	params.SetProgressToken("prov")
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError {
		t.Fatalf("provision: %v %s\n%s", err, textOf(res), stderr)
	}
	var pr ProvisionResult
	raw, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(raw, &pr)
	keys := site.IssuedKeys()
	if len(keys) != 1 || !pr.Stored || !pr.KeyVerified || !strings.HasSuffix(pr.APIKeyMasked, keys[0][len(keys[0])-4:]) {
		t.Fatalf("result %s, issued %d keys", raw, len(keys))
	}
	if secretFree && pr.APIKeyMasked != Mask+keys[0][len(keys[0])-4:] {
		t.Fatalf("secret-free masked key %q shows more than the last four characters", pr.APIKeyMasked)
	}
	if !secretFree && !strings.HasPrefix(pr.APIKeyMasked, keys[0][:8]) {
		t.Fatalf("masked key %q", pr.APIKeyMasked)
	}
	all, _ := json.Marshal(res)
	if strings.Contains(string(all), keys[0]) || strings.Contains(stderr.String(), keys[0]) {
		t.Fatal("the key reached the MCP client or the daemon's log")
	}
	got, err := b.client.ReadCredential(ctx, b.master.Token, ks.Wallet, "openrouter")
	if err != nil || string(got) != keys[0] {
		t.Fatalf("stored credential: %v", err)
	}
	var msgs []string
	for len(progress) > 0 {
		msgs = append(msgs, <-progress)
	}
	if !strings.Contains(strings.Join(msgs, "|"), "verifying the new key") {
		t.Fatalf("progress notifications: %v", msgs)
	}

	// Out of the agent's scope: refused before any browser starts.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolProvision, Arguments: map[string]any{"service": "openai"}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), CodeDenied) {
		t.Fatalf("out-of-scope provision: %v %s", err, textOf(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolProvision, Arguments: map[string]any{"service": "myspace"}})
	if err != nil || !res.IsError || !strings.HasPrefix(textOf(res), "SERVICE_NOT_SUPPORTED") || !strings.Contains(textOf(res), "not supported") {
		t.Fatalf("unknown service: want the original's SERVICE_NOT_SUPPORTED: %v %s", err, textOf(res))
	}
}

package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// directApp is an App as the root command would set it up, for calling the
// runX functions without cobra.
func (w *world) directApp() (*App, *bytes.Buffer) {
	t := w.t
	for k, v := range map[string]string{
		"HOME": w.home, "XDG_CONFIG_HOME": w.cfg, "AGENTKEYS_SESSION_STORE": "file", "AGENTKEYS_BACKEND_URL": "",
	} {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	return &App{Out: &out, Err: &bytes.Buffer{}, Config: Config{Profile: "default", BackendFlag: w.url}}, &out
}

// The commands' work is callable without cobra: input struct in, effect
// and output out.
func TestRunFunctionsWithoutCobra(t *testing.T) {
	w := newWorld(t)
	w.initMaster()
	w.must("agent", "create", "bot", "--services", "openai,aws", "--read-only")
	ctx := context.Background()

	a, out := w.directApp()
	if err := a.runScopeSet(ctx, scopeSetInput{Agent: "bot", Add: []string{"openrouter"}, Remove: []string{"openai"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "aws, openrouter") || !strings.Contains(out.String(), "read_only: true") {
		t.Fatalf("scope set printed %q", out.String())
	}
	if got := w.must("scope", "get", "bot").stdout; !strings.Contains(got, "aws, openrouter") {
		t.Fatalf("scope after runScopeSet: %s", got)
	}
	a, _ = w.directApp()
	if err := a.runScopeSet(ctx, scopeSetInput{Agent: "bot", Add: []string{"x"}, Remove: []string{"x"}}); err == nil {
		t.Fatal("a service both added and removed was accepted")
	}

	// withAgent: a name, a wallet, "" (the master itself), an unknown name.
	a, _ = w.directApp()
	m, ref, err := a.withAgent(ctx, "bot")
	if err != nil || ref.Name != "bot" || ref.Wallet == m.Session.Wallet {
		t.Fatalf("withAgent(bot) = %+v, %v", ref, err)
	}
	if _, byWallet, err := a.withAgent(ctx, string(ref.Wallet)); err != nil || byWallet.Wallet != ref.Wallet || byWallet.Name != "bot" {
		t.Fatalf("withAgent(wallet) = %+v, %v", byWallet, err)
	}
	if _, self, err := a.withAgent(ctx, ""); err != nil || self.Wallet != m.Session.Wallet {
		t.Fatalf("withAgent(\"\") = %+v, %v", self, err)
	}
	if _, _, err := a.withAgent(ctx, "nobody"); err == nil || !strings.Contains(err.Error(), "unknown agent") {
		t.Fatalf("withAgent(nobody) err = %v", err)
	}

	a, out = w.directApp()
	a.JSON = true
	if err := a.runUsage(ctx, usageInput{Agent: "bot", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"events"`) || strings.Count(out.String(), `"action"`) != 1 {
		t.Fatalf("usage --limit 1 printed %s", out.String())
	}
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runBackend runs agentkeys-backend to completion (it is expected to refuse
// to start) and returns its exit code and stderr.
func runBackend(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin["agentkeys-backend"], args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Fatalf("agentkeys-backend %v started and exited 0; want a refusal", args)
	case errors.As(err, &ee):
		return ee.ExitCode(), errb.String()
	default:
		t.Fatalf("agentkeys-backend %v: %v", args, err)
	}
	return 0, ""
}

// TestBackendLoginIsNeverADefault: the backend binary does not fall back to
// mock login. Without a login method it refuses to start and says how to
// configure OIDC; mock together with an OIDC issuer is refused; mock is
// available only when asked for (flag or AGENTKEYS_LOGIN=mock).
func TestBackendLoginIsNeverADefault(t *testing.T) {
	base := []string{"--listen", "127.0.0.1:0"}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"no login", nil, nil, []string{"no master login method configured", "--login-oidc-issuer", "--login-oidc-client-id",
			"AGENTKEYS_LOGIN_OIDC_ISSUER", "AGENTKEYS_LOGIN_OIDC_CLIENT_ID"}},
		{"mock and an issuer", nil, []string{"--login", "mock", "--login-oidc-issuer", "https://idp.example.com"}, []string{"conflicts"}},
		{"mock by env and an issuer by env", []string{"AGENTKEYS_LOGIN=mock", "AGENTKEYS_LOGIN_OIDC_ISSUER=https://idp.example.com"}, nil, []string{"conflicts"}},
		{"oidc without an issuer", nil, []string{"--login", "oidc"}, []string{"--login-oidc-issuer"}},
		{"unknown method", nil, []string{"--login", "password"}, []string{"want mock or oidc"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			code, stderr := runBackend(t, c.env, append(append(base, "--data-dir", filepath.Join(dir, "data")), c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			// Refused before anything was created.
			if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused backend created its data directory")
			}
		})
	}

	// AGENTKEYS_LOGIN=mock: starts, warns loudly, and any string logs in.
	port := freePort(t)
	p := start(t, []string{"AGENTKEYS_LOGIN=mock"}, "agentkeys-backend", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", t.TempDir())
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, p, url+"/health")
	resp, err := http.Post(url+"/session/create", "application/json", strings.NewReader(`{"auth_token":"anyone"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("mock login → %d", resp.StatusCode)
	}
	if !strings.Contains(p.stderr.String(), "MOCK MODE") {
		t.Errorf("no loud warning about mock login:\n%s", p.stderr)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("backend exit: %v", err)
	}
}

package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// runBin runs one of the built binaries to completion in a fresh HOME and
// returns its stdout, stderr and exit status.
func runBin(t *testing.T, home string, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	return runBinInput(t, home, env, "", name, args...)
}

// runBinInput is runBin with stdin (not a terminal) reading input.
func runBinInput(t *testing.T, home string, env []string, input, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin[name], args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Dir = home
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_RUNTIME_DIR=" + filepath.Join(home, "run")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s %q did not exit within 60 s\n%s", name, args, errb.String())
	}
	code, ok := testkit.ExitCode(err)
	if !ok {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The four binaries answer --version in one format with one version, and
// a mistyped subcommand or flag is a usage error (exit 2) everywhere.
func TestBinariesBehaveAlike(t *testing.T) {
	line := regexp.MustCompile(`^(agentkeys(?:-\w+)?) version (\S+) \(commit (\S+), (go\S+)\)\n$`)
	var first []string
	for _, name := range binaries {
		out, stderr, code := runBin(t, t.TempDir(), nil, name, "--version")
		m := line.FindStringSubmatch(out)
		if code != 0 || m == nil || m[1] != name {
			t.Fatalf("%s --version: exit %d, %q %q", name, code, out, stderr)
		}
		if first == nil {
			first = m[2:]
		} else if !slices.Equal(first, m[2:]) {
			t.Errorf("%s --version says %q, another binary %q", name, m[2:], first)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"agentkeys", []string{"agnt", "list"}, "Did you mean this?\n\tagent"},
		{"agentkeys", []string{"scope", "gt"}, "\tget"},
		{"agentkeys-broker", []string{"audit", "verfy"}, "Did you mean this?\n\tverify"},
		{"agentkeys-broker", []string{"kyes"}, "\tkeys"},
		{"agentkeys-broker", []string{"keys"}, "needs a subcommand"},
		{"agentkeys-daemon", []string{"aws", "credential-proces"}, "\tcredential-process"},
		{"agentkeys-daemon", []string{"statuss"}, "\tstatus"},
		{"agentkeys-backend", []string{"serve"}, `unknown command "serve"`},
		{"agentkeys-backend", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{"agentkeys-daemon", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	} {
		_, stderr, code := runBin(t, t.TempDir(), nil, tc.name, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s %q: exit %d, stderr %q; want 2 and %q", tc.name, tc.args, code, stderr, tc.want)
		}
	}
}

// A server that cannot start leaves nothing behind: the database, the
// listen address and the TLS files are checked before the data directory,
// the seal key or the OIDC key set is written.
func TestNoFilesBeforeStartupChecks(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	// A port nothing listens on: bound and closed at once.
	free := freePort(t)
	deadPG := "postgres://postgres@127.0.0.1:" + strconv.Itoa(free) + "/agentkeys?sslmode=disable&connect_timeout=5"
	for _, tc := range []struct {
		what string
		name string
		env  []string
		args []string
		code int
	}{
		{"backend, unreachable --database-url", "agentkeys-backend", nil, []string{"--login", "mock", "--data-dir", "data", "--database-url", deadPG}, 1},
		{"backend, address in use", "agentkeys-backend", nil, []string{"--login", "mock", "--data-dir", "data", "--listen", busy.Addr().String()}, 1},
		{"backend, missing TLS files", "agentkeys-backend", nil, []string{"--login", "mock", "--data-dir", "data", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, 2},
		{"backend, unreachable login provider", "agentkeys-backend", nil, []string{"--login-oidc-issuer", "http://127.0.0.1:" + strconv.Itoa(free), "--login-oidc-client-id", "x", "--data-dir", "data"}, 1},
		{"broker, unreachable ledger", "agentkeys-broker", []string{"BROKER_AUDIT_DB=" + deadPG}, []string{"--port", strconv.Itoa(freePort(t))}, 1},
		{"broker, port in use", "agentkeys-broker", nil, []string{"--port", busyPort}, 1},
		{"dev, port in use", "agentkeys", nil, []string{"dev", "--data-dir", "data", "--backend-port", busyPort}, 1},
		{"dev, bad STS endpoint", "agentkeys", nil, []string{"dev", "--data-dir", "data", "--backend-port", "0", "--broker-port", "0", "--sts-endpoint", "sts.example"}, 2},
		{"broker, missing TLS files", "agentkeys-broker", nil, []string{"--port", strconv.Itoa(freePort(t)), "--tls-cert", "c.pem", "--tls-key", "k.pem"}, 2},
	} {
		t.Run(tc.what, func(t *testing.T) {
			home := t.TempDir()
			_, stderr, code := runBin(t, home, tc.env, tc.name, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			var made []string
			filepath.WalkDir(home, func(p string, d os.DirEntry, err error) error {
				if p != home {
					made = append(made, strings.TrimPrefix(p, home+"/"))
				}
				return nil
			})
			if len(made) > 0 {
				t.Fatalf("a failed start left %q behind\n%s", made, stderr)
			}
		})
	}
}

package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/api"
	"github.com/agentkeys/agentkeys/internal/audit"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
	"github.com/agentkeys/agentkeys/internal/testkit"
)

func runCmd(t *testing.T, m map[string]string, args ...string) (string, string, error) {
	t.Helper()
	cmd := command(env(m))
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	_, _, err := runCmd(t, map[string]string{"BROKER_OIDC_JWT_TTL_SECONDS": "7200", "BROKER_OIDC_ISSUER": "https://x.example/"})
	if err == nil || !strings.Contains(err.Error(), "BROKER_OIDC_JWT_TTL_SECONDS=7200") || !strings.Contains(err.Error(), "trailing") && !strings.Contains(err.Error(), "slash") {
		t.Fatalf("err = %v", err)
	}
	_, _, err = runCmd(t, map[string]string{"BROKER_PORT": "80x"})
	if err == nil || !strings.Contains(err.Error(), "BROKER_PORT") {
		t.Fatalf("err = %v", err)
	}
}

// startConfig is a Start-able configuration on a free loopback port.
func startConfig(t *testing.T, backendURL string) Config {
	t.Helper()
	dir := t.TempDir()
	c := Defaults()
	c.Port = 0
	c.Issuer = "http://127.0.0.1:1" // not served; irrelevant here
	c.BackendURL = backendURL
	c.KeyFile = filepath.Join(dir, "keys.json")
	c.AuditDB = filepath.Join(dir, "audit.sqlite")
	c.KeyReload = time.Second
	c.ValidateCache = 0
	return c
}

func TestGracefulDrain(t *testing.T) {
	backend := newFakeBackend(t)
	tok, _ := backend.newSession("master", nil)
	r, err := Start(context.Background(), startConfig(t, backend.URL), nil)
	if err != nil {
		t.Fatal(err)
	}
	hold, entered := make(chan struct{}), make(chan struct{}, 1)
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(hold) }) }
	t.Cleanup(release) // before the fake backend's Close, which waits for the held request
	backend.set(func(b *fakeBackend) { b.hold, b.entered = hold, entered })
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", r.URL()+PathMintJWT, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode, body: string(b)}
	}()
	select { // the request is inside the broker
	case <-entered:
	case res := <-inflight:
		t.Fatalf("the request finished before reaching the backend: %+v", res)
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the backend")
	}
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(context.Background()) }()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(r.URL() + PathHealthz)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("broker still accepting after Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	release()
	res := <-inflight
	if res.err != nil || res.status != http.StatusOK || !strings.Contains(res.body, `"jwt"`) {
		t.Fatalf("in-flight request: %+v", res)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestRunningBrokerPicksUpKeyRotation(t *testing.T) {
	backend := newFakeBackend(t)
	tok, _ := backend.newSession("master", nil)
	cfg := startConfig(t, backend.URL)
	r, err := Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	kid := func() string {
		req, _ := http.NewRequest("POST", r.URL()+PathMintJWT, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m api.MintJWTResponse
		json.NewDecoder(resp.Body).Decode(&m)
		hdr, _ := decodeSegment(strings.Split(m.JWT, ".")[0])
		var h struct{ Kid string }
		json.Unmarshal(hdr, &h)
		return h.Kid
	}
	before := kid()
	out, _, err := runCmd(t, nil, "keys", "rotate", "--force", "--key-file", cfg.KeyFile, "--json")
	if err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	var listed struct {
		Keys []struct{ KID, State string } `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed.Keys) != 3 {
		t.Fatalf("rotate output %q: %v", out, err)
	}
	want := listed.Keys[0].KID
	if listed.Keys[0].State != "current" || want == before {
		t.Fatalf("rotate output: %+v", listed)
	}
	deadline := time.Now().Add(10 * time.Second)
	for kid() != want {
		if time.Now().After(deadline) {
			t.Fatal("running broker still signs with the old key")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// keys list shows the same set and no private material.
	out, _, err = runCmd(t, map[string]string{"BROKER_OIDC_KEYPAIR_PATH": cfg.KeyFile}, "keys", "list")
	if err != nil || !strings.Contains(out, want) || !strings.Contains(out, "retired") || strings.Contains(out, "PRIVATE") {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	// An immediate second rotation is refused: the new next key is too fresh.
	if _, _, err := runCmd(t, nil, "keys", "rotate", "--key-file", cfg.KeyFile); err == nil || !strings.Contains(err.Error(), "published") {
		t.Fatalf("second rotation: %v", err)
	}
}

func TestStartupSTSCheck(t *testing.T) {
	backend := newFakeBackend(t)
	fake := ststest.New()
	defer fake.Close()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	fake.Set(func(f *ststest.Fake) { f.FailIdentity = "The security token included in the request is invalid" })
	cfg := startConfig(t, backend.URL)
	cfg.DataRoleARN = testRoleARN
	cfg.STSEndpoint = fake.URL
	cfg.AccessKeyID, cfg.SecretAccessKey = "AKIASTARTUPCHECK0001", "startup-secret-"+agentkeys.NewToken().Reveal()[:8]
	var logs testkit.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	_, err := Start(context.Background(), cfg, log)
	if err == nil || !strings.Contains(err.Error(), "--skip-startup-check") {
		t.Fatalf("Start with failing STS = %v", err)
	}
	if strings.Contains(logs.String()+err.Error(), cfg.SecretAccessKey) {
		t.Fatal("static secret leaked")
	}
	cfg.SkipStartupCheck = true
	r, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("with --skip-startup-check: %v", err)
	}
	r.Shutdown(context.Background())

	fake.Set(func(f *ststest.Fake) { f.FailIdentity = "" })
	cfg.SkipStartupCheck = false
	r, err = Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("with a working STS: %v", err)
	}
	r.Shutdown(context.Background())
	if !strings.Contains(logs.String(), "startup STS check passed") {
		t.Fatal("startup check success not logged")
	}
}

func TestNonLoopbackBindWarns(t *testing.T) {
	backend := newFakeBackend(t)
	cfg := startConfig(t, backend.URL)
	cfg.Bind = "0.0.0.0"
	cfg.Issuer = "https://broker.example.com"
	var logs testkit.SyncBuffer
	r, err := Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"SECURITY: broker bound to a non-loopback address without TLS`) {
		t.Fatalf("no loud warning:\n%s", logs.String())
	}
	logs = testkit.SyncBuffer{}
	cfg.Bind = "127.0.0.1"
	r, err = Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.Shutdown(context.Background())
	if strings.Contains(logs.String(), "SECURITY") {
		t.Fatal("loopback bind warned")
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.sqlite")
	ledger, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ledger.Append(context.Background(), audit.Record{RequesterTokenHash: "h", RequesterWallet: "w", RequestedRole: "oidc_jwt", Outcome: "ok", STSSessionName: "k", DurationSeconds: int64(i)})
	}
	out, _, err := runCmd(t, map[string]string{"BROKER_AUDIT_DB": path}, "audit", "verify")
	if err != nil || !strings.Contains(out, "OK: 3 rows") {
		t.Fatalf("intact ledger: %v %s", err, out)
	}
	ledger.DB().Exec("DROP TRIGGER mint_log_no_update")
	ledger.DB().Exec("UPDATE mint_log SET requester_wallet = '0xforged' WHERE id = 2")
	ledger.Close()
	out, _, err = runCmd(t, nil, "audit", "verify", "--db", path)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitBroken || !strings.Contains(out, "row 2") || !strings.Contains(out, "edited") {
		t.Fatalf("tampered ledger: %v (%T) %q", err, err, out)
	}
	out, _, _ = runCmd(t, nil, "audit", "verify", "--db", path, "--json")
	var rep map[string]any
	if json.Unmarshal([]byte(out), &rep) != nil || rep["ok"] != false || rep["broken_at"] != float64(2) {
		t.Fatalf("--json: %s", out)
	}
	_, _, err = runCmd(t, nil, "audit", "verify", "--db", filepath.Join(t.TempDir(), "missing.sqlite"))
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("missing ledger: %v", err)
	}
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// audit verify --env-file reads the ledger's location from the service's
// env file (or stdin), so a postgres:// URL with a password never has to be
// on a command line; errors never quote the file.
func TestAuditVerifyEnvFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.sqlite")
	ledger, err := audit.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ledger.Append(context.Background(), audit.Record{RequesterTokenHash: "h", RequesterWallet: "w", RequestedRole: "oidc_jwt", Outcome: "ok", STSSessionName: "k"})
	ledger.Close()
	envFile := filepath.Join(dir, "broker.env")
	content := "# comment\nBROKER_OIDC_ISSUER=https://b.example\nBROKER_AUDIT_DB=/nonexistent/old.sqlite\nBROKER_AUDIT_DB=\"" + path + "\"\nDAEMON_SECRET_ACCESS_KEY=tOpSeCrEt\n"
	if err := os.WriteFile(envFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// The environment's BROKER_AUDIT_DB loses to the file named explicitly.
	out, _, err := runCmd(t, map[string]string{"BROKER_AUDIT_DB": "/nonexistent/env.sqlite"}, "audit", "verify", "--env-file", envFile)
	if err != nil || !strings.Contains(out, "OK: 1 rows") {
		t.Fatalf("--env-file: %v %s", err, out)
	}
	cmd := command(env(nil))
	var o bytes.Buffer
	cmd.SetOut(&o)
	cmd.SetErr(&o)
	cmd.SetIn(strings.NewReader(content))
	cmd.SetArgs([]string{"audit", "verify", "--env-file", "-"})
	if err := cmd.ExecuteContext(context.Background()); err != nil || !strings.Contains(o.String(), "OK: 1 rows") {
		t.Fatalf("--env-file -: %v %s", err, o.String())
	}
	os.WriteFile(envFile, []byte("DAEMON_SECRET_ACCESS_KEY=tOpSeCrEt\n"), 0o600)
	_, _, err = runCmd(t, nil, "audit", "verify", "--env-file", envFile)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "BROKER_AUDIT_DB") || strings.Contains(err.Error(), "tOpSeCrEt") {
		t.Fatalf("env file without the ledger: %v", err)
	}
}

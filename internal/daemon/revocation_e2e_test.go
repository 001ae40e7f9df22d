package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
	"github.com/agentkeys/agentkeys/internal/backend"
	"github.com/agentkeys/agentkeys/internal/backendclient"
	"github.com/agentkeys/agentkeys/internal/broker"
	"github.com/agentkeys/agentkeys/internal/sts/ststest"
)

// startRealBroker runs agentkeys-broker's server (in process, real HTTP)
// against backendURL, minting AWS credentials from a fake STS.
func startRealBroker(t *testing.T, backendURL string) (*broker.Running, *ststest.Fake) {
	t.Helper()
	dir := t.TempDir()
	fake := ststest.New()
	t.Cleanup(fake.Close)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg := broker.Defaults()
	cfg.Port = 0
	cfg.Issuer = "http://127.0.0.1"
	cfg.BackendURL = backendURL
	cfg.KeyFile = filepath.Join(dir, "oidc-keys.json")
	cfg.AuditDB = filepath.Join(dir, "audit.sqlite")
	cfg.DataRoleARN = "arn:aws:iam::000000000000:role/agentkeys-data-role"
	cfg.STSEndpoint = fake.URL
	cfg.AccessKeyID, cfg.SecretAccessKey = "AKIATESTBROKER000001", "broker-static-secret-"+agentkeys.NewToken().Reveal()[:16]
	cfg.SkipStartupCheck = true
	cfg.RatePerBearer, cfg.RatePerIP = 0, 0
	run, err := broker.Start(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Shutdown(context.Background()) })
	return run, fake
}

var killLine = regexp.MustCompile(`"msg":"the daemon.s session was refused.*`)

// TestRevokeStopsEveryDaemonSurfaceWithinASecond: an idle daemon holding
// cached credential values, AWS credentials and an OIDC token stops
// serving all of them within a second of a revoke, through its session
// watch alone; and while valid, every read it served from its cache was
// audited.
func TestRevokeStopsEveryDaemonSurfaceWithinASecond(t *testing.T) {
	ctx := context.Background()
	b, home, ks, sessFile := startBackendAgent(t, "openrouter", broker.DefaultScopeService)
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	brk, fakeSTS := startRealBroker(t, b.url)

	sock := filepath.Join(home, "agentkeys.sock")
	tokFile := filepath.Join(home, "web-identity-token")
	mcpTok := filepath.Join(home, "mcp-token")
	d := startDaemon(t, home, nil, "--session-file", sessFile, "--socket", sock, "--broker-url", brk.URL(),
		"--cache-ttl", "10m", "--web-identity-token-file", tokFile, "--http", "127.0.0.1:0", "--http-token-file", mcpTok)
	endpoint := d.waitFor(httpLine, 30*time.Second)[1]
	d.waitReady()
	cs := mcpHTTPSession(t, endpoint, mcpTok)
	c := dial(t, sock)

	// Fill every cache while the session is valid.
	for i := range 3 {
		v, err := c.Read(ctx, "openrouter")
		if err != nil || string(v) != mcpSecret {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolGetCredential, Arguments: map[string]any{"service": "openrouter"}})
	if err != nil || res.IsError || textOf(res) != mcpSecret {
		t.Fatalf("MCP get_credential: %v %v", err, res)
	}
	for range 2 {
		if a, err := c.AWSCredentials(ctx); err != nil || !strings.HasPrefix(a.AccessKeyID, "ASIA") {
			t.Fatalf("aws_credentials: %+v %v", a, err)
		}
		if _, err := c.OIDCToken(ctx); err != nil {
			t.Fatalf("oidc_token: %v", err)
		}
	}
	if n := len(fakeSTS.Issued()); n != 1 {
		t.Fatalf("%d STS issues, want 1 (the second aws_credentials is cached)", n)
	}
	if jwt, err := os.ReadFile(tokFile); err != nil || !strings.HasPrefix(string(jwt), "eyJ") {
		t.Fatalf("web identity token file: %v", err)
	}

	// Three reads went through the cache (two on the socket, one on MCP):
	// each is in the master's audit view as a cached read.
	page, err := b.client.QueryAudit(ctx, b.master.Token, backendclient.AuditFilter{Agent: ks.Wallet, Action: agentkeys.ActionRead, Service: "openrouter"})
	if err != nil {
		t.Fatal(err)
	}
	cached, direct := 0, 0
	for _, e := range page.Events {
		switch {
		case e.Result == agentkeys.ResultOK && e.Detail == backend.DetailCachedRead:
			cached++
		case e.Result == agentkeys.ResultOK:
			direct++
		}
	}
	if direct != 1 || cached != 3 {
		t.Fatalf("audit has %d direct and %d cached reads, want 1 and 3: %+v", direct, cached, page.Events)
	}

	// Idle, then revoke. The daemon gets no request until it has dropped
	// everything on its own.
	if killLine.MatchString(d.stderr()) {
		t.Fatal("the daemon dropped its session before the revoke")
	}
	// Measured from sending the revoke (an upper bound of the time from
	// its answer).
	revoked := time.Now()
	if _, err := b.client.RevokeSession(ctx, b.master.Token, ks.Token); err != nil {
		t.Fatal(err)
	}
	line := d.waitFor(killLine, 5*time.Second)[0]
	latency := time.Since(revoked)
	t.Logf("revoke-to-refusal: %v", latency)
	if !strings.Contains(line, `"reason":"session revoked"`) {
		t.Fatalf("the daemon learned of the revoke otherwise than by its watch: %s", line)
	}
	if latency > time.Second {
		t.Fatalf("revoke-to-refusal %v, want at most 1s", latency)
	}

	// Every surface refuses, with the same clear error.
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || rpcCode(err) != CodeAuthFailed || !strings.Contains(err.Error(), "session revoked") {
			t.Fatalf("%s after the revoke: %v", what, err)
		}
	}
	_, err = c.Read(ctx, "openrouter")
	refused("socket read", err)
	_, err = c.AWSCredentials(ctx)
	refused("socket aws_credentials", err)
	_, err = c.OIDCToken(ctx)
	refused("socket oidc_token", err)
	_, err = c.List(ctx)
	refused("socket list", err)
	for _, call := range []*mcp.CallToolParams{
		{Name: ToolGetCredential, Arguments: map[string]any{"service": "openrouter"}},
		{Name: ToolRunWithCredential, Arguments: map[string]any{"service": "openrouter", "command": []string{"true"}}},
	} {
		res, err := cs.CallTool(ctx, call)
		if err != nil || !res.IsError || !strings.Contains(textOf(res), "session revoked") || strings.Contains(textOf(res), mcpSecret) {
			t.Fatalf("MCP %s after the revoke: %v %v", call.Name, err, res)
		}
	}
	out, err := commandWithEnv(home, daemonBin, "aws", "credential-process", "--socket", sock).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "session revoked") || strings.Contains(string(out), "SecretAccessKey") {
		t.Fatalf("credential-process after the revoke: %v %s", err, out)
	}
	if _, err := os.Stat(tokFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("web identity token file still there after the revoke: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.SessionOK {
		t.Fatalf("status after the revoke: %+v %v", st, err)
	}
	if n := len(fakeSTS.Issued()); n != 1 {
		t.Fatalf("%d STS issues after the revoke", n)
	}
}

// TestCachesBypassedWhileTheWatchIsBroken: when the daemon cannot confirm
// its session with the backend, it serves nothing from its caches (the
// request goes to the backend or the broker instead) until the backend
// confirms the session again.
func TestCachesBypassedWhileTheWatchIsBroken(t *testing.T) {
	ctx := context.Background()
	b, _, ks, _ := startBackendAgent(t, "openrouter")
	b.store(t, ks.Wallet, "openrouter", mcpSecret)
	target, _ := url.Parse(b.url)
	var down atomic.Bool
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			panic(http.ErrAbortHandler) // drop the connection
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	bc, err := backendclient.New(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	fb := newFakeBroker(t, ks.Token.Reveal(), time.Hour)
	brk, _ := NewBrokerClient(fb.URL, nil, passDeriver{})
	svc := NewService(ServiceOptions{Backend: bc, Broker: brk, Session: Session{Token: ks.Token, Wallet: ks.Wallet}, CacheTTL: 10 * time.Minute})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc.StartWatch(wctx)
	waitUntil(t, "the watch confirms the session", svc.cacheUsable)

	for range 2 {
		if v, err := svc.Read(ctx, "openrouter"); err != nil || string(v) != mcpSecret {
			t.Fatalf("read: %v", err)
		}
		if _, err := svc.AWSCredentialsJSON(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := fb.awsMints.Load(); n != 1 {
		t.Fatalf("%d AWS mints, want 1", n)
	}

	down.Store(true)
	proxy.CloseClientConnections()
	broke := time.Now()
	waitUntil(t, "the daemon stops trusting its caches", func() bool { return !svc.cacheUsable() })
	t.Logf("watch broken to caches bypassed: %v", time.Since(broke))
	if _, err := svc.Read(ctx, "openrouter"); CodeOf(err) != CodeUnreachable {
		t.Fatalf("read with the backend unreachable: %v (served from cache?)", err)
	}
	for want := int32(2); want <= 3; want++ {
		if _, err := svc.AWSCredentialsJSON(ctx); err != nil {
			t.Fatal(err)
		}
		if n := fb.awsMints.Load(); n != want {
			t.Fatalf("%d AWS mints, want %d: a cached credential was served unconfirmed", n, want)
		}
	}

	down.Store(false)
	waitUntil(t, "the watch confirms the session again", svc.cacheUsable)
	if v, err := svc.Read(ctx, "openrouter"); err != nil || string(v) != mcpSecret {
		t.Fatalf("read after recovery: %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A broker's 401 (it also refuses sessions with too little lifetime left
// for the credential asked) does not end the daemon's session: only the
// backend's answer does.
func TestBrokerRefusalDoesNotKillTheSession(t *testing.T) {
	fb := newFakeBroker(t, agentkeys.NewToken().Reveal(), time.Hour) // knows another token
	svc := testService(t, fb, agentkeys.NewToken(), time.Now)
	if _, err := svc.AWSCredentialsJSON(context.Background()); CodeOf(err) != CodeAuthFailed {
		t.Fatalf("mint with a refused session: %v", err)
	}
	if err := svc.alive(); err != nil {
		t.Fatalf("a broker refusal killed the session: %v", err)
	}
}

package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/agentkeys"
)

// inProcess starts a Service and SocketServer against a real backend.
func inProcess(t testing.TB, services ...string) (*testBackend, *Service, string, agentkeys.Wallet) {
	t.Helper()
	b := startBackend(t)
	s, err := b.client.CreateChild(context.Background(), b.master.Token, agentkeys.Scope{Services: services}, 0)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(ServiceOptions{Backend: b.client, Session: Session{Token: s.Token, Wallet: s.Wallet, Backend: b.url}})
	path := filepath.Join(t.TempDir(), "d", "agentkeys.sock")
	srv, err := ListenSocket(path, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return b, svc, path, s.Wallet
}

func rawExchange(t *testing.T, path string, lines ...string) []string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, l := range lines {
		c.Write([]byte(l + "\n"))
	}
	c.(*net.UnixConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestSocketProtocol(t *testing.T) {
	b, _, path, w := inProcess(t, "openrouter")
	b.store(t, w, "openrouter", "v\"al\\ue\n<secret>")
	out := rawExchange(t, path,
		`{"jsonrpc":"2.0","id":1,"method":"read","params":{"service":"openrouter"}}`,
		`{"jsonrpc":"2.0","method":"read","params":{"service":"openrouter"}}`, // notification: no answer
		``,
		`not json`,
		`{"jsonrpc":"2.0","id":"x","method":"nope"}`,
		`{"jsonrpc":"2.0","id":2,"method":"read","params":{"service":"Bad Name"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"read","params":{}}`,
		`{"jsonrpc":"2.0","id":4,"method":"read","params":{"service":"openrouter","x":1}}`,
		`{"jsonrpc":"2.0","id":5,"method":"read","params":{"service":"openai"}}`,
		`{"jsonrpc":"2.0","id":6,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":7,"method":"aws_credentials"}`,
		`{"jsonrpc":"2.0","id":8,"method":"list","params":{"x":1}}`, // methods without parameters refuse unknown ones
		`{"jsonrpc":"2.0","id":9,"method":"status","params":{"x":1}}`,
		`{"jsonrpc":"2.0","id":10,"method":"oidc_token","params":{"x":1}}`,
		`{"jsonrpc":"2.0","id":11,"method":"list","params":{}}`,
	)
	want := []struct {
		id, code string
	}{{"1", ""}, {"null", "INVALID_PARAMS"}, {`"x"`, "METHOD_NOT_FOUND"}, {"2", "INVALID_PARAMS"}, {"3", "INVALID_PARAMS"}, {"4", "INVALID_PARAMS"}, {"5", "DENIED"}, {"6", ""}, {"7", CodeNoBroker},
		{"8", "INVALID_PARAMS"}, {"9", "INVALID_PARAMS"}, {"10", "INVALID_PARAMS"}, {"11", ""}}
	if len(out) != len(want) {
		t.Fatalf("%d answers, want %d:\n%s", len(out), len(want), strings.Join(out, "\n"))
	}
	for i, line := range out {
		var r struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  json.RawMessage `json:"result"`
			Error   *struct {
				Code int                   `json:"code"`
				Data struct{ Code string } `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.JSONRPC != "2.0" {
			t.Fatalf("answer %d not JSON-RPC: %s", i, line)
		}
		if string(r.ID) != want[i].id {
			t.Errorf("answer %d id %s, want %s", i, r.ID, want[i].id)
		}
		got := ""
		if r.Error != nil {
			got = r.Error.Data.Code
		}
		if got != want[i].code {
			t.Errorf("answer %d code %q, want %q: %s", i, got, want[i].code, line)
		}
	}
	var first struct {
		Result struct{ Service, Value string }
	}
	json.Unmarshal([]byte(out[0]), &first)
	if first.Result.Value != "v\"al\\ue\n<secret>" || first.Result.Service != "openrouter" {
		t.Fatalf("read result %+v", first.Result)
	}
	// An over-long line is refused and the connection closed.
	long := `{"jsonrpc":"2.0","id":1,"method":"read","params":{"service":"` + strings.Repeat("a", MaxRequestLine) + `"}}`
	out = rawExchange(t, path, long, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if len(out) != 1 || !strings.Contains(out[0], "too long") {
		t.Fatalf("long line: %v", out)
	}
}

func TestSocketFiles(t *testing.T) {
	b, svc, path, _ := inProcess(t, "openrouter")
	_ = b
	// A second daemon on the same path is refused.
	if _, err := ListenSocket(path, svc, nil); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second listener: %v", err)
	}
	dir := t.TempDir()
	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, _ := net.Listen("unix", stale)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	s2, err := ListenSocket(stale, svc, nil)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	s2.Close()
	// A regular file is never replaced.
	reg := filepath.Join(dir, "file")
	os.WriteFile(reg, []byte("x"), 0o600)
	if _, err := ListenSocket(reg, svc, nil); err == nil {
		t.Fatal("replaced a regular file")
	}
	// A loose directory is tightened to 0700.
	loose := filepath.Join(dir, "loose")
	os.Mkdir(loose, 0o755)
	s3, err := ListenSocket(filepath.Join(loose, "a.sock"), svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %04o", fi.Mode().Perm())
	}
}

// TestSocketPeerUID: a process of another uid that reaches the socket is
// refused (SO_PEERCRED), even with the file modes opened up.
func TestSocketPeerUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	_, _, path, _ := inProcess(t, "openrouter")
	os.Chmod(filepath.Dir(path), 0o755)
	os.Chmod(path, 0o777)
	bin := daemonBinForOthers(t)
	for p := filepath.Dir(path); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // open every directory: only the peer check is left
	}
	cmd := exec.Command(bin, "status", "--socket", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("uid 65534 got a status: %s", out)
	}
	if strings.Contains(string(out), "wallet") || strings.Contains(string(out), "connect to") ||
		!(strings.Contains(string(out), "read from the agentkeys daemon") || strings.Contains(string(out), "send to the agentkeys daemon")) {
		// It connected (so the directory modes did not stop it) and was
		// then dropped by the SO_PEERCRED check.
		t.Fatalf("uid 65534 was not refused by the peer check: %s", out)
	}
	// The same call as our own uid works.
	cmd = exec.Command(bin, "status", "--socket", path)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "wallet") {
		t.Fatalf("own uid: %s %v", out, err)
	}
}

func BenchmarkSocketRead(b *testing.B) {
	tb, _, path, w := inProcess(b, "openrouter")
	tb.store(b, w, "openrouter", "sk-or-v1-bench-0123456789abcdef")
	c, err := DialSocket(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		v, err := c.Read(ctx, "openrouter")
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		clear(v)
	}
	b.StopTimer()
	if len(lat) > 0 {
		sortDurations(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	}
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

func TestCacheTTLAndIdleEviction(t *testing.T) {
	b := startBackend(t)
	s, err := b.client.CreateChild(context.Background(), b.master.Token, agentkeys.Scope{Services: []string{"openrouter"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.store(t, s.Wallet, "openrouter", "first")
	now := time.Now()
	svc := NewService(ServiceOptions{Backend: b.client, Session: Session{Token: s.Token, Wallet: s.Wallet}, CacheTTL: time.Hour, IdleEvict: time.Minute,
		Now: func() time.Time { return now }})
	defer svc.Close()
	ctx := context.Background()
	if v, _ := svc.Read(ctx, "openrouter"); string(v) != "first" {
		t.Fatal(string(v))
	}
	b.store(t, s.Wallet, "openrouter", "second")
	if v, _ := svc.Read(ctx, "openrouter"); string(v) != "first" {
		t.Fatalf("cache not used: %s", v)
	}
	now = now.Add(2 * time.Minute)
	if n := svc.EvictIdle(); n != 1 {
		t.Fatalf("evicted %d", n)
	}
	if v, _ := svc.Read(ctx, "openrouter"); string(v) != "second" {
		t.Fatalf("after eviction: %s", v)
	}
	// Without a cache every read goes to the backend (and is audited).
	svc2 := NewService(ServiceOptions{Backend: b.client, Session: Session{Token: s.Token, Wallet: s.Wallet}})
	b.store(t, s.Wallet, "openrouter", "third")
	if v, _ := svc2.Read(ctx, "openrouter"); string(v) != "third" {
		t.Fatal(string(v))
	}
	// A revoked session is reported once and shows in status.
	b.client.RevokeWallet(ctx, b.master.Token, s.Wallet)
	if _, err := svc2.Read(ctx, "openrouter"); CodeOf(err) != CodeAuthFailed {
		t.Fatalf("revoked: %v", err)
	}
	if svc2.Status().SessionOK {
		t.Fatal("status still says the session is fine")
	}
}

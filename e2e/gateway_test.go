package e2e

// TestGatewayOpenAISDK: the official OpenAI Node SDK (e2e/openai, npm
// `openai` pinned in its package-lock.json, installed by
// scripts/ci/npm-peer.sh e2e/openai) and curl, started by `agentkeys run --gateway`,
// call a loopback HTTPS fixture of the OpenAI API through the gateway.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// openAIFixture is a TLS fixture of the chat completions API. It answers
// 401 unless it gets the key as a bearer.
type openAIFixture struct {
	*httptest.Server
	key    string
	caFile string
	mu     sync.Mutex
	keyed  int // requests that carried the key
}

func startOpenAIFixture(t *testing.T, key string) *openAIFixture {
	f := &openAIFixture{key: key}
	f.Server, f.caFile = testkit.TLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.key {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"message":"bad key","type":"invalid_request_error"}}`)
			return
		}
		f.mu.Lock()
		f.keyed++
		f.mu.Unlock()
		if r.URL.Path != "/v1/chat/completions" {
			w.WriteHeader(404)
			return
		}
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			// The fixture echoes the key: the gateway must mask it.
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello (key %s)"},"finish_reason":"stop"}]}`, req.Model, f.key)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(s string) {
			fmt.Fprintf(w, "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", req.Model, s)
			w.(http.Flusher).Flush()
		}
		if req.Model != "endless" {
			for _, s := range []string{"one ", "two ", "three"} {
				chunk(s)
			}
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		for {
			chunk(".")
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	return f
}

func (f *openAIFixture) keyedRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keyed
}

// memoryHolds reports whether any readable mapping of process pid holds
// needle (what a core dump of it would contain).
func memoryHolds(t *testing.T, pid int, needle []byte) bool {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	read := 0
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1][0] != 'r' || (len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]")) {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end-start > 1<<30 {
			continue
		}
		buf := make([]byte, end-start)
		n, _ := mem.ReadAt(buf, int64(start))
		read += n
		if bytes.Contains(buf[:n], needle) {
			return true
		}
	}
	if read == 0 {
		t.Fatalf("read nothing of /proc/%d/mem", pid)
	}
	return false
}

// gcoreDump writes a core dump of process pid with gcore (gdb), which
// leaves the process running, and returns the file's path.
func gcoreDump(t *testing.T, pid int) string {
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		e2eRequire(t, "gcore is not on PATH (install gdb; scripts/deps.sh test does): the agent's core dump is not checked")
	}
	prefix := filepath.Join(t.TempDir(), "core")
	if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("gcore %d: %v\n%s", pid, err, out)
	}
	return prefix + "." + strconv.Itoa(pid)
}

// fileHolds reports whether the file at path holds needle, reading it in
// pieces (a core dump of node is hundreds of MB).
func fileHolds(t *testing.T, path string, needle []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	keep := 0 // the tail of the last piece, where a needle may start
	for {
		n, err := io.ReadFull(f, buf[keep:])
		if bytes.Contains(buf[:keep+n], needle) {
			return true
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		keep = min(len(needle)-1, keep+n)
		copy(buf, buf[len(buf)-keep:])
	}
}

func TestGatewayOpenAISDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		e2eRequire(t, "node is not on PATH")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		e2eRequire(t, "curl is not on PATH")
	}
	if _, err := os.Stat(filepath.Join("openai", "node_modules", "openai", "package.json")); err != nil {
		e2eRequire(t, "e2e/openai/node_modules is missing; run scripts/ci/npm-peer.sh e2e/openai")
	}
	var kb [20]byte
	rand.Read(kb[:])
	key := "sk-proj-" + hex.EncodeToString(kb[:])
	api := startOpenAIFixture(t, key)

	dir := t.TempDir()
	backendURL, _ := startBackend(t, dir, nil)
	master := newMaster(t, backendURL, "e2e-gateway-master")
	agentSession := filepath.Join(dir, "bot.json")
	master.must("", "agent", "create", "bot", "--services", "openai", "--session-out", agentSession)
	master.must(key, "store", "bot", "openai")

	nodeBin := filepath.Dir(node)
	cmd := exec.Command(bin["agentkeys"], "run", "bot", "--gateway", "--session-file", agentSession, "--", node, filepath.Join("openai", "agent.mjs"))
	cmd.Env = append(append([]string{}, master.env...), "PATH="+nodeBin+":"+os.Getenv("PATH"),
		"SSL_CERT_FILE="+api.caFile, "AGENTKEYS_OPENAI_API_URL="+api.URL)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr := &testkit.SyncBuffer{}
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second // node may outlive a killed agentkeys
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string, within time.Duration) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the agent ended before %s\nstderr:\n%s", prefix, stderr.String())
			}
			if strings.Contains(l, key) {
				t.Fatalf("the agent saw the key: %s", l)
			}
			rest, found := strings.CutPrefix(l, prefix+" ")
			if !found && l != prefix {
				t.Fatalf("want %s, got %q\nstderr:\n%s", prefix, l, stderr.String())
			}
			return rest
		case <-time.After(within):
			t.Fatalf("no %s line within %v\nstderr:\n%s", prefix, within, stderr.String())
		}
		return ""
	}

	var env struct{ Base, Key string }
	json.Unmarshal([]byte(next("ENV", 30*time.Second)), &env)
	if !strings.HasPrefix(env.Base, "http://127.0.0.1:") || !strings.HasSuffix(env.Base, "/openai/v1") || env.Key == "" || env.Key == key {
		t.Fatalf("the agent's environment: %+v", env)
	}
	if got := next("CHAT", 20*time.Second); got != "hello (key ****)" {
		t.Fatalf("chat through the gateway: %q", got)
	}
	if got := next("STREAM", 20*time.Second); got != "one two three" {
		t.Fatalf("streaming through the gateway: %q", got)
	}
	if got := next("CURL", 20*time.Second); got != "200" {
		t.Fatalf("curl through the gateway: %s", got)
	}
	if got := next("OTHER_SERVICE", 20*time.Second); got != "403" {
		t.Fatalf("out-of-scope service: %s", got)
	}
	if got := next("OTHER_HOST", 20*time.Second); got != "421" {
		t.Fatalf("another host: %s", got)
	}
	if n := api.keyedRequests(); n != 3 {
		t.Fatalf("the fixture got the key on %d requests, want 3 (chat, stream, curl)", n)
	}

	pid, _ := strconv.Atoi(next("PID", 10*time.Second))
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte(key)) {
		t.Fatal("the agent's environment holds the key")
	}
	if !memoryHolds(t, pid, []byte(strings.TrimPrefix(env.Base, "http://"))) {
		t.Fatal("the memory scan does not find the gateway address the agent holds: it cannot be trusted to find the key")
	}
	if memoryHolds(t, pid, []byte(key)) {
		t.Fatal("the agent's memory holds the key")
	}
	t.Run("core dump", func(t *testing.T) {
		// What a crash of the agent or a debugger leaves on disk.
		core := gcoreDump(t, pid)
		if !fileHolds(t, core, []byte(strings.TrimPrefix(env.Base, "http://"))) {
			t.Fatal("the core dump does not hold the gateway address the agent holds: its scan cannot be trusted to find the key")
		}
		if fileHolds(t, core, []byte(key)) {
			t.Fatal("a core dump of the agent holds the key")
		}
	})

	io.WriteString(stdin, "go\n")
	next("CHUNK", 20*time.Second)
	revokedAt := time.Now()
	master.must("", "revoke", "bot")
	if got := next("CUT", 3*time.Second); got == "" {
		t.Fatal("no reason for the cut")
	}
	if d := time.Since(revokedAt); d > 2*time.Second {
		t.Fatalf("the open stream was cut %v after the revoke command started; want about a second", d)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("agentkeys run did not end with its command")
	}
	if strings.Contains(stderr.String(), key) {
		t.Fatal("agentkeys run printed the key")
	}
}

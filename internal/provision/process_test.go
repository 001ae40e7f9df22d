package provision

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func runFake(t *testing.T, mode string, timeout time.Duration, extra ...string) (Outcome, error) {
	t.Helper()
	c := fakeCommand(t)
	c.Env = fakeEnv(mode, extra...)
	c.Stdin = []byte(`{"service":"openrouter","email":"bot@example.test"}`)
	return RunScraper(context.Background(), c, RunOptions{Timeout: timeout, Grace: 500 * time.Millisecond})
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] != "Z"
}

func TestRunScraperTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	out, err := runFake(t, "hang", 2*time.Second, "FAKE_FILE="+pidFile)
	if CodeOf(err) != CodeTimeout {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("returned after %s", d)
	}
	if out.Events != 1 {
		t.Fatalf("events before the timeout = %d", out.Events)
	}
	b, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal("grandchild never started:", rerr)
	}
	pid, _ := strconv.Atoi(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the scraper's child survived the timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunScraperMalformedLineFailsRun(t *testing.T) {
	_, err := runFake(t, "malformed", 20*time.Second)
	if CodeOf(err) != CodeMalformedEvent || !strings.Contains(err.Error(), "this is not json") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunScraperSecondTerminalEventFailsRun(t *testing.T) {
	_, err := runFake(t, "two-terminal", 20*time.Second)
	if CodeOf(err) != CodeMalformedEvent {
		t.Fatalf("err = %v", err)
	}
}

func TestRunScraperExitWithoutResult(t *testing.T) {
	out, err := runFake(t, "exit-3", 20*time.Second)
	if CodeOf(err) != CodeInternal || !strings.Contains(err.Error(), "exit status 3") || out.ExitCode != 3 {
		t.Fatalf("err = %v, exit %d", err, out.ExitCode)
	}
	if !strings.Contains(out.StderrTail, "[fake] signing up as bot@example.test") {
		t.Fatalf("stderr tail = %q", out.StderrTail)
	}
}

func TestRunScraperCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := fakeCommand(t)
	c.Env = fakeEnv("hang", "FAKE_FILE="+filepath.Join(t.TempDir(), "pid"))
	c.Stdin = []byte(`{}`)
	_, err := RunScraper(ctx, c, RunOptions{Timeout: time.Minute, Grace: 200 * time.Millisecond, OnEvent: func(Event) { cancel() }})
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunScraperStreamsStderrLines(t *testing.T) {
	c := fakeCommand(t)
	c.Env = fakeEnv("tripwire")
	c.Stdin = []byte(`{"email":"bot@example.test"}`)
	var lines []string
	out, err := RunScraper(context.Background(), c, RunOptions{Timeout: 20 * time.Second, OnStderr: func(l string) { lines = append(lines, l) }})
	if err != nil || out.Terminal.Type != TypeTripwire {
		t.Fatalf("out %+v err %v", out, err)
	}
	if len(lines) != 1 || lines[0] != "[fake] signing up as bot@example.test" {
		t.Fatalf("stderr lines %q", lines)
	}
}

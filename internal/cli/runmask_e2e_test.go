package cli

import (
	"bufio"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRunMasksOutput: with the real binary, the child's stdout and stderr
// show neither the injected key nor its base64 (wrapped by base64(1));
// --no-masking shows them; the exit status still propagates.
func TestRunMasksOutput(t *testing.T) {
	t.Parallel()
	secret := newSecret() + newSecret() // long enough for base64 to wrap at 76
	w, _ := newWorldWithBot(t, secret)
	b64 := base64.StdEncoding.EncodeToString([]byte(secret + "\n"))
	script := `echo $OPENROUTER_API_KEY; echo $OPENROUTER_API_KEY | base64 >&2; exit 7`

	r := w.ak("run", "bot", "--", "sh", "-c", script)
	expectCode(t, r, 7, "run masked")
	all := r.stdout + r.stderr
	if strings.Contains(all, secret) || strings.Contains(dropLines(all), b64[:40]) {
		t.Fatalf("masked run shows the secret: %s", r)
	}
	if !strings.Contains(r.stdout, "****") || !strings.Contains(r.stderr, "****") {
		t.Fatalf("nothing masked on stdout and stderr: %s", r)
	}

	r = w.ak("run", "bot", "--no-masking", "--", "sh", "-c", script)
	expectCode(t, r, 7, "run --no-masking")
	if !strings.Contains(r.stdout, secret) || !strings.Contains(dropLines(r.stderr), b64) {
		t.Fatalf("--no-masking hides the output: %s", r)
	}
}

func dropLines(s string) string { return strings.NewReplacer("\n", "", "\r", "").Replace(s) }

// TestRunMaskingFlushesPartialLine: a prompt without a newline, followed
// by silence, reaches the reader while the child is still running.
func TestRunMaskingFlushesPartialLine(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithBot(t, newSecret())
	cmd := exec.Command(binPath, "run", "bot", "--", "sh", "-c", `printf 'Continue? '; read x; echo "got $x"`)
	cmd.Env = w.env()
	stdin, _ := cmd.StdinPipe()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		if s != "Continue? " {
			t.Fatalf("first output %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the partial line was never flushed while the child waited")
	}
	stdin.Write([]byte("yes\n"))
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "got yes\n" {
		t.Fatalf("rest %q", line)
	}
}

// TestRunMaskingDoesNotWaitForBackgroundProcesses: a command that leaves a
// process holding its stdout does not keep a masking run waiting for it.
func TestRunMaskingDoesNotWaitForBackgroundProcesses(t *testing.T) {
	t.Parallel()
	w, _ := newWorldWithBot(t, newSecret())
	start := time.Now()
	r := w.ak("run", "bot", "--", "sh", "-c", "sleep 60 & echo started; exit 5")
	expectCode(t, r, 5, "run with a background process")
	if d := time.Since(start); d > 30*time.Second || !strings.Contains(r.stdout, "started") {
		t.Fatalf("run took %v; output %s", d, r)
	}
}

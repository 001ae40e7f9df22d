package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnusableSocketFailsBeforePairCode: a --socket path that cannot be
// bound (here, a regular file is in the way) ends the daemon before it
// shows a pair code, naming the path.
func TestUnusableSocketFailsBeforePairCode(t *testing.T) {
	b := startBackend(t)
	blocker := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, t.TempDir(), nil, "--backend", b.url, "--socket", blocker)
	code := d.wait(30 * time.Second)
	stderr := d.stderr()
	if code == 0 || pairLine.MatchString(stderr) || !strings.Contains(stderr, blocker) || !strings.Contains(stderr, "--socket") {
		t.Fatalf("exit %d; want a failure naming the socket before any pair code; stderr:\n%s", code, stderr)
	}
}

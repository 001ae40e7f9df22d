//go:build unix

package keychain

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const ownerHelperEnv = "AGENTKEYS_TEST_KEYCHAIN_OWNER_FILE"

// TestOwnerHelper is run by TestSessionFileOwnerCheck in a child process
// of another uid: it reads the session file named in the environment and
// prints the outcome. On its own it does nothing.
func TestOwnerHelper(t *testing.T) {
	path := os.Getenv(ownerHelperEnv)
	if path == "" {
		return
	}
	if _, err := ReadSessionFile(path); err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		return
	}
	os.Stdout.WriteString("LOADED\n")
}

// TestSessionFileOwnerCheck: a user refuses a session file that belongs to
// another user (even one whose mode would let them read it), loads their
// own, and root may read a file of any owner.
func TestSessionFileOwnerCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own files as, and run a reader as, another uid (CI runs as root)")
	}
	const other = 65534
	dir, err := os.MkdirTemp("", "keychain-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, uid int, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := WriteSessionFile(p, testSession()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rootsFile := write("root.json", 0, 0o644)
	othersFile := write("other.json", other, 0o600)

	// Root reads a file of another owner.
	if _, err := ReadSessionFile(othersFile); err != nil {
		t.Fatalf("root refused a session file of uid %d: %v", other, err)
	}

	// A copy of this test binary, runnable by the other uid.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "keychain.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	read := func(path string) string {
		cmd := exec.Command(bin, "-test.run=^TestOwnerHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), ownerHelperEnv+"="+path)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other, Gid: other}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid %d: %v\n%s", other, err, out)
		}
		return string(out)
	}
	if out := read(othersFile); !strings.Contains(out, "LOADED") {
		t.Fatalf("uid %d could not read its own session file:\n%s", other, out)
	}
	out := read(rootsFile)
	if !strings.Contains(out, "ERR ") || !strings.Contains(out, "belongs to uid 0, not to you") {
		t.Fatalf("uid %d read a session file of root (mode 0644) without the owner refusal:\n%s", other, out)
	}
}

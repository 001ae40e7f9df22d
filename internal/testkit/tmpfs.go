package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of size (e.g. "2m") on a fresh directory, unmounted
// when t ends, for tests of what happens when the disk fills. It needs root
// (CI runs as root); without it, or where mount fails, t is skipped.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk test skipped: mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("full-disk test skipped: cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// GrowTmpfs resizes the tmpfs Tmpfs mounted on dir to size, as an operator
// grows a full volume; failing is fatal.
func GrowTmpfs(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v %s", err, out)
	}
}

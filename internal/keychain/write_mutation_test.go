//go:build linux

package keychain

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentkeys/agentkeys/internal/testkit"
)

// TestFailedWriteLeavesNoTempFile: when the disk fills during a write, the
// write fails, the previous file stays, and no temporary file (which would
// hold a token) is left behind in the directory.
func TestFailedWriteLeavesNoTempFile(t *testing.T) {
	dir := testkit.Tmpfs(t, "64k")
	path := filepath.Join(dir, SessionFileName)
	if err := WriteSessionFile(path, testSession()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateFile(path, bytes.Repeat([]byte{'x'}, 1<<20)); err == nil {
		t.Fatal("writing 1 MiB to a 64 KiB volume succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != SessionFileName {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory after a failed write holds %q, want only %s", names, SessionFileName)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("a failed write changed the session file")
	}
}

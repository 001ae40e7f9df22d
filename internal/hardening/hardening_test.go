package hardening

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	r := Apply()
	if len(r.Steps) < 3 {
		t.Fatalf("report has %d steps", len(r.Steps))
	}
	if runtime.GOOS == "linux" {
		for _, s := range r.Steps {
			if s.Name == "non_dumpable" && s.Status != OK {
				t.Errorf("non_dumpable: %s %s", s.Status, s.Detail)
			}
			if s.Name == "no_core_dumps" && s.Status != OK {
				t.Errorf("no_core_dumps: %s %s", s.Status, s.Detail)
			}
		}
		// Reading our own status proves the prctl took effect.
		if data, err := os.ReadFile("/proc/self/status"); err == nil && !strings.Contains(string(data), "Name:") {
			t.Fatal("cannot read /proc/self/status")
		}
	}
	if !strings.Contains(r.String(), "non_dumpable=") {
		t.Fatalf("summary: %s", r)
	}
}

// TestApplyKeepsStdio: the original closed the Landlock ABI version as if
// it were a descriptor (stdout on ABI 1). Apply must leave 0, 1, 2 open.
func TestApplyKeepsStdio(t *testing.T) {
	Apply()
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if _, err := f.Stat(); err != nil {
			t.Fatalf("%s closed after Apply: %v", f.Name(), err)
		}
	}
}

func TestBuffer(t *testing.T) {
	secret := []byte("sk-or-v1-0123456789abcdef")
	b := Copy(secret)
	if !bytes.Equal(b.Bytes(), secret) {
		t.Fatal("copy differs")
	}
	t.Logf("buffer kind: %s", b.Kind())
	raw := b.b
	b.Destroy()
	if b.Bytes() != nil {
		t.Fatal("bytes after destroy")
	}
	if b.Kind() == KindHeap && !bytes.Equal(raw[:len(secret)], make([]byte, len(secret))) {
		t.Fatal("heap buffer not zeroed")
	}
	b.Destroy() // twice is fine
	if z := NewBuffer(0); len(z.Bytes()) != 0 {
		t.Fatal("empty buffer")
	}
}

// TestApplyChildrenCannotGainPrivileges: commands the daemon starts inherit
// no_new_privs, so a setuid binary would run without its privileges.
func TestApplyChildrenCannotGainPrivileges(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no_new_privs is Linux-only")
	}
	Apply()
	out, err := exec.Command("sh", "-c", "grep NoNewPrivs /proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(out)); len(f) != 2 || f[1] != "1" {
		t.Fatalf("child status: %q", out)
	}
}
